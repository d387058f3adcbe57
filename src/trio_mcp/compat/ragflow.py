"""A drop-in for RAGFlow's ``mcp_tool_call_conn`` module, backed by a trio-mcp portal.

Same names and return shapes as RAGFlow's ``MCPToolCallSession`` and helpers, so an
application can switch imports::

    # from rag.utils.mcp_tool_call_conn import MCPToolCallSession, ...
    from trio_mcp.compat.ragflow import MCPToolCallSession, ...

What changes underneath: each session is a portal thread running trio (not an asyncio
loop with a one-at-a-time task queue), so calls from many threads run concurrently;
timeouts cancel the request on the server; closing ends the thread for sure.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import anyio.to_thread
import mcp.types as types

from .._config import SseServer, StreamableHttpServer
from .._errors import MCPPoolError
from .._openai import to_openai_tool
from .._portal import Portal, shutdown_all, start_portal
from .._results import result_text

__all__ = [
    "MCPToolCallSession",
    "close_multiple_mcp_toolcall_sessions",
    "mcp_tool_metadata_to_openai_tool",
    "shutdown_all_mcp_sessions",
]

logger = logging.getLogger("trio_mcp")


class MCPToolCallSession:
    """One MCP server over SSE or Streamable HTTP, with blocking ``get_tools``/``tool_call``.

    ``mcp_server`` needs ``url``, ``headers`` (a mapping, may be empty or None),
    ``server_type`` (``"sse"`` or ``"streamable-http"``) and ``id``. Header values may
    hold ``${name}`` placeholders filled from ``server_variables``.
    """

    _ALL_INSTANCES: ClassVar[weakref.WeakSet[MCPToolCallSession]] = weakref.WeakSet()

    def __init__(self, mcp_server: Any, server_variables: Mapping[str, Any] | None = None) -> None:
        self._mcp_server = mcp_server
        self._name = str(getattr(mcp_server, "id", None) or "mcp")
        server_type = getattr(mcp_server, "server_type", "streamable-http")
        headers = dict(getattr(mcp_server, "headers", None) or {})
        url = mcp_server.url
        if server_type == "sse":
            config: SseServer | StreamableHttpServer = SseServer(url, headers)
        elif server_type in ("streamable-http", "streamable_http", "streamablehttp"):
            config = StreamableHttpServer(url, headers)
        else:
            raise ValueError(f"unsupported MCP server type {server_type!r}: use 'sse' or 'streamable-http'")
        variables = {str(key): str(value) for key, value in (server_variables or {}).items()}
        self._portal: Portal = start_portal({self._name: config}, variables=variables)
        self._close = False
        MCPToolCallSession._ALL_INSTANCES.add(self)

    def __repr__(self) -> str:
        return f"<MCPToolCallSession id={self._name!r} closed={self._close}>"

    def get_tools(self, timeout: float | int = 10) -> list[types.Tool]:
        """The server's tools (cached; concurrent callers share one request)."""
        return self._portal.list_tools(self._name, timeout=timeout)

    def tool_call(self, name: str, arguments: dict[str, Any], timeout: float | int = 10) -> str:
        """Call a tool; its text, or an error message (as RAGFlow returns it)."""
        try:
            result = self._portal.tool_call(self._name, name, arguments, timeout=timeout)
        except MCPPoolError as error:
            return f"MCP server error: {error}"
        text = result_text(result)
        return f"MCP server error: {text}" if result.is_error else text

    def close_sync(self, timeout: float | int = 5) -> None:
        """Close the session and its portal thread (idempotent)."""
        self._close = True
        self._portal.close(timeout=timeout)
        MCPToolCallSession._ALL_INSTANCES.discard(self)

    async def close(self) -> None:
        """Close from async code (asyncio or trio) without blocking its event loop."""
        await anyio.to_thread.run_sync(self.close_sync)


def close_multiple_mcp_toolcall_sessions(sessions: Iterable[MCPToolCallSession]) -> None:
    """Close several sessions concurrently."""
    sessions = list(sessions)
    for session in sessions:
        session._close = True
    shutdown_all([session._portal for session in sessions], timeout=10)
    for session in sessions:
        MCPToolCallSession._ALL_INSTANCES.discard(session)
    logger.info("closed %d MCP tool-call sessions", len(sessions))


def shutdown_all_mcp_sessions() -> None:
    """Close every live :class:`MCPToolCallSession`."""
    sessions = list(MCPToolCallSession._ALL_INSTANCES)
    if not sessions:
        logger.info("no MCP tool-call sessions to close")
        return
    close_multiple_mcp_toolcall_sessions(sessions)


def mcp_tool_metadata_to_openai_tool(mcp_tool: types.Tool | Mapping[str, Any]) -> dict[str, Any]:
    """An MCP tool (object or dict) as an OpenAI function tool."""
    return to_openai_tool(mcp_tool)
