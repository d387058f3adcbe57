"""The suite's own guards: every test, sync or async, has a deadline that really fires."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TEST_DEADLINE

ROOT = Path(__file__).parent.parent

HANGING = """
import threading

import pytest
import trio


@pytest.mark.timeout(120)  # absorbs the session fixtures' start-up
def test_first_passes():
    pass


def test_sync_hang():
    threading.Event().wait()  # blocks like a portal call that never answers


async def test_async_hang():
    await trio.sleep_forever()
"""


def test_every_collected_test_has_a_deadline(request: pytest.FixtureRequest) -> None:
    for item in request.session.items:
        marker = item.get_closest_marker("timeout")
        assert marker is not None and marker.args[0] > 0, item.nodeid
    assert request.node.get_closest_marker("timeout").args[0] == 2 * TEST_DEADLINE
    assert request.config.getini("timeout_method") == "signal"


@pytest.mark.timeout(180)
def test_hung_sync_and_async_tests_fail_alone(tmp_path: Path) -> None:
    test_file = tmp_path / "test_hanging.py"
    test_file.write_text(HANGING)
    plugins = ["-p", "tests.conftest", "-p", "no:cacheprovider"]
    config = ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *plugins, *config, str(test_file)],
        cwd=ROOT,
        env={**os.environ, "TRIO_MCP_TEST_DEADLINE": "1"},
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    summary = done.stdout.splitlines()[-1]
    assert "2 failed, 1 passed" in summary, done.stdout[-3000:]
    assert "test_sync_hang - Failed: Timeout" in done.stdout
    assert "test_async_hang - TooSlowError" in done.stdout
