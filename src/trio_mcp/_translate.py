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

from typing import Any

import anyio
import httpx2
import trio
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, REQUEST_TIMEOUT
from pydantic import ValidationError

from ._auth import challenge_summary, copy_authorization_error
from ._errors import (
    AuthorizationError,
    InvalidResultError,
    MCPPoolError,
    PoolClosedError,
    RequestFailedError,
    ServerDisconnectedError,
    ServerUnavailableError,
    ToolCallTimeout,
    UnknownToolError,
)
from ._redact import redact_exception, redact_text, redact_url, redact_validation_error
from ._transport import HttpOutcome

__all__ = ["first_leaf", "only_the_answer_was_lost", "translate_call_error", "translate_connect_error"]

_STREAM_ERRORS = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


def first_leaf(exc: BaseException) -> BaseException:
    """The most telling single exception inside ``exc`` (a group's first non-Cancelled leaf).

    A JSON-RPC error made up by the pool's own stdio transport carries the pool's error
    as its ``data`` (a Python object, so no server can forge it): that error is the leaf.
    """
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, trio.Cancelled)]
        exc = (leaves or list(exc.exceptions))[0]
    if isinstance(exc, MCPError) and isinstance(exc.error.data, MCPPoolError):
        return exc.error.data
    return exc


# How the SDK words the errors it makes up for a request whose answer cannot come: its
# dispatcher's "Connection closed"; the Streamable HTTP transport's "SSE stream ..." when
# the stream carrying one request's answer ended or broke (the session may be fine).
_STREAM_BROKE_WORDS = "SSE stream "
_SDK_CLOSED_WORDS = ("Connection closed", _STREAM_BROKE_WORDS)


def _closed_by_the_sdk(exc: MCPError) -> bool:
    """Whether ``exc`` is the SDK's own "the connection closed" (-32000), not a server's error.

    -32000 is also the first code of JSON-RPC's range for servers' own errors, and
    servers use it freely ("Server error"): such an answer is a failed request on a
    live session. A server that words its error as the SDK does fools only itself.
    """
    return (
        exc.code == CONNECTION_CLOSED
        and exc.error.data is None
        and exc.error.message.startswith(_SDK_CLOSED_WORDS)
    )


def only_the_answer_was_lost(exc: BaseException, http: HttpOutcome | None) -> bool:
    """Whether a request failed only because the HTTP stream carrying its answer ended
    without it, the connection intact: the answer is lost, not the session (every
    request has a stream of its own). A stream broken off by a network error says the
    server (or the way to it) is gone."""
    leaf = first_leaf(exc)
    return (
        isinstance(leaf, MCPError)
        and _closed_by_the_sdk(leaf)
        and leaf.error.message.startswith(_STREAM_BROKE_WORDS)
        and not (http is not None and http.broken)
    )


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
        if _closed_by_the_sdk(exc):
            return "the server closed the connection during the handshake"
        return f"the handshake was refused (JSON-RPC error {exc.code}: {exc.error.message})"
    if isinstance(exc, RuntimeError) and str(exc).startswith(_VERSION_MISMATCH):
        return "it speaks no protocol version this client supports (" + str(exc)[:200] + ")"
    if isinstance(exc, OSError):
        return f"an OS error occurred ({type(exc).__name__}, errno {exc.errno})"
    if isinstance(exc, _STREAM_ERRORS):
        return "the transport closed during the handshake"
    return f"{type(exc).__name__} during the handshake"


# The SDK's words when the server's protocol version is not one it supports.
_VERSION_MISMATCH = ("Unsupported protocol version", "No mutually supported")

_STATUS_TEXT = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    421: "Misdirected Request",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _status(status: int) -> str:
    text = _STATUS_TEXT.get(status)
    return f"HTTP {status} {text}" if text else f"HTTP {status}"


def _authorization_error(server: str, http: HttpOutcome, what: str) -> AuthorizationError | None:
    status = http.status
    if status == 401:
        message = f"server {server!r} requires authorization: {what} was answered HTTP 401 Unauthorized"
    elif status == 403:
        message = f"server {server!r} refused access: {what} was answered HTTP 403 Forbidden"
    else:
        return None
    if http.challenge:
        message += f" (it asks: {challenge_summary(http.challenge)})"
    return AuthorizationError(message, server=server, status=status, challenge=http.challenge)


def _challenge_summary(challenge: str) -> str:
    """The parts of a WWW-Authenticate challenge worth naming (never a token)."""
    keep = [
        part.strip()
        for part in challenge.replace(",", " ").split()
        if part.strip().lower().startswith(("scope=", "resource_metadata=", "error="))
    ]
    scheme = challenge.split(None, 1)[0] if challenge.strip() else ""
    return " ".join([scheme, *keep])[:300]


