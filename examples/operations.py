"""Pre-warming sessions, and servers added and removed while the pool runs.

Run: ``python examples/operations.py`` (uses the test server over stdio).
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

import trio_mcp

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "servers" / "test_server.py")


def server() -> trio_mcp.StdioServer:
    return trio_mcp.StdioServer(sys.executable, [SERVER])


async def main() -> None:
    down = trio_mcp.StreamableHttpServer("http://127.0.0.1:9/mcp")  # nothing listens there
    # warm=True: every session opens (concurrently) before the body runs; "down" is logged.
    async with trio_mcp.open_mcp_pool({"files": server(), "down": down}, warm=True) as pool:
        print({name: s.state.value for name, s in pool.statistics().items()})
        # The same, on demand: a mapping name -> None or the error, never raised.
        print(
            {name: type(error).__name__ if error else None for name, error in (await pool.connect()).items()}
        )

        await pool.add_server("search", server())
        print("added:", pool.servers)

        async def long_call() -> None:
            try:
                await pool.tool_call("search", "slow", {"seconds": 60, "tag": "example"})
            except trio_mcp.ServerRemovedError as error:
                print("in flight when removed:", error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_call)
            await pool.tool_call("files", "echo", {"text": "meanwhile"})
            await trio.sleep(1)  # let the long call reach the server
            await pool.remove_server("search")
        print("removed:", pool.servers)


if __name__ == "__main__":
    trio.run(main)
