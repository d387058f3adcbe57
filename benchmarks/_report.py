"""Turning result records into readable tables, the table of targets, and a PNG chart.

Every cell shows the median over rounds and, when there were several, its min–max spread.
A target compares two systems *round by round* (the rounds were interleaved, so each
pair saw the same machine), and reports the median of those paired ratios or differences.
"""

from __future__ import annotations

import functools
import operator
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._systems import REFERENCES, SYSTEMS

Record = dict[str, Any]
Key = tuple[str, str, str, int, str]  # system, transport, scenario, concurrency, metric

#: Scenario -> (what it measures, what its concurrency counts).
SCENARIOS = {
    "latency": ("one caller, sequential echo calls", "callers"),
    "hop": (
        "a thread's round trip into the event loop thread, no MCP request (portal: statistics(), "
        "a plain function run in the wake-up itself; portal.call: an async no-op, one task step more)",
        "callers",
    ),
    "throughput": ("callers in a loop of echo calls", "callers"),
    "throughput_io": ("callers in a loop of 20 ms tool calls (I/O-bound)", "callers"),
    "list_tools_burst": ("100 concurrent list_tools on a fresh session", "calls"),
    "shutdown": ("close 10 connected stdio servers", "servers"),
    "scale": ("open N stdio servers concurrently, call each once, close", "servers"),
}
METRICS = {
    "p50_us": "p50 µs",
    "p99_us": "p99 µs",
    "cpu_us_per_call": "CPU µs/call",
    "cpu_us_per_hop": "CPU µs/hop",
    "calls_per_s": "calls/s",
    "server_requests": "server requests",
    "open_s": "open s",
    "close_s": "close s",
    "children_left": "children left",
    "heap_kib_per_session": "heap KiB/session",
}
TS = "ts-stdio"
#: The rows of the hop scenario: the portal's two hops, anyio's, and trio's floors.
HOP_ROWS = ("portal", "portal.call", "anyio-portal", "trio.from_thread", "run_sync_soon")


def _order() -> list[str]:
    return [*SYSTEMS, *REFERENCES]


def _index(results: list[Record]) -> dict[Key, Record]:
    return {(r["system"], r["transport"], r["scenario"], r["concurrency"], r["metric"]): r for r in results}


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(low: float, value: float, high: float, rounds: int) -> str:
    return _fmt(value) if rounds < 2 or low == high else f"{_fmt(value)} [{_fmt(low)}–{_fmt(high)}]"


# -- the tables --------------------------------------------------------------------------


@dataclass
class Block:
    scenario: str
    transport: str
    metrics: list[str]
    rows: list[tuple[str, list[str]]]  # label, one cell per metric
    rounds: int
    note: str

    @property
    def title(self) -> str:
        what, _ = SCENARIOS.get(self.scenario, (self.scenario, ""))
        spread = f"median [min–max] of {self.rounds} rounds" if self.rounds > 1 else "one round"
        return f"{self.scenario} · {self.transport} — {what}{self.note}; {spread}"


def blocks(results: list[Record]) -> Iterator[Block]:
    """One block per (scenario, transport): rows (system, concurrency), columns metrics."""
    order = _order()
    grouped: dict[tuple[str, str], list[Record]] = {}
    for r in results:
        grouped.setdefault((r["scenario"], r["transport"]), []).append(r)
    for (scenario, transport), records in grouped.items():
        metrics = list(dict.fromkeys(r["metric"] for r in records))
        levels = sorted({r["concurrency"] for r in records})
        noun = SCENARIOS.get(scenario, ("", "callers"))[1]
        cells = {(r["system"], r["concurrency"], r["metric"]): r for r in records}
        rows: list[tuple[str, list[str]]] = []
        for level in levels:
            for name in sorted({r["system"] for r in records if r["concurrency"] == level}, key=order.index):
                label = name if len(levels) == 1 else f"{name}, {level} {noun}"
                shown = []
                for metric in metrics:
                    cell = cells.get((name, level, metric))
                    shown.append(
                        "-"
                        if cell is None
                        else _cell(cell["low"], cell["value"], cell["high"], len(cell["rounds"]))
                    )
                rows.append((label, shown))
        rounds = max(len(r["rounds"]) for r in records)
        note = f", {levels[0]} {noun}" if len(levels) == 1 and scenario.startswith("throughput") else ""
        yield Block(scenario, transport, metrics, rows, rounds, note)


