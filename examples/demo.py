"""A pool over a real stdio MCP server (the test server), used from trio and from threads."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trio

import trio_mcp

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "servers" / "test_server.py")
servers = {"demo": trio_mcp.StdioServer(sys.executable, [SERVER])}


async def from_trio() -> None:
    async with trio_mcp.open_mcp_pool(servers) as pool:
        print("tools:", [tool.name for tool in await pool.list_tools("demo")])
        print("add(2, 40) =", trio_mcp.result_text(await pool.tool_call("demo", "add", {"a": 2, "b": 40})))
        start = trio.current_time()
        results = await pool.tool_calls([("demo", "slow", {"seconds": 0.5})] * 8)
        print(f"8 half-second calls in parallel took {trio.current_time() - start:.2f}s", len(results))
        try:
            await pool.tool_call("demo", "no_such_tool")
        except trio_mcp.UnknownToolError as error:
            print("typed error:", error)


def from_threads() -> None:
    with trio_mcp.start_portal(servers) as portal, ThreadPoolExecutor(4) as executor:
        texts = executor.map(
            lambda i: trio_mcp.result_text(portal.tool_call("demo", "echo", {"text": f"thread {i}"})),
            range(4),
        )
        print("from threads:", list(texts))


if __name__ == "__main__":
    trio.run(from_trio)
    from_threads()
