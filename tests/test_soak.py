"""A short soak (the long one is ``python -m benchmarks.soak``)."""

from __future__ import annotations

import pytest
from benchmarks.soak import soak


@pytest.mark.timeout(300)  # about 30 s on 2 busy cores
def test_short_soak_loses_nothing_and_leaks_nothing() -> None:
    report = soak(400, threads=4, tasks=8, kill_every=0.4, seed=7)
    assert report["lost"] == 0, report
    assert report["answered_twice"] == 0, report
    assert report["wrong_answers"] == 0, report
    assert report["leaks"] == {}, report
    assert report["faults_injected"]["kill_9"] >= 1, report
    assert report["outcomes"].get("ok", 0) > 200, report
    assert report["outcomes"].get("ToolCallTimeout", 0) > 0, report
