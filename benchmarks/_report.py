"""Turning result records into a terminal table, the target ratios, and a PNG chart."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ._systems import SYSTEMS

Record = dict[str, Any]


def _index(results: list[Record]) -> dict[tuple[str, str, str, int, str], float]:
    return {
        (r["system"], r["transport"], r["scenario"], r["concurrency"], r["metric"]): r["value"]
        for r in results
    }


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"


def table(results: list[Record]) -> str:
    """One block per scenario: rows are (transport, concurrency, metric), columns systems."""
    rows: dict[str, dict[tuple[str, int, str], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        rows[r["scenario"]][(r["transport"], r["concurrency"], r["metric"])][r["system"]] = r["value"]
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in results)]
    lines: list[str] = []
    for scenario, block in rows.items():
        lines.append(f"\n{scenario}")
        header = f"  {'transport':9s} {'conc':>4s} {'metric':22s}" + "".join(f"{s:>18s}" for s in systems)
        lines.append(header)
        for (transport, concurrency, metric), values in block.items():
            cells = "".join(f"{_fmt(values[s]):>18s}" if s in values else f"{'-':>18s}" for s in systems)
            lines.append(f"  {transport:9s} {concurrency:>4d} {metric:22s}{cells}")
    return "\n".join(lines)


def target_checks(results: list[Record]) -> list[tuple[str, float | None, str, bool | None]]:
    """(description, measured, target, met) for each target of the benchmarks issue."""
    at = _index(results)

    def get(system: str, transport: str, scenario: str, concurrency: int, metric: str) -> float | None:
        return at.get((system, transport, scenario, concurrency, metric))

    checks: list[tuple[str, float | None, str, bool | None]] = []

    def check(name: str, value: float | None, target: str, ok: Any) -> None:
        checks.append((name, value, target, None if value is None else bool(ok(value))))

    io = "stdio" if get("raw", "stdio", "throughput", 8, "calls_per_s") else "memory"
    burst = (
        "stdio" if get("pool", "stdio", "list_tools_burst", 100, "server_requests") is not None else "memory"
    )
    raw50 = get("raw", "stdio", "latency", 1, "p50_us")
    portal50 = get("portal", "stdio", "latency", 1, "p50_us")
    pool50 = get("pool", "stdio", "latency", 1, "p50_us")
    if raw50 and portal50:
        check("portal latency p50 - raw p50 (stdio, us)", portal50 - raw50, "<= 60", lambda v: v <= 60)
    if raw50 and pool50:
        check("pool latency p50 / raw p50 (stdio)", pool50 / raw50, "<= 1.05", lambda v: v <= 1.05)
    for scenario in ("throughput", "throughput_io"):
        raw8 = get("raw", io, scenario, 8, "calls_per_s")
        portal8 = get("portal", io, scenario, 8, "calls_per_s")
        if raw8 and portal8:
            check(f"portal / raw {scenario} c=8 ({io})", portal8 / raw8, ">= 0.9", lambda v: v >= 0.9)
    seed8 = get("seed-ragflow", io, "throughput_io", 8, "calls_per_s")
    portal_io8 = get("portal", io, "throughput_io", 8, "calls_per_s")
    if seed8 and portal_io8:
        check(f"portal / seed-ragflow throughput_io c=8 ({io})", portal_io8 / seed8, ">= 6", lambda v: v >= 6)
    for system in ("pool", "portal"):
        requests = get(system, burst, "list_tools_burst", 100, "server_requests")
        if requests is not None:
            check(f"{system} list_tools_burst server requests", requests, "== 1", lambda v: v == 1)
        total = get(system, "mini-stdio", "connect_many", 10, "seconds")
        slowest = get(system, "mini-stdio", "connect_many", 10, "slowest_single_seconds")
        if total and slowest:
            check(f"{system} connect_many / slowest single", total / slowest, "<= 1.3", lambda v: v <= 1.3)
        closing = get(system, "mini-stdio", "shutdown", 10, "seconds")
        if closing is not None:
            check(f"{system} shutdown of 10 stdio servers (s)", closing, "<= 2", lambda v: v <= 2)
    return checks


def markdown(report: dict[str, Any], command: str) -> str:
    """The results as markdown tables, for the docs page."""
    results = report["results"]
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in results)]
    rows: dict[str, dict[tuple[str, int, str], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        rows[r["scenario"]][(r["transport"], r["concurrency"], r["metric"])][r["system"]] = r["value"]
    machine = report["machine"]
    lines = [
        f"Produced by `{command}` on {machine['when']} — Python {machine['python']}, "
        f"{machine['cpus']} CPUs, trio-mcp {machine['trio_mcp']}, mcp {machine['mcp']}, trio {machine['trio']}.",
        "",
        "### Targets",
        "",
        "| target | measured | wanted | |",
        "|---|---:|---|---|",
    ]
    for name, value, target, met in target_checks(results):
        shown = "-" if value is None else f"{value:,.3f}"
        lines.append(f"| {name} | {shown} | {target} | {'met' if met else 'missed'} |")
    for scenario, block in rows.items():
        lines += ["", f"### {scenario}", "", "| transport | conc | metric | " + " | ".join(systems) + " |"]
        lines.append("|---|---:|---|" + "---:|" * len(systems))
        for (transport, concurrency, metric), values in block.items():
            cells = " | ".join(_fmt(values[s]) if s in values else "-" for s in systems)
            lines.append(f"| {transport} | {concurrency} | {metric} | {cells} |")
    return "\n".join(lines) + "\n"


def ratios(results: list[Record]) -> str:
    lines = ["targets (ratios from this run)"]
    for name, value, target, met in target_checks(results):
        mark = "n/a" if met is None else ("met" if met else "MISSED")
        shown = "-" if value is None else f"{value:,.3f}"
        lines.append(f"  {name:52s} {shown:>12s}  target {target:8s} {mark}")
    return "\n".join(lines)


def chart(results: list[Record], path: Path) -> Path | None:
    """Latency p50 per transport and I/O-bound throughput at c=8, per system (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    at = _index(results)
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in results)]
    transports = [t for t in ("stdio", "http", "sse", "memory") if any(r["transport"] == t for r in results)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(1, len(systems))
    for index, system in enumerate(systems):
        values = [at.get((system, t, "latency", 1, "p50_us"), 0) for t in transports]
        left.bar([x + index * width for x in range(len(transports))], values, width, label=system)
    left.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(transports))], transports)
    left.set_ylabel("p50 latency of one echo call (µs, lower is better)")
    left.set_title("latency")
    left.legend(fontsize=8)
    io_transports = [t for t in transports if any(k[1] == t and k[2] == "throughput_io" for k in at)]
    for index, system in enumerate(systems):
        values = [at.get((system, t, "throughput_io", 8, "calls_per_s"), 0) for t in io_transports]
        right.bar([x + index * width for x in range(len(io_transports))], values, width, label=system)
    right.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(io_transports))], io_transports)
    right.set_ylabel("calls/s, 8 concurrent callers, 20 ms tool (higher is better)")
    right.set_title("throughput_io, concurrency 8")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
