"""An MCP server written with ``fastmcp`` (not the ``mcp`` SDK's own server), for interop tests.

Run it as ``python tests/servers/fastmcp_server.py stdio`` or
``python tests/servers/fastmcp_server.py http`` (Streamable HTTP at ``/mcp`` on
127.0.0.1, on the port in the ``PORT`` environment variable, like the TypeScript
reference server).

Tools:
- ``echo(text)`` and ``add(a, b)`` answer at once;
- ``add_tool(name)`` registers a new tool called ``name`` (it returns its own name) and
  sends ``notifications/tools/list_changed``: the tool list changes at run time;
- ``pid()`` returns the server's process id.
"""

from __future__ import annotations

import os
import sys

import mcp_types
from fastmcp import Context, FastMCP
from fastmcp.tools import Tool

server = FastMCP("trio-mcp-fastmcp-peer")


@server.tool
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool
async def add_tool(name: str, ctx: Context) -> str:
    """Register a new tool called ``name`` and tell the client the tool list changed."""

    def extra() -> str:
        return name

    server.add_tool(Tool.from_function(extra, name=name, description=f"added at run time: {name}"))
    await ctx.send_notification(mcp_types.ToolListChangedNotification())
    return name


@server.tool
def pid() -> int:
    """This server's process id."""
    return os.getpid()


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if transport == "stdio":
        server.run("stdio", show_banner=False, log_level="WARNING")
    elif transport == "http":
        port = int(os.environ["PORT"])
        server.run("http", show_banner=False, log_level="WARNING", host="127.0.0.1", port=port)
    else:
        raise SystemExit(f"unknown transport {transport!r}")
