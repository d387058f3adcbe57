"""The one boundary where SDK, transport and trio errors become trio-mcp errors.

Everything the SDK or a transport can raise (``MCPError`` codes, httpx2 and OS
errors, pydantic validation errors, anyio stream errors, and ExceptionGroups of
them from internal task groups) is mapped here, so no internal ExceptionGroup and
no foreign exception type reaches a user. The original is always chained as
``__cause__``; the new message names the server and never carries a secret, and
the original's own text (and that of everything chained to it) is redacted in place
first (see ``_redact``), since it stays reachable as the cause and the context.
"""

from __future__ import annotations

import anyio
import httpx2
import trio
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, INVALID_REQUEST, REQUEST_TIMEOUT
from pydantic import ValidationError

from ._errors import (
    MCPPoolError,
    PoolClosedError,
    RequestFailedError,
    ServerDisconnectedError,
    ServerUnavailableError,
    ToolCallTimeout,
    UnknownToolError,
)
from ._redact import redact_exception

__all__ = ["first_leaf", "is_session_expired", "translate_call_error", "translate_connect_error"]

_STREAM_ERRORS = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


def first_leaf(exc: BaseException) -> BaseException:
    """The most telling single exception inside ``exc`` (a group's first non-Cancelled leaf)."""
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, trio.Cancelled)]
        exc = (leaves or list(exc.exceptions))[0]
    return exc


def is_session_expired(exc: BaseException) -> bool:
    """Whether a Streamable HTTP server rejected the request for an unknown session.

    That happens when the server restarted (or dropped the session) between two
    requests; the request was not run, so sending it again on a new session is safe.
    """
    leaf = first_leaf(exc)
    if not isinstance(leaf, MCPError) or leaf.code != INVALID_REQUEST:
        return False
    message = leaf.error.message.lower()
    return "session" in message and any(word in message for word in ("not found", "terminated", "expired"))


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a low-level failure."""
    if isinstance(exc, FileNotFoundError):
        return "the command could not be started (file not found)"
    if isinstance(exc, PermissionError):
        return "the command could not be started (permission denied)"
    if isinstance(exc, httpx2.ConnectError):
        return "the connection failed (refused, unreachable or name not resolved)"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"the server answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.TimeoutException):
        return "the HTTP request timed out"
    if isinstance(exc, httpx2.HTTPError):
        return f"the HTTP exchange failed ({type(exc).__name__})"
    if isinstance(exc, MCPError):
        if exc.code == CONNECTION_CLOSED:
            return "the server closed the connection during the handshake"
        return f"the handshake was refused (JSON-RPC error {exc.code}: {exc.error.message})"
    if isinstance(exc, OSError):
        return f"an OS error occurred ({type(exc).__name__}, errno {exc.errno})"
    if isinstance(exc, _STREAM_ERRORS):
        return "the transport closed during the handshake"
    return f"{type(exc).__name__} during the handshake"


def translate_connect_error(exc: BaseException, server: str) -> MCPPoolError:
    """Why a connection attempt failed, as a ServerUnavailableError (or the pool's own error)."""
    redact_exception(exc)
    leaf = first_leaf(exc)
    if isinstance(leaf, MCPPoolError):
        return leaf
    error = ServerUnavailableError(f"server {server!r} is unavailable: {_describe(leaf)}", server=server)
    error.__cause__ = leaf
    return error


def translate_call_error(
    exc: BaseException,
    *,
    server: str,
    what: str,
    closing: bool,
    tool: str | None = None,
    lost: bool = False,
) -> MCPPoolError:
    """The trio-mcp error for a request (``what``) that failed on an open session.

    ``lost`` says the session was already known to be gone: then any failure is the
    loss (or the pool closing), whatever the SDK happened to raise.
    """
    redact_exception(exc)
    leaf = first_leaf(exc)
    error: MCPPoolError
    if isinstance(leaf, MCPPoolError):
        return leaf
    if lost and not (isinstance(leaf, MCPError) and leaf.code == REQUEST_TIMEOUT):
        error = _lost(server, what, closing)
    elif isinstance(leaf, MCPError):
        code = leaf.code
        if code == CONNECTION_CLOSED or isinstance(leaf.__cause__, _STREAM_ERRORS):
            error = _lost(server, what, closing)
        elif code == REQUEST_TIMEOUT:
            error = ToolCallTimeout(f"{what} on server {server!r} timed out", server=server)
        elif tool is not None and code == INVALID_PARAMS and "unknown tool" in leaf.error.message.lower():
            error = UnknownToolError(
                f"server {server!r} has no tool named {tool!r}", server=server, tool=tool
            )
        else:
            error = RequestFailedError(
                f"server {server!r} answered {what} with JSON-RPC error {code}: {leaf.error.message}",
                server=server,
                code=code,
            )
    elif isinstance(leaf, TimeoutError):
        error = ToolCallTimeout(f"{what} on server {server!r} timed out", server=server)
    elif isinstance(leaf, ValidationError):
        error = RequestFailedError(
            f"server {server!r} answered {what} with a malformed result", server=server, code=-32603
        )
    elif isinstance(leaf, (*_STREAM_ERRORS, OSError, httpx2.HTTPError)):
        error = _lost(server, what, closing)
    else:
        error = MCPPoolError(f"{what} on server {server!r} failed: {type(leaf).__name__}", server=server)
    error.__cause__ = leaf
    return error


def _lost(server: str, what: str, closing: bool) -> MCPPoolError:
    if closing:
        return PoolClosedError(
            f"the pool closed while {what} on server {server!r} was in flight", server=server
        )
    return ServerDisconnectedError(
        f"the session to server {server!r} was lost while {what} was in flight", server=server
    )