def table(results: list[Record]) -> str:
    lines: list[str] = []
    for block in blocks(results):
        heads = [METRICS.get(m, m) for m in block.metrics]
        width = max(len(label) for label, _ in block.rows) + 2
        widths = [max(len(h), *(len(cells[i]) for _, cells in block.rows)) + 3 for i, h in enumerate(heads)]
        lines += ["", block.title]
        lines.append("  " + " " * width + "".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
        for label, cells in block.rows:
            lines.append(
                "  " + label.ljust(width) + "".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
            )
    return "\n".join(lines)


# -- the targets -------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    wanted: str
    value: float
    low: float
    high: float
    met: bool
    borderline: bool  # the rounds' spread reaches the other side of the target
    reason: str  # one line, shown when the target is missed

    @property
    def status(self) -> str:
        if not self.met:
            return "missed"
        return "met (borderline)" if self.borderline else "met"


_WANTED: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
}


def _queued(why: Callable[[float, float], str], unqueued: float, pool: float, raw: float) -> str:
    return (
        f"{why(pool, raw)}; the default Limits(max_concurrent=64) queues callers past 64 in the"
        f" pool (one more task step a call); with max_concurrent=256, {_fmt(unqueued)} calls/s"
    )


def target_checks(results: list[Record]) -> list[Check]:
    """The issue's targets, each from this run's records (skipped when not measured)."""
    at = _index(results)
    checks: list[Check] = []

    def get(system: str, transport: str, scenario: str, level: int, metric: str) -> Record | None:
        return at.get((system, transport, scenario, level, metric))

    def levels(scenario: str) -> list[int]:
        return sorted({r["concurrency"] for r in results if r["scenario"] == scenario})

    def add(
        name: str,
        wanted: str,
        a: Record | None,
        reason: Callable[[float, float], str],
        b: Record | None = None,
        combine: Callable[[float, float], float] | None = None,
    ) -> None:
        """Check ``combine(a, b)`` round by round, or ``a`` alone without ``combine``."""
        if a is None or (combine is not None and b is None):
            return
        if combine is None or b is None:
            paired = list(a["rounds"])
        elif len(a["rounds"]) == len(b["rounds"]):
            paired = [combine(x, y) for x, y in zip(a["rounds"], b["rounds"], strict=True)]
        else:
            paired = [combine(a["value"], b["value"])]
        paired.sort()
        value = statistics.median(paired)
        sign, limit = wanted.split()
        meets = [_WANTED[sign](x, float(limit)) for x in paired]
        # An exact count must hold in every round; a ratio is judged by its median.
        met = all(meets) if sign == "==" else _WANTED[sign](value, float(limit))
        why = ""
        if not met:
            why = reason(a["value"], b["value"] if b is not None else 0.0)
            why += "; some rounds meet it (noise)" if any(meets) else ""
        checks.append(Check(name, wanted, value, paired[0], paired[-1], met, met and not all(meets), why))

    def once(name: str, wanted: str, a: Record | None, unit: str) -> None:
        """A check of one system's own figure; a miss reads "<median> <unit>"."""
        add(name, wanted, a, lambda value, _: f"{_fmt(value)} {unit}")

    # Client CPU per call and latency, one caller, on the fast TypeScript server.
    cpu = {s: get(s, TS, "latency", 1, "cpu_us_per_call") for s in ("raw", "pool", "fastmcp")}
    add(
        "pool client CPU per call ÷ raw mcp.Client",
        "<= 1.05",
        cpu["pool"],
        lambda p, r: (
            f"pool {_fmt(p)} µs vs raw {_fmt(r)} µs of client CPU per call: +{_fmt(p - r)} µs in the pool"
        ),
        cpu["raw"],
        operator.truediv,
    )
    add(
        "pool client CPU per call ÷ fastmcp Client",
        "<= 0.9",
        cpu["pool"],
        lambda p, f: f"pool {_fmt(p)} µs vs fastmcp {_fmt(f)} µs of client CPU per call",
        cpu["fastmcp"],
        operator.truediv,
    )
    hop = {s: get(s, "none", "hop", 1, "p50_us") for s in HOP_ROWS}

    def hop_reason(portal: float, _: float) -> str:
        parts = [f"{_fmt(portal)} µs a hop"]
        for name, label in (
            ("run_sync_soon", "the floor (run_sync_soon + a lock into a bare trio thread)"),
            ("trio.from_thread", "trio.from_thread.run"),
            ("anyio-portal", "anyio's BlockingPortal"),
        ):
            if (row := hop[name]) is not None:
                parts.append(f"{label} {_fmt(row['value'])} µs")
        return "; ".join(parts)

    # Both of the portal's hops: the "portal" row's statistics() is a plain function that
    # the trio thread runs in the wake-up itself; every other method (and call()) runs an
    # async function, one task step more.
    add("portal hop p50: statistics(), run in the wake-up (µs)", "<= 30", hop["portal"], hop_reason)
    add("portal hop p50: call() of an async no-op (µs)", "<= 30", hop["portal.call"], hop_reason)

    def call_reason(p: float, r: float) -> str:
        alone = (
            f"; an async hop alone is {_fmt(hop['portal.call']['value'])} µs" if hop["portal.call"] else ""
        )
        return f"portal {_fmt(p)} µs vs raw {_fmt(r)} µs a call{alone}"

    p50 = {s: get(s, TS, "latency", 1, "p50_us") for s in ("raw", "portal")}
    add("portal call p50 - raw call p50 (µs)", "<= 60", p50["portal"], call_reason, p50["raw"], operator.sub)

    # Throughput on the TypeScript server.
    def cpu_bound(level: int, name: str = "pool") -> Callable[[float, float], str]:
        rows = [get(s, TS, "throughput", level, "cpu_us_per_call") for s in (name, "raw")]

        def why(p: float, r: float) -> str:
            text = f"{name} {_fmt(p)} vs raw {_fmt(r)} calls/s"
            if rows[0] is not None and rows[1] is not None:
                text += (
                    f"; client CPU {_fmt(rows[0]['value'])} vs {_fmt(rows[1]['value'])} µs a call (CPU-bound)"
                )
            return text

        return why

    for level in levels("throughput"):
        pool, raw, unqueued = (
            get(s, TS, "throughput", level, "calls_per_s") for s in ("pool", "raw", "pool-256")
        )
        reason = cpu_bound(level)
        if unqueued is not None and level > 64:
            # Bound now: the loop moves on before a reason is asked for.
            reason = functools.partial(_queued, reason, unqueued["value"])
        add(f"pool throughput ÷ raw, {level} callers", ">= 0.95", pool, reason, raw, operator.truediv)
        add(
            f"pool (max_concurrent=256) throughput ÷ raw, {level} callers",
            ">= 0.95",
            unqueued,
            cpu_bound(level, "pool-256"),
            raw,
            operator.truediv,
        )
    portal8, pool8, anyio8, trio8, soon8 = (
        get(s, TS, "throughput", 8, "calls_per_s")
        for s in ("portal", "pool", "anyio-portal", "trio.from_thread", "run_sync_soon")
    )

    def threads_reason(p: float, q: float) -> str:
        why = f"portal {_fmt(p)} vs pool {_fmt(q)} calls/s"
        for row, label in ((trio8, "trio.from_thread.run"), (soon8, "run_sync_soon + a lock + a task")):
            if row is not None:
                why += f"; {label} into a trio thread of raw clients {_fmt(row['value'] / q)}× the pool"
        return why

    add(
        "portal throughput (8 threads) ÷ pool (8 tasks)",
        ">= 0.75",
        portal8,
        threads_reason,
        pool8,
        operator.truediv,
    )
    add(
        "portal throughput ÷ anyio BlockingPortal (8 threads each)",
        ">= 1.3",
        portal8,
        lambda p, a: f"portal {_fmt(p)} vs anyio BlockingPortal {_fmt(a)} calls/s",
        anyio8,
        operator.truediv,
    )
    # Scale: the largest number of servers measured.
    for most in levels("scale")[-1:]:
        scale = {
            (s, m): get(s, "mini-stdio", "scale", most, m)
            for s in ("pool", "raw")
            for m in ("open_s", "heap_kib_per_session", "close_s", "children_left")
        }
        add(
            f"scale: pool opens {most} servers ÷ raw clients in one nursery",
            "<= 1.1",
            scale["pool", "open_s"],
            lambda p, r: f"pool {_fmt(p)} s vs raw {_fmt(r)} s from nothing to a first answer from each",
            scale["raw", "open_s"],
            operator.truediv,
        )
        add(
            "scale: pool Python heap per session - raw (KiB)",
            "<= 20",
            scale["pool", "heap_kib_per_session"],
            lambda p, r: f"pool {_fmt(p)} KiB vs raw {_fmt(r)} KiB a session (tracemalloc)",
            scale["raw", "heap_kib_per_session"],
            operator.sub,
        )
        once(f"scale: pool closes {most} servers (s)", "<= 1", scale["pool", "close_s"], "s to close")
        left = "children still there right after the pool's exit"
        once(
            f"scale: child processes left after the pool closed {most}",
            "== 0",
            scale["pool", "children_left"],
            left,
        )
    # Keep what is already good.
    for name in ("pool", "portal"):
        burst = get(name, "mini-stdio", "list_tools_burst", 100, "server_requests")
        once(f"{name}: 100 concurrent list_tools reach the server as", "== 1", burst, "tools/list requests")
        closing = get(name, "mini-stdio", "shutdown", 10, "close_s")
        once(f"{name}: shutdown of 10 stdio servers (s)", "<= 2", closing, "s to close")
    for transport in sorted({r["transport"] for r in results if r["scenario"] == "throughput_io"}):
        for name in ("pool", "portal"):
            add(
                f"{name} ÷ seed-ragflow, I/O-bound, 8 callers",
                ">= 6",
                get(name, transport, "throughput_io", 8, "calls_per_s"),
                lambda p, s: f"{_fmt(p)} vs {_fmt(s)} calls/s",
                get("seed-ragflow", transport, "throughput_io", 8, "calls_per_s"),
                operator.truediv,
            )
    return checks


