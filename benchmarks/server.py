"""The benchmark server: a small MCP server with ``echo``, ``wait`` and a request counter.

``python benchmarks/server.py stdio`` serves over stdio; ``python benchmarks/server.py
http`` serves Streamable HTTP at ``/mcp`` and SSE at ``/sse`` on 127.0.0.1 (the
port in ``PORT``, or an ephemeral one, printed as ``PORT <n>``). :func:`make_server` builds an instance for the in-memory
transport, so client-side cost can be measured without any I/O.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer


def make_server() -> MCPServer[Any]:
    """A fresh benchmark server with its own tools/list counter."""
    counter = {"tools/list": 0}

    async def count(ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/list":
            counter["tools/list"] += 1
        return await call_next(ctx)

    server: MCPServer[Any] = MCPServer("trio-mcp-bench", middleware=[count])

    @server.tool()
    def echo(text: str) -> str:
        """Return the text."""
        return text

    @server.tool()
    async def wait(ms: float) -> str:
        """Wait ``ms`` milliseconds, like a tool waiting on I/O, then answer."""
        await anyio.sleep(ms / 1000)
        return "done"

    @server.tool()
    def list_count() -> int:
        """How many tools/list requests this server has answered."""
        return counter["tools/list"]

    return server


def _serve_http(server: MCPServer[Any]) -> None:
    # The one HTTP serving helper lives beside the test servers.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "servers"))
    from http_app import serve_http

    serve_http(server, backlog=1024, log_level="error")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    bench_server = make_server()
    if mode == "stdio":
        bench_server.run("stdio")
    else:
        _serve_http(bench_server)
