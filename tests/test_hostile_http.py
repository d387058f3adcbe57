"""Streamable HTTP servers that misbehave on purpose (``servers/hostile_http_server.py``),
in both protocol eras: each failure is one clear typed error, the secrets a request
carried never come back through an error or a log record, and the pool keeps serving."""

from __future__ import annotations

import base64
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import psutil
import pydantic
import pytest
import trio
import trio.testing
from mcp.shared.exceptions import MCPError
from pydantic_core import PydanticCustomError

import trio_mcp
from trio_mcp import result_text
from trio_mcp._redact import (
    hold_secrets,
    redact_text,
    redact_validation_error,
    release_secrets,
    secret_values,
)

from .conftest import HttpServer
from .server_processes import HERE, ServerProcess
from .test_secrets import HEADER, PASSWORD, TOKEN, USER, _assert_clean, _texts

MODES = ("auto", "legacy")


@pytest.fixture(scope="module")
def hostile() -> Iterator[ServerProcess]:
    server = ServerProcess([sys.executable, str(HERE / "servers" / "hostile_http_server.py")]).start()
    yield server
    server.stop()


def config(
    server: ServerProcess, mode: str, path: str = "/mcp", **kwargs: Any
) -> trio_mcp.StreamableHttpServer:
    return trio_mcp.StreamableHttpServer(server.url(path), mode=mode, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
async def test_a_malformed_tool_listing_is_an_invalid_result(hostile: ServerProcess, mode: str) -> None:
    """The listing's validation error reaches every waiter as a copy of itself."""
    async with trio_mcp.open_mcp_pool({"h": config(hostile, mode, "/mcp?bad_list")}) as pool:
        async with trio.open_nursery() as nursery:
            for _ in range(3):  # waiters of the one shared tools/list
                nursery.start_soon(_expect_invalid_result, pool)
        with pytest.raises(trio_mcp.InvalidResultError):
            await pool.list_tools("h")


async def _expect_invalid_result(pool: trio_mcp.MCPPool) -> None:
    with pytest.raises(trio_mcp.InvalidResultError) as info:
        await pool.tool_call("h", "echo", {"text": "x"})
    assert info.value.server == "h"


@pytest.mark.parametrize("mode", MODES)
async def test_a_servers_own_error_32000_is_an_answer_not_a_lost_session(
    hostile: ServerProcess, mode: str
) -> None:
    """-32000 opens JSON-RPC's range for servers' errors; the SDK also uses it for a closed
    connection. Taken for the latter, the call was reported lost and the session torn down."""
    async with trio_mcp.open_mcp_pool({"h": config(hostile, mode)}) as pool:
        for _ in range(2):
            with pytest.raises(trio_mcp.RequestFailedError, match="-32000: Server error") as info:
                await pool.tool_call("h", "server_error")
            assert info.value.code == -32000
        assert result_text(await pool.tool_call("h", "echo", {"text": "still"})) == "still"
        assert pool.statistics()["h"].connects == 1


# -- secrets a server sends back ----------------------------------------------------------


def secret_config(
    server: ServerProcess, mode: str, path: str = "/mcp", **kwargs: Any
) -> trio_mcp.ServerConfig:
    """A config whose requests carry every kind of secret (filled from the pool's variables)."""
    return trio_mcp.StreamableHttpServer(
        server.url(f"{path}?api_key={TOKEN}"),
        headers={"Authorization": "Bearer ${header}", "X-Api-Key": "${password}"},
        mode=mode,  # type: ignore[arg-type]
        **kwargs,
    )


@pytest.mark.parametrize("mode", MODES)
async def test_secrets_a_server_sends_back_are_never_shown(
    hostile: ServerProcess, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server quotes the Authorization and X-Api-Key values and the URL's token in
    error bodies, JSON-RPC error messages and data, bodies the SDK fails to parse (its
    error quotes them), a malformed result, and a redirect's relative Location (httpcore2
    logs it)."""
    caplog.set_level(logging.DEBUG)
    variables = {"header": HEADER, "password": PASSWORD}
    servers = {"h": secret_config(hostile, mode), "loop": secret_config(hostile, mode, "/loop/mcp")}
    expected = {
        "echo_400": (trio_mcp.RequestFailedError, "HTTP 400"),
        "echo_404": (trio_mcp.RequestFailedError, "HTTP 404"),
        "echo_500": (trio_mcp.RequestFailedError, "HTTP 500"),
        "echo_400_rpc": (trio_mcp.RequestFailedError, "-32602: you sent ***"),
        "echo_rpc": (trio_mcp.RequestFailedError, "-32000: you sent ***"),
        "not_json": (trio_mcp.RequestFailedError, "-32700"),
        "truncated": (trio_mcp.RequestFailedError, "-32700"),
        # pydantic's error for a malformed result quotes it (and cannot be redacted in place).
        "echo_bad_result": (trio_mcp.InvalidResultError, "malformed result"),
        # Last: a 401 holds the server off for a while.
        "echo_401": (trio_mcp.AuthorizationError, 'error="invalid_token"'),
    }
    errors: list[BaseException] = []
    async with trio_mcp.open_mcp_pool(servers, variables=variables) as pool:
        for tool, (kind, words) in expected.items():
            with pytest.raises(kind, match=re.escape(words)) as info:
                await pool.tool_call("h", tool)
            errors.append(info.value)
        with pytest.raises(trio_mcp.ServerUnavailableError, match="not followed") as unavailable:
            await pool.tool_call("loop", "echo")
        errors.append(unavailable.value)
        assert pool.statistics()["h"].connects == 1
        assert redact_text(f"x {HEADER} y") == "x *** y"
    # Held only while the servers are served: the values are no longer looked for.
    assert redact_text(f"x {HEADER} y") == f"x {HEADER} y"
    for error in errors:
        _assert_clean(_texts(error), f"error {error!r}")
        cause = error.__cause__
        if isinstance(cause, MCPError):
            _assert_clean([repr(cause.error.data)], "the JSON-RPC error's data")
    assert any(record.name.startswith("httpcore2") for record in caplog.records)
    for record in caplog.records:
        texts = [record.getMessage(), repr(record.msg), repr(record.args), str(record.exc_text)]
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
        _assert_clean(texts, f"log record {record.name}:{record.levelname}")


def test_the_secret_values_of_a_remote_server() -> None:
    url = f"http://{USER}:{PASSWORD}@h:1/mcp;jsessionid=TOKEN123?api_key=q%2BS3CRET&BARETOKEN123&x=1"
    headers = {"Authorization": f"Bearer {HEADER}", "X-Short": "short", "Accept": "application/json"}
    values = secret_values(url, headers)
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert values == {
        *(USER, PASSWORD, basic, "jsessionid=TOKEN123", "q%2BS3CRET", "q+S3CRET", "BARETOKEN123"),
        *(f"Bearer {HEADER}", HEADER),
    }
    hold_secrets(values)
    hold_secrets(values)  # another server with the same values
    release_secrets(values)
    assert redact_text(f"a {HEADER} b {basic}") == "a *** b ***"
    release_secrets(values)
    assert redact_text(f"a {HEADER}") == f"a {HEADER}"


class _Checked(pydantic.BaseModel):
    plain: list[int] = []
    custom: str = ""

    @pydantic.field_validator("custom")
    @classmethod
    def refuse(cls, value: str) -> str:
        raise PydanticCustomError("my_custom", "no {what}", {"what": "way"})


@pytest.mark.parametrize("field", ["plain", "custom"])
def test_a_validation_error_quoting_a_secret_is_copied_without_it(field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        _Checked.model_validate({field: f"it was {HEADER}"})
    assert redact_validation_error(info.value) is info.value  # nothing held: nothing to hide
    hold_secrets([HEADER])
    try:
        redacted = redact_validation_error(info.value)
    finally:
        release_secrets([HEADER])
    assert HEADER in str(info.value) and HEADER not in str(redacted)
    assert [error["loc"] for error in redacted.errors()] == [(field,)]


# -- answers that break the protocol, streams that never end, connections that break ------

# What each tool does wrong, and the one error its call gets. The timeouts are the
# server's call_timeout (2 s in the test): nothing ever answers those calls.
PROBES = [
    ("html", trio_mcp.RequestFailedError, "-32600: Unexpected content type: text/html"),
    ("empty", trio_mcp.RequestFailedError, "-32700: Failed to parse JSON response"),
    ("not_json", trio_mcp.RequestFailedError, "-32700: Failed to parse JSON response"),
    ("truncated", trio_mcp.RequestFailedError, "-32700: Failed to parse JSON response"),
    ("sse_ends", trio_mcp.ServerDisconnectedError, "ended the stream carrying the answer"),
    ("reset", trio_mcp.ServerDisconnectedError, "was lost while"),
    ("wrong_id", trio_mcp.MalformedResponseError, "answered a request with the response to another one"),
    ("sse_keepalive", trio_mcp.ToolCallTimeout, "within 2s"),
    ("stall", trio_mcp.ToolCallTimeout, "within 2s"),
]


def open_fds() -> int:
    return psutil.Process().num_fds()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("tool", "kind", "words"), PROBES)
async def test_a_broken_answer_fails_its_call_alone_and_typed(
    hostile: ServerProcess, http_server: HttpServer, mode: str, tool: str, kind: type[Exception], words: str
) -> None:
    fds = open_fds()
    servers: dict[str, trio_mcp.ServerConfig] = {
        "h": config(hostile, mode, call_timeout=2),
        "other": trio_mcp.StreamableHttpServer(http_server.http_url, mode=mode),  # type: ignore[arg-type]
    }
    async with trio_mcp.open_mcp_pool(servers) as pool:
        assert result_text(await pool.tool_call("h", "echo", {"text": "before"})) == "before"
        answered: list[str] = []

        async def meanwhile() -> None:
            answered.extend(
                [result_text(await pool.tool_call("other", "echo", {"text": str(i)})) for i in range(5)]
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(meanwhile)
            with pytest.raises(kind, match=re.escape(words)) as info:
                await pool.tool_call("h", tool)
        assert info.value.server == "h"  # type: ignore[attr-defined]
        assert answered == ["0", "1", "2", "3", "4"]
        # The pool keeps serving that server (on a new session, if the old one was lost).
        assert result_text(await pool.tool_call("h", "echo", {"text": "after"})) == "after"
        assert pool.statistics()["other"].connects == 1
    assert open_fds() == fds  # every connection of the pool's closed with it


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("path", "tool"), [("/mcp", "stall"), ("/mcp", "sse_keepalive"), ("/stall/mcp", "echo")]
)
async def test_closing_the_pool_is_prompt_whatever_the_server_holds(
    hostile: ServerProcess, mode: str, path: str, tool: str
) -> None:
    """A call waiting on a silent server, an endless stream or a connect the server never
    answers: the pool closes at once and the call hears why."""
    fds = open_fds()
    failures: list[trio_mcp.MCPPoolError] = []

    async def call(pool: trio_mcp.MCPPool) -> None:
        try:
            await pool.tool_call("h", tool)
        except trio_mcp.MCPPoolError as error:
            failures.append(error)

    server = config(hostile, mode, path, call_timeout=300, connect_timeout=300)
    async with trio.open_nursery() as nursery:
        async with trio_mcp.open_mcp_pool({"h": server}) as pool:
            nursery.start_soon(call, pool)
            await trio.testing.wait_all_tasks_blocked(0.2)
            closing = trio.current_time()
        assert trio.current_time() - closing < 5
    assert len(failures) == 1 and isinstance(failures[0], trio_mcp.PoolClosedError), failures
    assert open_fds() == fds


@pytest.mark.parametrize("mode", MODES)
async def test_a_connect_the_server_never_answers_times_out_typed(hostile: ServerProcess, mode: str) -> None:
    async with trio_mcp.open_mcp_pool({"h": config(hostile, mode, "/stall/mcp", connect_timeout=1)}) as pool:
        with pytest.raises(
            trio_mcp.ServerUnavailableError, match=r"no MCP session within 1s \(connect timeout\)"
        ):
            await pool.tool_call("h", "echo", {"text": "x"})


# -- redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_redirects_are_followed_within_the_origin_only(hostile: ServerProcess, mode: str) -> None:
    """Same origin (a 308 to /mcp): followed. Another origin, or a loop: not, and named."""
    servers = {
        "moved": secret_config(hostile, mode, "/moved/mcp"),
        "away": secret_config(hostile, mode, "/away/mcp"),
        "loop": secret_config(hostile, mode, "/loop/mcp"),
    }
    variables = {"header": HEADER, "password": PASSWORD}
    async with trio_mcp.open_mcp_pool(servers, variables=variables) as pool:
        assert result_text(await pool.tool_call("moved", "echo", {"text": "here"})) == "here"
        for name, location in (("away", "localhost"), ("loop", "127.0.0.1")):
            with pytest.raises(
                trio_mcp.ServerUnavailableError, match=f"Redirect to http://{location}:"
            ) as info:
                await pool.tool_call(name, "echo", {"text": "x"})
            _assert_clean(_texts(info.value), f"error {info.value!r}")
        assert result_text(await pool.tool_call("moved", "echo", {"text": "still"})) == "still"


# -- large answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_large_answer_arrives_as_json_or_as_one_sse_event(
    hostile: ServerProcess, http_server: HttpServer, mode: str
) -> None:
    """The SDK bounds one SSE event at 1 MiB: an SDK server's 2025-era answers (SSE) over
    that broke the stream and were reported as a lost session. HTTP answers are bounded
    as a stdio message is by default (128 MiB); JSON answers are not bounded."""
    size = 3 << 20
    servers: dict[str, trio_mcp.ServerConfig] = {
        "h": config(hostile, mode),
        "sdk": trio_mcp.StreamableHttpServer(http_server.http_url, mode=mode),  # type: ignore[arg-type]
    }
    async with trio_mcp.open_mcp_pool(servers) as pool:
        for server, tool in (("h", "huge_sse"), ("h", "huge"), ("sdk", "blob")):
            assert len(result_text(await pool.tool_call(server, tool, {"size": size}))) == size
        assert [pool.statistics()[name].connects for name in servers] == [1, 1]


@pytest.mark.parametrize("mode", MODES)
async def test_a_stream_that_ends_without_its_answer_fails_that_call_only(
    hostile: ServerProcess, mode: str
) -> None:
    """Over HTTP each request has a stream of its own: one that ends unanswered loses
    that answer, not the session (which the pool used to close, failing its other calls)."""
    servers = {"h": config(hostile, mode, call_timeout=30), "control": config(hostile, mode)}
    async with trio_mcp.open_mcp_pool(servers) as pool:
        released: list[str] = []

        async def gate() -> None:
            released.append(result_text(await pool.tool_call("h", "gate")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(gate)
            await pool.tool_call("control", "gated")  # the gate call waits on the server
            with pytest.raises(
                trio_mcp.ServerDisconnectedError, match="ended the stream carrying the answer"
            ):
                await pool.tool_call("h", "sse_ends")
            await pool.tool_call("control", "release")
        assert released == ["released"]
        assert result_text(await pool.tool_call("h", "echo", {"text": "same"})) == "same"
        assert pool.statistics()["h"].connects == 1


# -- the older HTTP+SSE transport -------------------------------------------------------------


async def test_over_sse_an_error_reply_in_a_post_body_is_named_as_sent(
    hostile: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK's SSE client never reads the body of a POST's error status: it fails the
    request with a "Connection closed" of its own (-32000), which the pool reported as
    the server's reply. The reply's own code and message are named (redacted)."""
    caplog.set_level(logging.DEBUG)
    server = trio_mcp.SseServer(
        hostile.url(f"/sse?api_key={TOKEN}"), headers={"Authorization": "Bearer ${header}"}, call_timeout=2
    )
    errors: list[BaseException] = []
    async with trio_mcp.open_mcp_pool({"h": server}, variables={"header": HEADER}) as pool:
        with pytest.raises(
            trio_mcp.RequestFailedError, match=r"-32602: you sent \*\*\* .*\(HTTP 400"
        ) as info:
            await pool.tool_call("h", "echo_400_rpc")
        assert info.value.code == -32602
        errors.append(info.value)
        with pytest.raises(trio_mcp.RequestFailedError, match=r"-32000: you sent \*\*\*") as answered:
            await pool.tool_call("h", "echo_rpc")
        errors.append(answered.value)
        # An event that is no JSON-RPC message names no request: its call waits out its deadline.
        with pytest.raises(trio_mcp.ToolCallTimeout):
            await pool.tool_call("h", "not_json")
        assert result_text(await pool.tool_call("h", "echo", {"text": "on"})) == "on"
    for error in errors:
        _assert_clean(_texts(error), f"error {error!r}")
    for record in caplog.records:
        _assert_clean([record.getMessage(), str(record.exc_text)], f"log record {record.name}")


@pytest.mark.parametrize("path", ["/sse-silent", "/sse-away"])
async def test_over_sse_a_stream_without_a_usable_endpoint_is_a_connect_timeout(
    hostile: ServerProcess, path: str
) -> None:
    """No endpoint event (only comments), or one on another origin (the SDK refuses it,
    but leaves the connect waiting): the connect deadline ends it, typed."""
    async with trio_mcp.open_mcp_pool(
        {"h": trio_mcp.SseServer(hostile.url(path), connect_timeout=1)}
    ) as pool:
        with pytest.raises(trio_mcp.ServerUnavailableError, match=r"within 1s \(connect timeout\)"):
            await pool.tool_call("h", "echo", {"text": "x"})
