"""The scenarios: each measures one system on one transport and returns JSON records."""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import trio

from ._systems import THREAD_SYSTEMS, TRIO_SYSTEMS, Target, Targets

Record = dict[str, Any]
ECHO: dict[str, Any] = {"text": "hello"}


def record(
    system: str, transport: str, scenario: str, metric: str, value: float, concurrency: int = 1
) -> Record:
    return {
        "system": system,
        "transport": transport,
        "scenario": scenario,
        "concurrency": concurrency,
        "metric": metric,
        "value": round(value, 3),
    }


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _on_trio(system: str, targets: Targets, body: Callable[[Any], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with TRIO_SYSTEMS[system](targets) as handle:
            return await body(handle)

    return trio.run(main)


def _on_threads(system: str, targets: Targets, body: Callable[[Any], Any]) -> Any:
    with THREAD_SYSTEMS[system](targets) as handle:
        return body(handle)


def _latency_samples(system: str, target: Target, calls: int) -> list[float]:
    warmup = max(50, calls // 5)  # a fresh server process answers its first calls slower
    samples: list[float] = []

    async def on_trio(handle: Any) -> None:
        for _ in range(warmup):
            await handle.call("s", "echo", ECHO)
        for _ in range(calls):
            start = time.perf_counter()
            await handle.call("s", "echo", ECHO)
            samples.append(time.perf_counter() - start)

    def on_threads(handle: Any) -> None:
        for _ in range(warmup):
            handle.call("s", "echo", ECHO)
        for _ in range(calls):
            start = time.perf_counter()
            handle.call("s", "echo", ECHO)
            samples.append(time.perf_counter() - start)

    targets = {"s": target}
    if system in TRIO_SYSTEMS:
        _on_trio(system, targets, on_trio)
    else:
        _on_threads(system, targets, on_threads)
    return samples


def latency(
    systems: list[str], make_target: Callable[[], Target], calls: int, rounds: int = 3
) -> list[Record]:
    """Sequential echo calls: p50 and p99 in microseconds, per system.

    The systems take turns over ``rounds`` rounds (a fresh session each time), so a
    drift in machine load or server speed touches every system alike.
    """
    samples: dict[str, list[float]] = {system: [] for system in systems}
    for _ in range(rounds):
        for system in systems:
            samples[system] += _latency_samples(system, make_target(), max(1, calls // rounds))
    transport = make_target().transport
    records: list[Record] = []
    for system in systems:
        records.append(
            record(system, transport, "latency", "p50_us", _percentile(samples[system], 0.5) * 1e6)
        )
        records.append(
            record(system, transport, "latency", "p99_us", _percentile(samples[system], 0.99) * 1e6)
        )
    return records


def throughput(
    system: str,
    target: Target,
    concurrency: int,
    seconds: float,
    *,
    tool: str,
    arguments: dict[str, Any],
    scenario: str,
) -> list[Record]:
    """Calls completed per second by ``concurrency`` tasks (trio systems) or threads (others).

    Every worker calls in a loop until the deadline; calls finished are counted.
    """
    counts = [0] * concurrency

    async def on_trio(handle: Any) -> float:
        await handle.call("s", tool, arguments)
        deadline = time.perf_counter() + seconds

        async def worker(index: int) -> None:
            while time.perf_counter() < deadline:
                await handle.call("s", tool, arguments)
                counts[index] += 1

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for index in range(concurrency):
                nursery.start_soon(worker, index)
        return time.perf_counter() - start

    def on_threads(handle: Any) -> float:
        handle.call("s", tool, arguments)
        deadline = time.perf_counter() + seconds

        def worker(index: int) -> None:
            while time.perf_counter() < deadline:
                handle.call("s", tool, arguments)
                counts[index] += 1

        with ThreadPoolExecutor(concurrency) as executor:
            start = time.perf_counter()
            list(executor.map(worker, range(concurrency)))
            return time.perf_counter() - start

    targets = {"s": target}
    elapsed = (
        _on_trio(system, targets, on_trio)
        if system in TRIO_SYSTEMS
        else _on_threads(system, targets, on_threads)
    )
    return [record(system, target.transport, scenario, "calls_per_s", sum(counts) / elapsed, concurrency)]


def list_tools_burst(system: str, target: Target, burst: int = 100) -> list[Record]:
    """``burst`` concurrent list_tools on a fresh session; how many reached the server.

    ``seconds`` runs from opening the system (no session yet) to the last answer.
    """
    targets = {"s": target}

    async def on_trio() -> tuple[float, int]:
        start = time.perf_counter()
        async with TRIO_SYSTEMS[system](targets) as handle:
            async with trio.open_nursery() as nursery:
                for _ in range(burst):
                    nursery.start_soon(handle.list_tools, "s")
            elapsed = time.perf_counter() - start
            count = (await handle.call("s", "list_count", {})).structured_content["result"]
            return elapsed, count

    def on_threads() -> tuple[float, int]:
        barrier = threading.Barrier(burst)
        start = time.perf_counter()
        with THREAD_SYSTEMS[system](targets) as handle:

            def one(_: int) -> None:
                barrier.wait()
                handle.list_tools("s")

            with ThreadPoolExecutor(burst) as executor:
                list(executor.map(one, range(burst)))
            elapsed = time.perf_counter() - start
            count = handle.call("s", "list_count", {}).structured_content["result"]
            return elapsed, count

    elapsed, count = trio.run(on_trio) if system in TRIO_SYSTEMS else on_threads()
    return [
        record(system, target.transport, "list_tools_burst", "server_requests", count, burst),
        record(system, target.transport, "list_tools_burst", "seconds", elapsed, burst),
    ]


def connect_many(system: str, make_target: Callable[[], Target], count: int = 10) -> list[Record]:
    """Open ``count`` stdio servers at once (first call on each) vs the slowest single open.

    ``slowest_single_seconds`` is the slowest of three one-server opens in the same run:
    a design that connects concurrently takes about that long for all ``count``.
    """
    targets = {f"s{i}": make_target() for i in range(count)}
    total = _open_and_call(system, targets)
    alone = max(_open_and_call(system, {"s0": make_target()}) for _ in range(3))
    transport = targets["s0"].transport
    return [
        record(system, transport, "connect_many", "seconds", total, count),
        record(system, transport, "connect_many", "slowest_single_seconds", alone, count),
    ]


def _open_and_call(system: str, targets: Targets) -> float:
    """Seconds from nothing to a first answer from every target."""

    async def on_trio() -> float:
        start = time.perf_counter()
        async with TRIO_SYSTEMS[system](targets) as handle:
            async with trio.open_nursery() as nursery:
                for name in targets:
                    nursery.start_soon(handle.call, name, "echo", ECHO)
            return time.perf_counter() - start

    def on_threads() -> float:
        start = time.perf_counter()
        with THREAD_SYSTEMS[system](targets) as handle:
            with ThreadPoolExecutor(len(targets)) as executor:
                list(executor.map(lambda name: handle.call(name, "echo", ECHO), targets))
            return time.perf_counter() - start

    return trio.run(on_trio) if system in TRIO_SYSTEMS else on_threads()


def shutdown(system: str, make_target: Callable[[], Target], count: int = 10) -> list[Record]:
    """Close a system holding ``count`` connected stdio servers."""
    targets = {f"s{i}": make_target() for i in range(count)}
    closed_in: list[float] = []

    async def on_trio() -> None:
        manager = TRIO_SYSTEMS[system](targets)
        handle = await manager.__aenter__()
        async with trio.open_nursery() as nursery:
            for name in targets:
                nursery.start_soon(handle.call, name, "echo", ECHO)
        start = time.perf_counter()
        await manager.__aexit__(None, None, None)
        closed_in.append(time.perf_counter() - start)

    if system in TRIO_SYSTEMS:
        trio.run(on_trio)
    else:
        manager = THREAD_SYSTEMS[system](targets)
        handle = manager.__enter__()
        with ThreadPoolExecutor(count) as executor:
            list(executor.map(lambda name: handle.call(name, "echo", ECHO), targets))
        start = time.perf_counter()
        manager.__exit__(None, None, None)
        closed_in.append(time.perf_counter() - start)
    return [record(system, targets["s0"].transport, "shutdown", "seconds", closed_in[0], count)]


def memory(system: str, make_target: Callable[[], Target], count: int = 10) -> list[Record]:
    """Client-side resident memory per idle session (this process only, children excluded)."""
    targets = {f"s{i}": make_target() for i in range(count)}
    process = psutil.Process()
    grown: list[float] = []

    def measure_before() -> int:
        gc.collect()
        return int(process.memory_info().rss)

    async def on_trio() -> None:
        before = measure_before()
        async with TRIO_SYSTEMS[system](targets) as handle:
            async with trio.open_nursery() as nursery:
                for name in targets:
                    nursery.start_soon(handle.call, name, "echo", ECHO)
            gc.collect()
            grown.append(process.memory_info().rss - before)

    if system in TRIO_SYSTEMS:
        trio.run(on_trio)
    else:
        before = measure_before()
        with THREAD_SYSTEMS[system](targets) as handle:
            with ThreadPoolExecutor(count) as executor:
                list(executor.map(lambda name: handle.call(name, "echo", ECHO), targets))
            gc.collect()
            grown.append(process.memory_info().rss - before)
    return [
        record(
            system,
            targets["s0"].transport,
            "memory",
            "kib_per_session",
            max(0.0, grown[0]) / 1024 / count,
            count,
        )
    ]


def median(values: list[float]) -> float:
    return statistics.median(values)