def targets_table(results: list[Record]) -> str:
    checks = target_checks(results)
    if not checks:
        return "targets: none measured in this run"
    width = max(len(c.name) for c in checks) + 2
    lines = ["targets (median [min–max] of the ratios paired round by round)"]
    for c in checks:
        shown = _cell(c.low, c.value, c.high, 2)
        lines.append(
            f"  {c.name.ljust(width)}{shown:>20s}  {c.wanted:8s}  {c.status.upper() if not c.met else c.status}"
        )
        if not c.met:
            lines.append(f"      ↳ {c.reason}")
    return "\n".join(lines)


# -- markdown and chart ---------------------------------------------------------------------


def markdown(report: dict[str, Any], command: str) -> str:
    """The results as markdown: the targets, then one table per scenario and transport."""
    results = report["results"]
    machine = report["machine"]
    lines = [
        f"Produced by `{command}` on {machine['when']} — Python {machine['python']}, "
        f"{machine['cpus']} CPUs (load {machine['load']}), trio-mcp {machine['trio_mcp']}, "
        f"mcp {machine['mcp']}, trio {machine['trio']}, anyio {machine['anyio']}, fastmcp {machine['fastmcp']}.",
        "",
        "### Targets",
        "",
        "| target | measured: median [min–max] | wanted | | on a miss |",
        "|---|---:|---|---|---|",
    ]
    lines += [
        f"| {c.name} | {_cell(c.low, c.value, c.high, 2)} | {c.wanted} | {c.status} | {c.reason} |"
        for c in target_checks(results)
    ]
    for block in blocks(results):
        heads = [METRICS.get(m, m) for m in block.metrics]
        lines += ["", f"### {block.title}", "", "| system | " + " | ".join(heads) + " |"]
        lines.append("|---|" + "---:|" * len(heads))
        lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in block.rows]
    return "\n".join(lines) + "\n"


