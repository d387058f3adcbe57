"""The error-translation boundary, case by case (pure logic: no server needed)."""

from __future__ import annotations

import httpx2
import pydantic
import pytest
import trio
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, INVALID_REQUEST, REQUEST_TIMEOUT

import trio_mcp
from trio_mcp._translate import (
    first_leaf,
    translate_call_error,
    translate_connect_error,
)
from trio_mcp._transport import HttpOutcome


def _validation_error() -> pydantic.ValidationError:
    class M(pydantic.BaseModel):
        x: int

    try:
        M.model_validate({"x": "no"})
    except pydantic.ValidationError as error:
        return error
    raise AssertionError("unreachable")


def test_first_leaf_skips_cancelled_and_nesting() -> None:
    inner = ValueError("x")
    group = BaseExceptionGroup("g", [trio.Cancelled._create(), ExceptionGroup("h", [inner])])  # type: ignore[attr-defined]
    assert first_leaf(group) is inner


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (FileNotFoundError(2, "x"), "file not found"),
        (PermissionError(13, "x"), "permission denied"),
        (httpx2.ConnectError("refused"), "connection failed"),
        (
            httpx2.HTTPStatusError(
                "x", request=httpx2.Request("GET", "http://h/"), response=httpx2.Response(503)
            ),
            "HTTP 503",
        ),
        (httpx2.ReadTimeout("slow"), "timed out"),
        (httpx2.RemoteProtocolError("bad"), "RemoteProtocolError"),
        (MCPError(CONNECTION_CLOSED, "Connection closed"), "closed the connection"),
        (MCPError(-32600, "no thanks"), "refused (JSON-RPC error -32600: no thanks)"),
        (ConnectionResetError(104, "reset"), "ConnectionResetError"),
        (trio.BrokenResourceError(), "transport closed"),
        (RuntimeError("odd"), "RuntimeError during the handshake"),
    ],
)
def test_connect_errors(exc: BaseException, fragment: str) -> None:
    error = translate_connect_error(ExceptionGroup("g", [exc]) if isinstance(exc, Exception) else exc, "s")
    assert isinstance(error, trio_mcp.ServerUnavailableError)
    assert fragment in str(error) and error.server == "s" and error.__cause__ is exc


def test_connect_error_of_our_own_passes_through() -> None:
    own = trio_mcp.TemplateError("m", server="s", variable="v")
    assert translate_connect_error(own, "s") is own


@pytest.mark.parametrize(
    ("exc", "closing", "kind"),
    [
        (MCPError(CONNECTION_CLOSED, "Connection closed"), False, trio_mcp.ServerDisconnectedError),
        (MCPError(CONNECTION_CLOSED, "Connection closed"), True, trio_mcp.PoolClosedError),
        (
            MCPError(CONNECTION_CLOSED, "SSE stream ended without a response"),
            False,
            trio_mcp.ServerDisconnectedError,
        ),
        # A server's own -32000 ("Server error", JSON-RPC's range for servers) is an answer.
        (MCPError(CONNECTION_CLOSED, "Server error"), False, trio_mcp.RequestFailedError),
        (MCPError(CONNECTION_CLOSED, "Connection closed", {"why": "x"}), False, trio_mcp.RequestFailedError),
        (MCPError(REQUEST_TIMEOUT, "late"), False, trio_mcp.ToolCallTimeout),
        (MCPError(INVALID_PARAMS, "Unknown tool: t"), False, trio_mcp.UnknownToolError),
        (MCPError(INVALID_PARAMS, "bad params"), False, trio_mcp.RequestFailedError),
        (TimeoutError(), False, trio_mcp.ToolCallTimeout),
        (_validation_error(), False, trio_mcp.InvalidResultError),
        (trio.ClosedResourceError(), False, trio_mcp.ServerDisconnectedError),
        (httpx2.ReadError("gone"), True, trio_mcp.PoolClosedError),
        (KeyError("odd"), False, trio_mcp.MCPPoolError),
    ],
)
def test_call_errors(exc: Exception, closing: bool, kind: type[trio_mcp.MCPPoolError]) -> None:
    error = translate_call_error(
        ExceptionGroup("g", [exc]), server="s", what="tools/call 't'", closing=closing, tool="t"
    )
    assert type(error) is kind
    assert error.server == "s" and error.__cause__ is exc
    if isinstance(error, trio_mcp.RequestFailedError):
        assert isinstance(error.code, int)


@pytest.mark.parametrize(
    ("outcome", "kind", "words"),
    [
        (
            HttpOutcome(status=401, challenge='Bearer scope="a b" token="t"'),
            trio_mcp.AuthorizationError,
            "HTTP 401",
        ),
        (HttpOutcome(status=403), trio_mcp.AuthorizationError, "HTTP 403 Forbidden"),
        (HttpOutcome(status=500), trio_mcp.RequestFailedError, "HTTP 500 Internal Server Error"),
        (HttpOutcome(status=404, session_rejected=True), trio_mcp.ServerDisconnectedError, "no longer knows"),
        (
            HttpOutcome(status=400, replied=True),
            trio_mcp.RequestFailedError,
            "-32600: Session not found (HTTP 400",
        ),
    ],
)
def test_http_status_is_reported_as_such(
    outcome: HttpOutcome, kind: type[trio_mcp.MCPPoolError], words: str
) -> None:
    # The SDK's stand-in for any HTTP error (or a body it relayed) is not what we report.
    exc = MCPError(INVALID_REQUEST, "Session not found")
    error = translate_call_error(
        exc, server="s", what="tools/call 't'", closing=False, tool="t", http=outcome
    )
    assert type(error) is kind and words in str(error) and "'s'" in str(error)
    assert "token=" not in str(error) and '"t"' not in str(error)


def test_words_in_an_error_message_never_mean_a_lost_session() -> None:
    # A tool's JSON-RPC error that *says* "session not found" is just an error.
    exc = MCPError(INVALID_REQUEST, "Session not found")
    error = translate_call_error(exc, server="s", what="tools/call 't'", closing=False, http=HttpOutcome())
    assert type(error) is trio_mcp.RequestFailedError and error.code == INVALID_REQUEST


def test_handshake_status_and_version_mismatch_are_named() -> None:
    stand_in = MCPError(-32603, "Server returned an error response")
    error = translate_connect_error(stand_in, "s", HttpOutcome(status=401))
    assert type(error) is trio_mcp.AuthorizationError and "requires authorization" in str(error)
    error = translate_connect_error(stand_in, "s", HttpOutcome(status=502))
    assert type(error) is trio_mcp.ServerUnavailableError and "HTTP 502 Bad Gateway" in str(error)
    mismatch = RuntimeError("Unsupported protocol version from the server: 1999-01-01")
    error = translate_connect_error(mismatch, "s")
    assert "no protocol version this client supports" in str(error) and "1999-01-01" in str(error)


def test_any_failure_on_a_lost_session_is_the_loss() -> None:
    closed_client = RuntimeError("Client must be used within an async context manager")
    error = translate_call_error(closed_client, server="s", what="tools/call 't'", closing=False, lost=True)
    assert type(error) is trio_mcp.ServerDisconnectedError and error.__cause__ is closed_client
    error = translate_call_error(closed_client, server="s", what="tools/call 't'", closing=True, lost=True)
    assert type(error) is trio_mcp.PoolClosedError
