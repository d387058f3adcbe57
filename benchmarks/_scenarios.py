"""The scenarios. Each function measures one system once (one round) and returns its metrics.

``python -m benchmarks`` calls them in interleaved rounds (A B C A B C …) and
:func:`record` turns the rounds of a cell into a record: the median with its min-max spread.
Client CPU is ``time.process_time()`` of this process, which runs every client (and the
portal's or a seed's loop threads); the servers are separate processes, except on the
``memory`` transport, where the server shares the process and its CPU is counted too.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
import psutil

from ._systems import REFERENCES, SYSTEMS, System, Target, Targets

Record = dict[str, Any]
Metrics = dict[str, float]
T = TypeVar("T")


def system(name: str) -> System:
    return SYSTEMS[name] if name in SYSTEMS else REFERENCES[name]


def on_system(
    name: str,
    targets: Targets,
    async_body: Callable[[Any], Awaitable[T]],
    thread_body: Callable[[Any], T],
) -> T:
    """Open ``name`` on ``targets`` and run the body that fits how its callers run."""
    chosen = system(name)
    if chosen.runs_on == "threads":
        with chosen.open(targets) as handle:
            return thread_body(handle)

    async def main() -> T:
        async with chosen.open(targets) as handle:
            return await async_body(handle)

    return anyio.run(main, backend=chosen.runs_on)


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """``work(0)`` … ``work(count - 1)``, each in its own thread, started together."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(count) as executor:
        return list(executor.map(run, range(count)))


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _timings(samples: list[float], cpu: float, unit: str) -> Metrics:
    return {
        "p50_us": _percentile(samples, 0.5) * 1e6,
        "p99_us": _percentile(samples, 0.99) * 1e6,
        f"cpu_us_per_{unit}": cpu / len(samples) * 1e6,
    }


def _timed_sync(calls: int, warmup: int, one: Callable[[], object]) -> tuple[list[float], float]:
    for _ in range(warmup):
        one()
    gc.collect()
    samples: list[float] = []
    cpu = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        one()
        samples.append(time.perf_counter() - start)
    return samples, time.process_time() - cpu


async def _timed_async(
    calls: int, warmup: int, one: Callable[[], Awaitable[object]]
) -> tuple[list[float], float]:
    for _ in range(warmup):
        await one()
    gc.collect()
    samples: list[float] = []
    cpu = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        await one()
        samples.append(time.perf_counter() - start)
    return samples, time.process_time() - cpu


def latency(name: str, target: Target, calls: int, warmup: int) -> Metrics:
    """One caller, sequential echo calls on a fresh session: wall p50/p99 and CPU per call."""
    tool, arguments = target.echo

    async def on_loop(handle: Any) -> tuple[list[float], float]:
        return await _timed_async(calls, warmup, lambda: handle.call("s", tool, arguments))

    def on_threads(handle: Any) -> tuple[list[float], float]:
        return in_threads(1, lambda _: _timed_sync(calls, warmup, lambda: handle.call("s", tool, arguments)))[
            0
        ]

    samples, cpu = on_system(name, {"s": target}, on_loop, on_threads)
    return _timings(samples, cpu, "call")


def hop(name: str, calls: int, warmup: int) -> Metrics:
    """A thread's round trip into the system's event loop thread and back, no MCP request."""

    def on_threads(handle: Any) -> tuple[list[float], float]:
        return in_threads(1, lambda _: _timed_sync(calls, warmup, handle.hop))[0]

    samples, cpu = on_system(name, {}, _unsupported, on_threads)
    return _timings(samples, cpu, "hop")


async def _unsupported(handle: Any) -> Any:
    raise TypeError(f"{handle!r}: this scenario is for threaded systems")


def throughput(
    name: str, target: Target, concurrency: int, seconds: float, tool: str, arguments: dict[str, Any]
) -> Metrics:
    """``concurrency`` callers (tasks, or threads for a threaded system) calling in a loop.

    Calls completed per second, and client CPU per call over the same window.
    """
    counts = [0] * concurrency
    clock: dict[str, float] = {}

    def start() -> float:
        gc.collect()
        clock["cpu"], clock["wall"] = time.process_time(), time.perf_counter()
        return clock["wall"] + seconds

    def stop() -> None:
        clock["cpu"], clock["wall"] = time.process_time() - clock["cpu"], time.perf_counter() - clock["wall"]

    async def on_loop(handle: Any) -> None:
        await handle.call("s", tool, arguments)
        deadline = start()

        async def worker(index: int) -> None:
            while time.perf_counter() < deadline:
                await handle.call("s", tool, arguments)
                counts[index] += 1

        async with anyio.create_task_group() as group:
            for index in range(concurrency):
                group.start_soon(worker, index)
        stop()

    def on_threads(handle: Any) -> None:
        handle.call("s", tool, arguments)
        deadline = start()

        def worker(index: int) -> None:
            while time.perf_counter() < deadline:
                handle.call("s", tool, arguments)
                counts[index] += 1

        in_threads(concurrency, worker)
        stop()

    on_system(name, {"s": target}, on_loop, on_threads)
    done = max(1, sum(counts))
    return {"calls_per_s": done / clock["wall"], "cpu_us_per_call": clock["cpu"] / done * 1e6}


