"""One large tool result over stdio vs Streamable HTTP, through the pool.

Same SDK-built test server (its ``blob(size)`` tool), same run. Usage::

    .venv/bin/python -m benchmarks.large_result [--mb 50] [--runs 3]

Prints the best and median seconds per transport and the stdio / HTTP ratio of the
best times (the reliability docs promise at most 2).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio

import trio_mcp

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "servers" / "test_server.py")


async def measure(config: trio_mcp.ServerConfig, size: int, runs: int) -> list[float]:
    async with trio_mcp.open_mcp_pool({"s": config}, call_timeout=600) as pool:
        await pool.tool_call("s", "blob", {"size": 10})
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            result = await pool.tool_call("s", "blob", {"size": size})
            samples.append(time.perf_counter() - start)
            assert len(trio_mcp.result_text(result)) == size
        return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    size = int(options.mb * 1_000_000)
    http = subprocess.Popen([sys.executable, SERVER, "http", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert http.stdout is not None
        port = int(http.stdout.readline().split()[1])
        # The SDK's server sends the text twice (content and structured content).
        stdio_config = trio_mcp.StdioServer(sys.executable, [SERVER], max_message_bytes=3 * size)
        stdio = trio.run(measure, stdio_config, size, options.runs)
        remote = trio.run(
            measure, trio_mcp.StreamableHttpServer(f"http://127.0.0.1:{port}/mcp"), size, options.runs
        )
    finally:
        http.kill()
        http.wait()
    for name, samples in (("stdio", stdio), ("streamable http", remote)):
        print(f"{name:>16}: best {min(samples):.2f}s  median {statistics.median(samples):.2f}s")
    print(f"{'stdio / http':>16}: {min(stdio) / min(remote):.2f}x  ({options.mb:g} MB, {options.runs} runs)")


if __name__ == "__main__":
    main()
