"""Sequential echo latency over stdio: raw ``mcp.Client`` vs the pool vs the portal.

Same server script, same run, one process per system. Usage::

    .venv/bin/python -m benchmarks.latency [--calls 2000]

Prints p50/p99 in microseconds and the ratios the issues ask for (pool / raw, and
portal - raw: the cost of one portal hop). The portal hop is also measured in
isolation against an in-memory MCP server, where the server costs next to nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio
from mcp import Client, StdioServerParameters

import trio_mcp

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "servers" / "test_server.py")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


async def raw(calls: int) -> list[float]:
    params = StdioServerParameters(command=sys.executable, args=[SERVER])
    async with Client(params, cache=None) as client:
        for _ in range(200):
            await client.call_tool("echo", {"text": "x"})
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            await client.call_tool("echo", {"text": "x"})
            samples.append(time.perf_counter() - start)
        return samples


async def pool(calls: int) -> list[float]:
    servers = {"s": trio_mcp.StdioServer(sys.executable, [SERVER])}
    async with trio_mcp.open_mcp_pool(servers) as mcp_pool:
        for _ in range(200):
            await mcp_pool.tool_call("s", "echo", {"text": "x"})
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            await mcp_pool.tool_call("s", "echo", {"text": "x"})
            samples.append(time.perf_counter() - start)
        return samples


def portal(calls: int) -> list[float]:
    servers = {"s": trio_mcp.StdioServer(sys.executable, [SERVER])}
    with trio_mcp.start_portal(servers) as mcp_portal:
        for _ in range(200):
            mcp_portal.tool_call("s", "echo", {"text": "x"})
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            mcp_portal.tool_call("s", "echo", {"text": "x"})
            samples.append(time.perf_counter() - start)
        return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"raw": [], "pool": [], "portal": []}
    # Interleave rounds so drift in machine load hits every system alike.
    for _ in range(args.rounds):
        results["raw"] += trio.run(raw, args.calls)
        results["pool"] += trio.run(pool, args.calls)
        results["portal"] += portal(args.calls)
    table = {name: percentiles(samples) for name, samples in results.items()}
    for name, (p50, p99) in table.items():
        print(f"{name:7s} p50 {p50:8.1f} us   p99 {p99:8.1f} us   ({len(results[name])} calls)")
    raw50, raw99 = table["raw"]
    print(f"pool / raw p50: {table['pool'][0] / raw50:.3f}")
    print(
        f"portal - raw p50: {table['portal'][0] - raw50:+.1f} us   p99: {table['portal'][1] - raw99:+.1f} us"
    )
    print(f"portal - pool p50: {table['portal'][0] - table['pool'][0]:+.1f} us (one thread hop)")


if __name__ == "__main__":
    main()