def list_tools_burst(name: str, target: Target, burst: int = 100) -> Metrics:
    """``burst`` concurrent ``list_tools`` on a fresh session: how many reached the server."""

    async def on_loop(handle: Any) -> int:
        async with anyio.create_task_group() as group:
            for _ in range(burst):
                group.start_soon(handle.list_tools, "s")
        return int((await handle.call("s", "list_count", {})).structured_content["result"])

    def on_threads(handle: Any) -> int:
        in_threads(burst, lambda _: handle.list_tools("s"))
        return int(handle.call("s", "list_count", {}).structured_content["result"])

    return {"server_requests": on_system(name, {"s": target}, on_loop, on_threads)}


def shutdown(name: str, make_target: Callable[[], Target], count: int = 10) -> Metrics:
    """Close a system holding ``count`` connected stdio servers; the children left after."""
    targets = {f"s{i}": make_target() for i in range(count)}
    before = _children()
    closing: dict[str, float] = {}

    async def on_loop(handle: Any) -> None:
        tool, arguments = make_target().echo
        async with anyio.create_task_group() as group:
            for server in targets:
                group.start_soon(handle.call, server, tool, arguments)
        closing["start"] = time.perf_counter()

    def on_threads(handle: Any) -> None:
        tool, arguments = make_target().echo
        in_threads(count, lambda index: handle.call(f"s{index}", tool, arguments))
        closing["start"] = time.perf_counter()

    on_system(name, targets, on_loop, on_threads)
    seconds = time.perf_counter() - closing["start"]
    return {"close_s": seconds, "children_left": len(_children() - before)}


def scale(name: str, make_target: Callable[[], Target], count: int, heap: bool) -> Metrics:
    """Open ``count`` stdio servers concurrently and call each once; then close them all.

    With ``heap=False``: seconds to open (nothing to a first answer from every server),
    seconds to close, and child processes left after. With ``heap=True`` (a separate pass:
    tracing slows everything down): the Python heap per open session (``tracemalloc``).
    """
    targets = {f"s{i}": make_target() for i in range(count)}
    tool, arguments = make_target().echo
    before = _children()
    clock: dict[str, float] = {}

    async def on_loop(handle: Any) -> None:
        async with anyio.create_task_group() as group:
            for server in targets:
                group.start_soon(handle.call, server, tool, arguments)
        clock["opened"] = time.perf_counter()
        if heap:
            gc.collect()
            clock["heap"] = tracemalloc.get_traced_memory()[0] - clock["heap_before"]

    async def traced() -> None:
        if heap:
            gc.collect()
            tracemalloc.start()
            clock["heap_before"] = tracemalloc.get_traced_memory()[0]
        try:
            clock["start"] = time.perf_counter()
            async with system(name).open(targets) as handle:
                await on_loop(handle)
            clock["closed"] = time.perf_counter()
        finally:
            if heap:
                tracemalloc.stop()

    assert system(name).runs_on == "trio", "the scale scenario compares trio systems"
    anyio.run(traced, backend="trio")
    if heap:
        return {"heap_kib_per_session": clock["heap"] / 1024 / count}
    return {
        "open_s": clock["opened"] - clock["start"],
        "close_s": clock["closed"] - clock["opened"],
        "children_left": len(_children() - before),
    }


def record(
    system: str, transport: str, scenario: str, concurrency: int, metric: str, rounds: list[float]
) -> Record:
    """One cell: the median over rounds, its min-max, and every round's value in order."""
    return {
        "system": system,
        "transport": transport,
        "scenario": scenario,
        "concurrency": concurrency,
        "metric": metric,
        "value": round(statistics.median(rounds), 3),
        "low": round(min(rounds), 3),
        "high": round(max(rounds), 3),
        "rounds": [round(value, 3) for value in rounds],
    }
