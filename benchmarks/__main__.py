"""``python -m benchmarks``: trio-mcp against raw ``mcp.Client`` and the seed designs.

Options: ``--quick`` (a smoke run, well under a minute), ``--json PATH`` (also write the
results there), ``--only NAME`` (one scenario; repeatable). Always writes
``benchmarks/results/latest.json`` and, when matplotlib is installed, the chart
``benchmarks/results/latest.png``; prints a table and the target ratios at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mcp
import trio

import trio_mcp

from . import _scenarios as sc
from ._report import chart, markdown, ratios, table
from ._systems import SYSTEMS, HttpBenchServer, Target

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = [
    "latency",
    "throughput",
    "throughput_io",
    "list_tools_burst",
    "connect_many",
    "shutdown",
    "memory",
]


def _plan(quick: bool, http: HttpBenchServer) -> list[tuple[str, str, Callable[[], list[sc.Record]]]]:
    """(scenario, label, job) in run order."""
    # --quick is a smoke run: latency over stdio and in memory, everything else in
    # memory or on the tiny stdio server, so it finishes in well under a minute.
    transports = ["stdio", "memory"] if quick else ["stdio", "http", "sse", "memory"]
    io_transports = ["memory"] if quick else ["stdio", "http"]
    calls = 200 if quick else 2000
    seconds = 0.25 if quick else 2.0
    levels = [1, 8, 32]
    burst_target = (lambda: Target("memory", http)) if quick else (lambda: Target("stdio", http))
    mini = lambda: Target("mini-stdio", http)  # noqa: E731
    jobs: list[tuple[str, str, Callable[[], list[sc.Record]]]] = [
        (
            "latency",
            f"all systems/{transport}",
            lambda t=transport: sc.latency(SYSTEMS, lambda: Target(t, http), calls),
        )
        for transport in transports
    ]
    for transport in io_transports:
        for level in levels:
            for system in SYSTEMS:
                target = Target(transport, http)
                jobs.append(
                    (
                        "throughput",
                        f"{system}/{transport}/c{level}",
                        lambda s=system, t=target, c=level: sc.throughput(
                            s, t, c, seconds, tool="echo", arguments=sc.ECHO, scenario="throughput"
                        ),
                    )
                )
                jobs.append(
                    (
                        "throughput_io",
                        f"{system}/{transport}/c{level}",
                        lambda s=system, t=target, c=level: sc.throughput(
                            s, t, c, seconds * 2, tool="wait", arguments={"ms": 20}, scenario="throughput_io"
                        ),
                    )
                )
    for system in SYSTEMS:
        jobs.append(("list_tools_burst", system, lambda s=system: sc.list_tools_burst(s, burst_target())))
        jobs.append(("connect_many", system, lambda s=system: sc.connect_many(s, mini)))
        jobs.append(("shutdown", system, lambda s=system: sc.shutdown(s, mini)))
        jobs.append(("memory", system, lambda s=system: sc.memory(s, mini)))
    return jobs


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "trio_mcp": trio_mcp.__version__,
        "mcp": getattr(mcp, "__version__", None) or _version("mcp"),
        "trio": trio.__version__,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def run(quick: bool = False, only: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    # An in-process MCPServer (the memory transport) configures root logging at INFO;
    # keep the library's own connect/disconnect lines out of the progress display.
    logging.getLogger("trio_mcp").setLevel(logging.WARNING)
    http = HttpBenchServer()
    results: list[sc.Record] = []
    try:
        jobs = [job for job in _plan(quick, http) if not only or job[0] in only]
        started = time.monotonic()
        for index, (scenario, label, job) in enumerate(jobs, 1):
            if progress:
                print(
                    f"\r[{index:3d}/{len(jobs)}] {scenario:17s} {label:40s}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
            results.extend(job())
        if progress:
            print(
                f"\rdone: {len(jobs)} measurements in {time.monotonic() - started:.0f}s" + " " * 50,
                file=sys.stderr,
            )
    finally:
        http.close()
    return {"machine": _machine(), "quick": quick, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run that finishes in well under a minute"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)"
    )
    args = parser.parse_args()
    report = run(quick=args.quick, only=args.only)
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(report, indent=2)
    (RESULTS / "latest.json").write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(table(report["results"]))
    print()
    print(ratios(report["results"]))
    png = chart(report["results"], RESULTS / "latest.png")
    if png:
        print(f"\nchart: {png}")
    if not args.quick and not args.only:
        # A full run refreshes the docs page's tables and chart.
        docs = RESULTS.parent.parent / "docs"
        command = "make bench" + (f' ARGS="{" ".join(sys.argv[1:])}"' if sys.argv[1:] else "")
        (docs / "benchmark-results.md").write_text(markdown(report, command))
        if png:
            (docs / "img").mkdir(exist_ok=True)
            (docs / "img" / "benchmarks.png").write_bytes(png.read_bytes())


if __name__ == "__main__":
    main()
