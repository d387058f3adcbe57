"""``python -m benchmarks``: trio-mcp against raw ``mcp.Client``, anyio, fastmcp and the seed designs.

Systems take turns in rounds (A B C A B C …), so drift in machine load touches all alike;
every figure is the median over rounds with its min-max, and every target ratio pairs
systems round by round. Results go to ``benchmarks/results/`` (not tracked by git):
``latest.json``, ``latest.md`` and, with matplotlib, ``latest.png``. ``--update-docs``
also copies the tables and chart into the docs (``docs/benchmark-results.md``,
``docs/img/benchmarks.png``); nothing else writes a tracked file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

from . import _scenarios as sc
from ._report import HOP_ROWS, SCENARIOS, chart, markdown, table, targets_table
from ._systems import SYSTEMS, HttpBenchServer, Target, typescript_server_installed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ALL = list(SYSTEMS)
#: Who runs at each number of callers (the other levels: raw and pool). At 8: every system,
#: and trio's own ways from a thread into trio (the floor under the portal); at 128: also
#: the pool with room for every caller in flight (the default Limits(max_concurrent=64)
#: queues half of them in the pool, by design).
THROUGHPUT_ROWS = {8: [*ALL, "trio.from_thread", "run_sync_soon"], 128: ["raw", "pool", "pool-256"]}
# Loggers that would print a line per request (httpx2 logs every HTTP request at INFO).
NOISY_LOGGERS = ("httpx", "httpx2", "mcp", "fastmcp", "trio_mcp", "uvicorn", "sse_starlette", "FastMCP")


@dataclass
class Step:
    """One measurement of one system in one round; ``weight`` is a rough guess in seconds."""

    scenario: str
    transport: str
    concurrency: int
    system: str
    round: int
    rounds: int
    run: Callable[[], sc.Metrics]
    weight: float


@dataclass
class Settings:
    latency: dict[str, tuple[int, int, int]]  # transport -> (rounds, calls, warm-up calls)
    hop: tuple[int, int, int]  # rounds, hops, warm-up hops
    throughput: tuple[int, float]  # rounds, seconds per measurement
    levels: tuple[int, ...]  # callers for raw and pool (the other systems: 8)
    io: tuple[str, int, float]  # transport, rounds, seconds
    shutdown_rounds: int
    scale: tuple[int, tuple[int, ...]]  # rounds, server counts


FULL = Settings(
    latency={
        "ts-stdio": (5, 1000, 300),
        "stdio": (3, 300, 100),
        "http": (3, 300, 100),
        "sse": (3, 300, 100),
        "memory": (3, 1000, 200),
    },
    hop=(5, 2000, 200),
    throughput=(7, 1.0),
    levels=(8, 32, 128),
    io=("stdio", 3, 2.0),
    shutdown_rounds=3,
    scale=(3, (10, 50, 100)),
)
QUICK = Settings(
    latency={"ts-stdio": (2, 100, 50)},
    hop=(2, 200, 50),
    throughput=(1, 0.2),
    levels=(8, 32, 128),
    io=("memory", 1, 0.3),
    shutdown_rounds=1,
    scale=(1, (10,)),
)
# Rough seconds to start a server and per echo call, for the ETA only.
START = {"ts-stdio": 0.4, "stdio": 1.2, "http": 0.1, "sse": 0.1, "memory": 0.05, "mini-stdio": 0.05}
PER_CALL = {"ts-stdio": 5e-4, "stdio": 1.5e-3, "http": 2.5e-3, "sse": 2.5e-3, "memory": 7e-4}


def _interleaved(
    scenario: str,
    transport: str,
    rounds: int,
    cells: list[tuple[int, list[str], Callable[[str], sc.Metrics]]],
    weight: float,
) -> list[Step]:
    """Round 1 of every (concurrency, system), then round 2 of each, and so on; every
    other round takes the systems in reverse order, so a drift within a round favours none."""
    return [
        Step(scenario, transport, level, name, index, rounds, partial(measure, name), weight)
        for index in range(rounds)
        for level, names, measure in cells
        for name in (names if index % 2 == 0 else names[::-1])
    ]


def plan(settings: Settings, http: HttpBenchServer) -> list[Step]:
    """Every step of a run, in run order (measurements bound with ``partial``, never closures)."""
    steps: list[Step] = []
    mini = partial(Target, "mini-stdio", http)
    for transport, (rounds, calls, warmup) in settings.latency.items():
        latency = partial(sc.latency, target=Target(transport, http), calls=calls, warmup=warmup)
        weight = START[transport] + (calls + warmup) * PER_CALL[transport]
        steps += _interleaved("latency", transport, rounds, [(1, ALL, latency)], weight)
    rounds, hops, warmup = settings.hop
    hop = partial(sc.hop, calls=hops, warmup=warmup)
    steps += _interleaved("hop", "none", rounds, [(1, list(HOP_ROWS), hop)], 0.2)
    rounds, seconds = settings.throughput
    ts = Target("ts-stdio", http)
    tool, arguments = ts.echo
    cells: list[tuple[int, list[str], Callable[[str], sc.Metrics]]] = [
        (
            level,
            THROUGHPUT_ROWS.get(level, ["raw", "pool"]),
            partial(
                sc.throughput, target=ts, concurrency=level, seconds=seconds, tool=tool, arguments=arguments
            ),
        )
        for level in settings.levels
    ]
    steps += _interleaved("throughput", "ts-stdio", rounds, cells, START["ts-stdio"] + seconds + 0.2)
    transport, rounds, seconds = settings.io
    waits = partial(
        sc.throughput,
        target=Target(transport, http),
        concurrency=8,
        seconds=seconds,
        tool="wait",
        arguments={"ms": 20},
    )
    steps += _interleaved(
        "throughput_io", transport, rounds, [(8, ALL, waits)], START[transport] + seconds + 0.2
    )
    burst = partial(sc.list_tools_burst, target=mini(), burst=100)
    steps += _interleaved("list_tools_burst", "mini-stdio", 1, [(100, ALL, burst)], 0.5)
    closing = partial(sc.shutdown, make_target=mini, count=10)
    steps += _interleaved("shutdown", "mini-stdio", settings.shutdown_rounds, [(10, ALL, closing)], 0.8)
    rounds, counts = settings.scale
    for count in counts:
        # The timed and the traced pass of one size share a round, so they see the same machine.
        timed = partial(sc.scale, make_target=mini, count=count, heap=False)
        traced = partial(sc.scale, make_target=mini, count=count, heap=True)
        steps += _interleaved(
            "scale",
            "mini-stdio",
            rounds,
            [(count, ["raw", "pool"], timed), (count, ["raw", "pool"], traced)],
            0.05 * count,
        )
    return steps


class Progress:
    """A one-line progress bar with an ETA on stderr.

    When stderr is not a terminal: a line as each scenario starts, and every half minute.
    """

    EVERY = 30.0

    def __init__(self, steps: list[Step], stream: TextIO = sys.stderr) -> None:
        self.total = sum(step.weight for step in steps) or 1.0
        self.count = len(steps)
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.done = 0.0
        self.scenario = ""
        self.printed = 0.0

    @staticmethod
    def _clock(seconds: float) -> str:
        return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"

    def step(self, index: int, step: Step) -> None:
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else None
        eta = f"~{self._clock(left)} left" if left is not None else "estimating"
        if self.tty:
            filled = int(30 * self.done / self.total)
            label = f"{step.scenario} {step.transport} {step.system} x{step.concurrency}"
            self.stream.write(
                f"\r\x1b[K[{'#' * filled}{'.' * (30 - filled)}] {index}/{self.count} {label[:44]:44s} "
                f"round {step.round + 1}/{step.rounds}  {self._clock(elapsed)} elapsed, {eta}"
            )
            self.stream.flush()
        elif step.scenario != self.scenario or elapsed - self.printed >= self.EVERY:
            self.stream.write(
                f"[{index}/{self.count}] {step.scenario} ({self._clock(elapsed)} elapsed, {eta})\n"
            )
            self.stream.flush()
            self.printed = elapsed
        self.scenario = step.scenario

    def advance(self, step: Step) -> None:
        self.done += step.weight

    def finish(self) -> None:
        prefix = "\r\x1b[K" if self.tty else ""
        self.stream.write(
            f"{prefix}done: {self.count} measurements in {self._clock(time.monotonic() - self.started)}\n"
        )


def _quiet_logging() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # An in-process server configures root logging at INFO: drop every INFO record.
    logging.disable(logging.INFO)


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        **{
            name.replace("-", "_"): _version(name) for name in ("trio-mcp", "mcp", "trio", "anyio", "fastmcp")
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(quick: bool = False, only: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the plan; the report holds the machine and one record per (cell, metric)."""
    _quiet_logging()
    http = HttpBenchServer()
    samples: dict[tuple[str, str, str, int, str], list[float]] = {}
    try:
        steps = [s for s in plan(QUICK if quick else FULL, http) if not only or s.scenario in only]
        if any(s.transport == "ts-stdio" for s in steps) and not typescript_server_installed():
            raise SystemExit("the TypeScript reference server is not installed: run `make peers` first")
        bar = Progress(steps) if progress else None
        for index, step in enumerate(steps, 1):
            if bar:
                bar.step(index, step)
            for metric, value in step.run().items():
                key = (step.system, step.transport, step.scenario, step.concurrency, metric)
                samples.setdefault(key, []).append(value)
            if bar:
                bar.advance(step)
        if bar:
            bar.finish()
    finally:
        http.close()
    results = [sc.record(*key, rounds) for key, rounds in samples.items()]
    return {"machine": _machine(), "quick": quick, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run that finishes in well under a minute"
    )
    parser.add_argument(
        "--only", action="append", choices=list(SCENARIOS), help="run only this scenario (repeatable)"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=RESULTS,
        help=f"where to write the results (default {RESULTS})",
    )
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="also refresh docs/benchmark-results.md and docs/img/benchmarks.png (full runs only)",
    )
    args = parser.parse_args()
    if args.update_docs and (args.quick or args.only):
        parser.error("--update-docs takes a full run: drop --quick and --only")
    report = run(quick=args.quick, only=args.only)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    command = "make bench" + (f' ARGS="{" ".join(sys.argv[1:])}"' if sys.argv[1:] else "")
    page = markdown(report, command)
    (args.out / "latest.md").write_text(page)
    print(table(report["results"]))
    print()
    print(targets_table(report["results"]))
    png = chart(report["results"], args.out / "latest.png")
    print(f"\nresults: {args.out}/latest.json, latest.md" + (", latest.png" if png else ""))
    if args.update_docs:
        (ROOT / "docs" / "benchmark-results.md").write_text(page)
        if png:
            shutil.copyfile(png, ROOT / "docs" / "img" / "benchmarks.png")
        print("docs updated: docs/benchmark-results.md, docs/img/benchmarks.png")


if __name__ == "__main__":
    main()
