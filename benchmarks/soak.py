"""Soak test: threads through a portal and trio tasks through a pool, with faults.

Usage::

    python -m benchmarks.soak --calls 20000

Threads call a portal and trio tasks call a pool at the same time, over stdio,
Streamable HTTP and SSE, with random short timeouts, caller cancellations and kill -9
of stdio servers. Every call must return exactly once, every answer must be right,
and the process's file descriptors, threads and child processes must come back to
where they started. Prints a report; exits non-zero if anything was lost or leaked.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import trio
from tests.server_processes import ServerProcess

import trio_mcp
from trio_mcp import result_text

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "servers" / "test_server.py")


class Ledger:
    """Every call's one outcome, recorded thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: dict[int, str] = {}
        self.duplicates = 0
        self.wrong = 0
        self.unclassified: list[str] = []  # errors that reached the generic MCPPoolError branch

    def record_error(self, call_id: int, error: trio_mcp.MCPPoolError) -> None:
        if type(error) is trio_mcp.MCPPoolError:
            cause = error.__cause__
            with self.lock:
                self.unclassified.append(f"{error} <- {type(cause).__name__}: {cause}"[:300])
        self.record(call_id, type(error).__name__)

    def record(self, call_id: int, outcome: str) -> None:
        with self.lock:
            if call_id in self.outcomes:
                self.duplicates += 1
            self.outcomes[call_id] = outcome


def _http_server() -> ServerProcess:
    return ServerProcess([sys.executable, SERVER, "http"]).start()


def _servers(port: int) -> dict[str, trio_mcp.ServerConfig]:
    fast = trio_mcp.ReconnectPolicy(initial_backoff=0.01, max_backoff=0.1, failure_threshold=50)
    return {
        "stdio-a": trio_mcp.StdioServer(sys.executable, [SERVER], reconnect=fast),
        "stdio-b": trio_mcp.StdioServer(sys.executable, [SERVER], reconnect=fast),
        "http": trio_mcp.StreamableHttpServer(f"http://127.0.0.1:{port}/mcp", reconnect=fast),
        "sse": trio_mcp.SseServer(f"http://127.0.0.1:{port}/sse", reconnect=fast),
    }


def _plan(rng: random.Random) -> tuple[str, dict[str, Any], float | None, str]:
    """(tool, arguments, timeout, expectation) for one call."""
    roll = rng.random()
    if roll < 0.08:
        return "slow", {"seconds": 5}, 0.05, "timeout"
    if roll < 0.12:
        return "slow", {"seconds": 5}, None, "cancel"
    return "echo", {"text": f"v{rng.getrandbits(40)}"}, None, "echo"


def _outcome(ledger: Ledger, call_id: int, tool: str, arguments: dict[str, Any], result: Any) -> None:
    if tool == "echo" and result_text(result) != arguments["text"]:
        with ledger.lock:
            ledger.wrong += 1
    ledger.record(call_id, "ok")


def _thread_worker(
    portal: trio_mcp.Portal, ledger: Ledger, ids: list[int], servers: list[str], seed: int
) -> None:
    rng = random.Random(seed)
    for call_id in ids:
        server = rng.choice(servers)
        tool, arguments, timeout, expect = _plan(rng)
        if expect == "cancel":
            timeout = 0.02  # a thread cannot be cancelled from outside: a tight deadline stands in
        try:
            result = portal.tool_call(server, tool, arguments, timeout=timeout)
        except trio_mcp.MCPPoolError as error:
            ledger.record_error(call_id, error)
        else:
            _outcome(ledger, call_id, tool, arguments, result)