def translate_connect_error(
    exc: BaseException, server: str, http: HttpOutcome | None = None, *, url: str | None = None
) -> MCPPoolError:
    """Why a connection attempt failed, as a ServerUnavailableError (or the pool's own error).

    ``http`` is what the HTTP layer saw of the handshake, if it was over HTTP: its
    status says more than the JSON-RPC stand-in error the SDK makes of it. ``url``, a
    remote server's, is named in the message, redacted.
    """
    redact_exception(exc)
    if http is not None and http.auth_error is not None:
        return copy_authorization_error(http.auth_error)
    leaf = first_leaf(exc)
    if isinstance(leaf, MCPPoolError):
        return leaf
    if http is not None and http.status is not None:
        auth = _authorization_error(server, http, "the handshake")
        if auth is not None:
            auth.__cause__ = leaf
            return auth
        description = f"the server answered the handshake with {_status(http.status)}"
    else:
        description = _describe(leaf)
    at = f" at {redact_url(url)!r}" if url is not None else ""
    error = ServerUnavailableError(f"server {server!r} is unavailable{at}: {description}", server=server)
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
    http: HttpOutcome | None = None,
) -> MCPPoolError:
    """The trio-mcp error for a request (``what``) that failed on an open session.

    ``lost`` says the session was already known to be gone: then any failure is the
    loss (or the pool closing), whatever the SDK happened to raise. ``http`` is what
    the HTTP layer saw of the request: an error status is reported as such.
    """
    redact_exception(exc)
    if http is not None and http.auth_error is not None:
        # The authorization flow run for this request failed.
        return copy_authorization_error(http.auth_error)
    leaf = first_leaf(exc)
    error: MCPPoolError
    if isinstance(leaf, MCPPoolError):
        return leaf
    if http is not None and http.status is not None and isinstance(leaf, (MCPError, *_STREAM_ERRORS)):
        auth = _authorization_error(server, http, what)
        if auth is not None:
            error = auth
        elif http.session_rejected:
            error = ServerDisconnectedError(
                f"server {server!r} no longer knows the session ({_status(http.status)}) that {what} was sent on",
                server=server,
            )
        elif http.replied and isinstance(leaf, MCPError):
            # The reply itself: the SSE transport's SDK client fails the request with a
            # "Connection closed" of its own, never reading it.
            code, message = _reply_code_and_message(http.reply, leaf)
            error = RequestFailedError(
                f"server {server!r} answered {what} with JSON-RPC error {code}: {message} "
                f"({_status(http.status)})",
                server=server,
                code=code,
            )
        else:
            error = RequestFailedError(
                f"server {server!r} answered {what} with {_status(http.status)}",
                server=server,
                code=leaf.code if isinstance(leaf, MCPError) else -32603,
            )
    elif lost and not (isinstance(leaf, MCPError) and leaf.code == REQUEST_TIMEOUT):
        error = _lost(server, what, closing)
    elif isinstance(leaf, MCPError):
        code = leaf.code
        if only_the_answer_was_lost(leaf, http) and not closing:
            error = ServerDisconnectedError(
                f"server {server!r} ended the stream carrying the answer to {what} without it",
                server=server,
            )
        elif _closed_by_the_sdk(leaf) or isinstance(leaf.__cause__, _STREAM_ERRORS):
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
        error = InvalidResultError(
            f"server {server!r} answered {what} with a malformed result", server=server
        )
        leaf = redact_validation_error(leaf)  # its text quotes the result
    elif isinstance(leaf, (*_STREAM_ERRORS, OSError, httpx2.HTTPError)):
        error = _lost(server, what, closing)
    else:
        error = MCPPoolError(f"{what} on server {server!r} failed: {type(leaf).__name__}", server=server)
    error.__cause__ = leaf
    return error


def _reply_code_and_message(reply: dict[str, Any] | None, leaf: MCPError) -> tuple[int, str]:
    """The code and (redacted) message of a JSON-RPC error reply, else of ``leaf``."""
    code, message = (reply or {}).get("code"), (reply or {}).get("message")
    if isinstance(code, int) and not isinstance(code, bool) and isinstance(message, str):
        return code, redact_text(message[:1000])
    return leaf.code, leaf.error.message


def _lost(server: str, what: str, closing: bool) -> MCPPoolError:
    if closing:
        return PoolClosedError(
            f"the pool closed while {what} on server {server!r} was in flight", server=server
        )
    return ServerDisconnectedError(
        f"the session to server {server!r} was lost while {what} was in flight", server=server
    )
