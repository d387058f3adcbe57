"""The benchmark harness: the seed baselines answer correctly, the targets are judged from
paired rounds, and --quick produces well-formed results covering every system and scenario
without touching a tracked file (no assertion on timings, only on structure and exact counts)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks._report import SCENARIOS, target_checks
from benchmarks._scenarios import record
from benchmarks._systems import REFERENCES, SYSTEMS, Target, open_datadesigner, open_ragflow
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


def _latency_cpu(system: str, rounds: list[float]) -> dict[str, object]:
    return record(system, "ts-stdio", "latency", 1, "cpu_us_per_call", rounds)


def test_targets_pair_rounds_and_explain_a_miss() -> None:
    # Round by round the pool costs 1.04x then 1.30x raw: the median of those pairs counts.
    results = [_latency_cpu("raw", [100.0, 200.0]), _latency_cpu("pool", [104.0, 260.0])]
    (check,) = target_checks(results)
    assert check.name == "pool client CPU per call ÷ raw mcp.Client"
    assert (check.low, check.value, check.high) == pytest.approx((1.04, 1.17, 1.30))
    assert not check.met and check.status == "missed"
    assert check.reason == (
        "pool 182 µs vs raw 150 µs of client CPU per call: +32.0 µs in the pool; some rounds meet it (noise)"
    )
    met = target_checks([_latency_cpu("raw", [100.0, 100.0]), _latency_cpu("pool", [101.0, 103.0])])
    assert [(c.status, c.reason) for c in met] == [("met", "")]


def test_an_exact_count_must_hold_in_every_round() -> None:
    results = [
        record("pool", "mini-stdio", "scale", 100, "children_left", [0.0, 1.0, 0.0]),
        record("pool", "mini-stdio", "list_tools_burst", 100, "server_requests", [1.0]),
    ]
    checks = {c.name: c for c in target_checks(results)}
    left = checks["scale: child processes left after the pool closed 100"]
    assert left.value == 0 and not left.met  # the median is 0, but one round left a child
    assert checks["pool: 100 concurrent list_tools reach the server as"].met


def test_update_docs_needs_a_full_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--update-docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--update-docs takes a full run" in done.stderr


def _git_status() -> str | None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        return None
    return subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


@pytest.mark.timeout(400)  # the run itself is bounded at 300 s
def test_quick_benchmark_produces_every_system_and_scenario(tmp_path: Path) -> None:
    before = _git_status()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Nothing tracked (or untracked and not ignored) changed in the checkout.
    assert _git_status() == before
    assert {p.name for p in tmp_path.iterdir()} >= {"latest.json", "latest.md"}
    # No log line per request: only the progress lines (off a TTY: as each scenario starts).
    assert "HTTP Request" not in done.stderr + done.stdout
    progress = done.stderr.splitlines()
    assert all(
        re.fullmatch(r"\[\d+/\d+\] \w+ \(.*\)|done: \d+ measurements in .*", line) for line in progress
    ), done.stderr[-3000:]
    assert {line.split()[1] for line in progress[:-1]} == set(SCENARIOS)

    report = json.loads((tmp_path / "latest.json").read_text())
    assert {"python", "cpus", "load", "trio_mcp", "mcp", "anyio", "fastmcp"} <= set(report["machine"])
    records = report["results"]
    assert {r["system"] for r in records} == set(SYSTEMS) | set(REFERENCES)
    assert {r["scenario"] for r in records} == set(SCENARIOS)
    for r in records:
        assert set(r) == {
            "system",
            "transport",
            "scenario",
            "concurrency",
            "metric",
            "value",
            "low",
            "high",
            "rounds",
        }
        assert r["low"] <= r["value"] <= r["high"] and r["low"] >= 0
    # Interleaved rounds: every latency and hop cell has the quick run's two rounds.
    assert {len(r["rounds"]) for r in records if r["scenario"] in ("latency", "hop")} == {2}
    assert {r["transport"] for r in records if r["scenario"] in ("latency", "throughput")} == {"ts-stdio"}

    def levels(system: str) -> set[int]:
        return {r["concurrency"] for r in records if r["scenario"] == "throughput" and r["system"] == system}

    assert levels("raw") == levels("pool") == {8, 32, 128}
    assert levels("portal") == levels("anyio-portal") == {8}
    assert {r["system"] for r in records if r["scenario"] == "hop"} == {
        "portal",
        "portal.call",
        "anyio-portal",
        "trio.from_thread",
        "run_sync_soon",
    }
    assert {r["system"] for r in records if r["scenario"] == "scale"} == {"raw", "pool"}

    def exact(scenario: str, metric: str) -> dict[str, float]:
        return {
            r["system"]: r["value"] for r in records if r["scenario"] == scenario and r["metric"] == metric
        }

    burst = exact("list_tools_burst", "server_requests")
    assert burst["pool"] == burst["portal"] == 1
    assert burst["raw"] == 100  # the raw client sends every one of them
    assert exact("shutdown", "children_left") == dict.fromkeys(SYSTEMS, 0)
    assert exact("scale", "children_left") == {"raw": 0, "pool": 0}
    assert "targets (median [min–max]" in done.stdout  # noqa: RUF001
    assert "latency · ts-stdio" in done.stdout
