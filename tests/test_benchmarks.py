"""The benchmark harness: the seed baselines answer correctly, and --quick produces
well-formed results covering every system and scenario (no assertion on timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.__main__ import SCENARIOS
from benchmarks._systems import SYSTEMS, Target, open_datadesigner, open_ragflow
from benchmarks.baselines.datadesigner import DataDesignerStyleIO

from trio_mcp import result_text

ROOT = Path(__file__).resolve().parent.parent


def test_seed_ragflow_answers_correctly() -> None:
    with open_ragflow({"s": Target("stdio", None)}) as handle:
        session = handle.sessions["s"]
        assert {tool.name for tool in session.get_tools()} == {"echo", "wait", "list_count"}
        assert session.tool_call("echo", {"text": "ragflow"}) == "ragflow"
        assert result_text(handle.call("s", "wait", {"ms": 1})) == "done"
        assert session.tool_call("no_such_tool", {}).startswith("MCP server error") or "Unknown tool" in (
            session.tool_call("no_such_tool", {})
        )


def test_seed_datadesigner_answers_correctly() -> None:
    target = Target("memory", None)
    with open_datadesigner({"s": target}) as handle:
        io: DataDesignerStyleIO = handle.io
        assert [tool.name for tool in handle.list_tools("s")] == ["echo", "wait", "list_count"]
        results = io.call_tools_parallel(
            [("s", handle.factories["s"], "echo", {"text": str(i)}) for i in range(5)]
        )
        assert [result_text(r) for r in results] == ["0", "1", "2", "3", "4"]
        # Coalesced and cached: the server answered one tools/list.
        handle.list_tools("s")
        assert handle.call("s", "list_count", {}).structured_content == {"result": 1}


@pytest.mark.timeout(400)  # the run itself is bounded at 300 s; about 50 s on 2 busy cores
def test_quick_benchmark_produces_every_system_and_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"python", "cpus", "trio_mcp", "mcp"} <= set(report["machine"])
    records = report["results"]
    assert {r["system"] for r in records} == set(SYSTEMS)
    assert {r["scenario"] for r in records} == set(SCENARIOS)
    for r in records:
        assert set(r) == {"system", "transport", "scenario", "concurrency", "metric", "value"}
        assert isinstance(r["value"], int | float) and r["value"] >= 0
    assert {r["concurrency"] for r in records if r["scenario"] == "throughput"} == {1, 8, 32}
    burst = {r["system"]: r["value"] for r in records if r["metric"] == "server_requests"}
    assert burst["pool"] == 1 and burst["portal"] == 1  # exact counts, not timings
    assert "targets (ratios from this run)" in done.stdout