def chart(results: list[Record], path: Path) -> Path | None:
    """Four panels: CPU and latency per call, throughput, I/O-bound throughput, scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    at = _index(results)
    order = _order()
    colours = {name: f"C{index}" for index, name in enumerate(order)}
    figure, axes = plt.subplots(2, 2, figsize=(14, 9))
    labelled: set[str] = set()

    def bars(axis: Any, groups: list[tuple[str, list[tuple[str, Record | None]]]]) -> None:
        """Grouped bars, each group centred on its tick, one colour per system, min–max whiskers."""
        shown = [[(name, r) for name, r in members if r is not None] for _, members in groups]
        if not any(shown):
            axis.set_axis_off()
            axis.text(0.5, 0.5, "not measured in this run", ha="center", transform=axis.transAxes)
            return
        width = 0.8 / max(len(present) for present in shown)
        for x, present in enumerate(shown):
            for index, (name, r) in enumerate(present):
                axis.bar(
                    x + (index - (len(present) - 1) / 2) * width,
                    r["value"],
                    width,
                    yerr=[[r["value"] - r["low"]], [r["high"] - r["value"]]],
                    capsize=2,
                    color=colours[name],
                    label=None if name in labelled else name,
                )
                labelled.add(name)
        axis.set_xticks(range(len(groups)), [label for label, _ in groups])

    bars(
        axes[0][0],
        [
            (METRICS[m], [(s, at.get((s, TS, "latency", 1, m))) for s in order])
            for m in ("p50_us", "cpu_us_per_call")
        ],
    )
    axes[0][0].set_title("one echo call, TypeScript server over stdio (lower is better)")
    axes[0][0].set_ylabel("µs")
    levels = sorted({k[3] for k in at if k[1] == TS and k[2] == "throughput"})
    bars(
        axes[0][1],
        [
            (f"{c} callers", [(s, at.get((s, TS, "throughput", c, "calls_per_s"))) for s in order])
            for c in levels
        ],
    )
    axes[0][1].set_title("echo throughput, TypeScript server over stdio (higher is better)")
    axes[0][1].set_ylabel("calls/s")
    io = sorted({k[1] for k in at if k[2] == "throughput_io"})
    bars(
        axes[1][0], [(t, [(s, at.get((s, t, "throughput_io", 8, "calls_per_s"))) for s in order]) for t in io]
    )
    axes[1][0].set_title("20 ms tool, 8 callers (higher is better)")
    axes[1][0].set_ylabel("calls/s")
    counts = sorted({k[3] for k in at if k[2] == "scale"})
    if not counts:
        axes[1][1].set_axis_off()
    for name in ("raw", "pool"):
        found = [at[k] for c in counts if (k := (name, "mini-stdio", "scale", c, "open_s")) in at]
        if found:
            axes[1][1].errorbar(
                [r["concurrency"] for r in found],
                [r["value"] for r in found],
                yerr=[[r["value"] - r["low"] for r in found], [r["high"] - r["value"] for r in found]],
                marker="o",
                capsize=3,
                color=colours[name],
                label=None if name in labelled else name,
            )
            labelled.add(name)
    axes[1][1].set_title("open N stdio servers concurrently (lower is better)")
    axes[1][1].set_xlabel("servers")
    axes[1][1].set_xticks(counts)
    highs = [r["high"] for k, r in at.items() if k[2] == "scale" and k[4] == "open_s"]
    axes[1][1].set_ylim(0, max(highs, default=1.0) * 1.15)
    axes[1][1].set_ylabel("seconds to a first answer from each")
    figure.legend(loc="upper center", ncol=max(1, len(labelled)), fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