async def _trio_side(
    servers: dict[str, trio_mcp.ServerConfig],
    ledger: Ledger,
    ids: list[int],
    tasks: int,
    seed: int,
    kills: list[int],
    stop_killing: threading.Event,
    kill_every: float,
) -> None:
    rng = random.Random(seed)
    async with trio_mcp.open_mcp_pool(servers, call_timeout=10) as pool:
        queue = list(ids)

        async def task(task_seed: int) -> None:
            task_rng = random.Random(task_seed)
            while queue:
                call_id = queue.pop()
                server = task_rng.choice(list(servers))
                tool, arguments, timeout, expect = _plan(task_rng)
                try:
                    if expect == "cancel":
                        with trio.move_on_after(task_rng.uniform(0.001, 0.05)) as scope:
                            result = await pool.tool_call(server, tool, arguments)
                        if scope.cancelled_caught:
                            ledger.record(call_id, "cancelled")
                            continue
                    elif timeout is not None:
                        try:
                            with trio.fail_after(timeout):
                                result = await pool.tool_call(server, tool, arguments)
                        except trio.TooSlowError:
                            ledger.record(call_id, "ToolCallTimeout")
                            continue
                    else:
                        result = await pool.tool_call(server, tool, arguments)
                except trio_mcp.MCPPoolError as error:
                    ledger.record_error(call_id, error)
                else:
                    _outcome(ledger, call_id, tool, arguments, result)

        async def killer() -> None:
            while not stop_killing.is_set():
                await trio.sleep(kill_every)
                children = [
                    child
                    for child in psutil.Process().children(recursive=True)
                    if SERVER in " ".join(child.cmdline()) and "http" not in child.cmdline()
                ]
                if children:
                    victim = rng.choice(children)
                    try:
                        os.kill(victim.pid, signal.SIGKILL)
                        kills.append(victim.pid)
                    except ProcessLookupError:
                        pass

        async with trio.open_nursery() as nursery:
            if kill_every > 0:
                nursery.start_soon(killer)
            async with trio.open_nursery() as workers:
                for index in range(tasks):
                    workers.start_soon(task, seed * 1000 + index)
            nursery.cancel_scope.cancel()


def _resources() -> dict[str, int]:
    me = psutil.Process()
    return {
        "fds": me.num_fds(),
        # trio's idle worker-thread cache (used for DNS lookups) is not ours to count.
        "threads": len([t for t in threading.enumerate() if not t.name.startswith("Trio thread")]),
        "children": len([c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]),
    }


def soak(
    calls: int, *, threads: int = 8, tasks: int = 16, kill_every: float = 0.5, seed: int = 1
) -> dict[str, Any]:
    """Run the soak; return the report (see the module docstring)."""
    http = _http_server()
    try:
        servers = _servers(http.port)
        # Warm up once so lazily created global state is in the baseline.
        with trio_mcp.start_portal(servers) as portal:
            for name in servers:
                portal.tool_call(name, "echo", {"text": "warm"})
        time.sleep(0.2)
        before = _resources()
        rss_before = psutil.Process().memory_info().rss
        ledger = Ledger()
        thread_ids = list(range(calls // 2))
        trio_ids = list(range(calls // 2, calls))
        kills: list[int] = []
        stop_killing = threading.Event()
        start = time.monotonic()
        with trio_mcp.start_portal(servers, call_timeout=10) as portal:
            workers = [
                threading.Thread(
                    target=_thread_worker,
                    args=(portal, ledger, thread_ids[index::threads], list(servers), seed + index),
                )
                for index in range(threads)
            ]
            for worker in workers:
                worker.start()
            trio.run(_trio_side, servers, ledger, trio_ids, tasks, seed, kills, stop_killing, kill_every)
            for worker in workers:
                worker.join()
        elapsed = time.monotonic() - start
        time.sleep(0.5)  # let the kernel finish reaping
        after = _resources()
        rss_after = psutil.Process().memory_info().rss
    finally:
        http.stop()
    by_type = collections.Counter(ledger.outcomes.values())
    lost = calls - len(ledger.outcomes)
    leaks = {key: after[key] - before[key] for key in before if after[key] != before[key]}
    if leaks:
        leaks["thread_names"] = [t.name for t in threading.enumerate()]  # type: ignore[assignment]
    return {
        "calls": calls,
        "seconds": round(elapsed, 2),
        "calls_per_s": round(calls / elapsed, 1),
        "faults_injected": {"kill_9": len(kills), "timeouts_and_cancellations": "random ~12%"},
        "outcomes": dict(sorted(by_type.items())),
        "wrong_answers": ledger.wrong,
        "answered_twice": ledger.duplicates,
        "unclassified_errors": ledger.unclassified[:10],
        "lost": lost,
        "leaks": leaks,
        "rss_growth_mib": round((rss_after - rss_before) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--kill-every", type=float, default=0.5, help="seconds between kill -9s (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = soak(
        args.calls, threads=args.threads, tasks=args.tasks, kill_every=args.kill_every, seed=args.seed
    )
    print(json.dumps(report, indent=2))
    bad = report["lost"] or report["wrong_answers"] or report["answered_twice"] or report["leaks"]
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
