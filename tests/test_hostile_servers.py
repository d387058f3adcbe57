"""Servers that misbehave on purpose: huge, deep, malformed or noisy output, endless
listings, helper processes that outlive or outlast them. Each call gets one clear
answer (never a hang), nothing is left running, nothing secret is logged."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

import trio_mcp
from trio_mcp import result_text
from trio_mcp._stdio import response_id

from .conftest import HttpServer, stdio_server

HOSTILE = str(Path(__file__).with_name("servers") / "hostile_server.py")
SECRET = "SECRET-TOKEN-in-noise"
MiB = 1 << 20


def hostile(*args: str, **kwargs: Any) -> trio_mcp.StdioServer:
    return trio_mcp.StdioServer(sys.executable, [HOSTILE, *args], **kwargs)


@pytest.fixture
def stray_pids() -> Iterator[list[int]]:
    """Pids of helpers the pool should end; killed here if it did not, so none leak."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass


def assert_ended(pids: list[int]) -> None:
    """Every pid is gone (or a zombie waiting for its reaper) within a few seconds."""
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=5)
    assert [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []


# -- helper processes (issue 11, item 4) --------------------------------------------


async def test_helpers_of_a_server_that_exits_on_stdin_eof_end_with_close(stray_pids: list[int]) -> None:
    """The server exits by itself when stdin closes; its helper and grand-helper do not."""
    async with trio_mcp.open_mcp_pool({"h": hostile()}) as pool:
        stray_pids.extend(json.loads(result_text(await pool.tool_call("h", "helpers"))))
        assert all(psutil.pid_exists(pid) for pid in stray_pids)
    assert_ended(stray_pids)


async def test_a_crash_hidden_by_a_helper_holding_stdout_fails_fast_and_ends_the_group(
    stray_pids: list[int],
) -> None:
    """The helper keeps the pipe open, so no end-of-file comes: the death itself is seen."""
    async with trio_mcp.open_mcp_pool({"h": hostile()}, call_timeout=30) as pool:
        first_pid = int(result_text(await pool.tool_call("h", "pid")))
        stray_pids.append(int(result_text(await pool.tool_call("h", "stdout_holder"))))
        # Without death detection this waits out call_timeout (ToolCallTimeout).
        with pytest.raises(trio_mcp.ServerDisconnectedError):
            await pool.tool_call("h", "crash")
        assert_ended(stray_pids)
        # The next call respawns a fresh server.
        assert int(result_text(await pool.tool_call("h", "pid"))) != first_pid


# -- large messages (item 12) ----------------------------------------------------------


async def test_fifty_megabytes_over_stdio_take_at_most_a_few_times_http(http_server: HttpServer) -> None:
    """Reading is linear: the SDK's reader took 40-100 s for this; HTTP takes 1-3 s.

    The bound is loose (4x HTTP plus 5 s) so a loaded machine cannot fail it; a
    quadratic reader misses it by an order of magnitude.
    """
    size = 50_000_000
    servers: dict[str, trio_mcp.ServerConfig] = {
        "stdio": stdio_server(),
        "http": trio_mcp.StreamableHttpServer(http_server.http_url),
    }
    seconds = {}
    async with trio_mcp.open_mcp_pool(servers, call_timeout=120) as pool:
        for name in ("http", "stdio"):
            await pool.tool_call(name, "echo", {"text": "warm"})
            start = time.perf_counter()
            result = await pool.tool_call(name, "blob", {"size": size})
            seconds[name] = time.perf_counter() - start
            assert len(result_text(result)) == size
            del result
    assert seconds["stdio"] < 4 * seconds["http"] + 5, seconds


@pytest.mark.parametrize("order", ["id_first", "id_last"])
async def test_a_message_over_max_message_bytes_fails_that_call_only(order: str) -> None:
    async with trio_mcp.open_mcp_pool({"h": hostile(max_message_bytes=MiB)}) as pool:
        pid = result_text(await pool.tool_call("h", "pid"))
        async with trio.open_nursery() as nursery:
            echoes: list[str] = []

            async def echo(index: int) -> None:
                echoes.append(result_text(await pool.tool_call("h", "echo", {"text": str(index)})))

            for index in range(5):
                nursery.start_soon(echo, index)
            with pytest.raises(trio_mcp.ResponseTooLargeError) as info:
                await pool.tool_call("h", "huge", {"size": 2 * MiB, "order": order})
        assert sorted(echoes) == [str(index) for index in range(5)]
        assert isinstance(info.value, trio_mcp.RequestFailedError)
        assert "max_message_bytes" in str(info.value) and info.value.server == "h"
        # A message just under the limit still arrives, on the same session.
        assert len(result_text(await pool.tool_call("h", "huge", {"size": MiB - 1000}))) == MiB - 1000
        assert result_text(await pool.tool_call("h", "pid")) == pid


async def test_an_oversized_response_with_no_visible_id_ends_the_session() -> None:
    """The reader cannot tell whose answer it dropped, so every caller is told at once."""
    async with trio_mcp.open_mcp_pool({"h": hostile(max_message_bytes=MiB)}, call_timeout=30) as pool:
        pid = result_text(await pool.tool_call("h", "pid"))
        with pytest.raises(trio_mcp.ServerDisconnectedError):
            await pool.tool_call("h", "huge", {"size": 2 * MiB, "order": "id_hidden"})
        assert result_text(await pool.tool_call("h", "pid")) != pid


async def test_an_oversized_notification_is_dropped_and_the_call_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with trio_mcp.open_mcp_pool({"h": hostile(max_message_bytes=MiB)}) as pool:
        with caplog.at_level(logging.DEBUG):
            result = await pool.tool_call("h", "huge_notification", {"size": 2 * MiB})
        assert result_text(result) == "after the notification"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "max_message_bytes" in warnings[0].getMessage()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_max_message_bytes_is_validated(bad: Any) -> None:
    with pytest.raises(trio_mcp.ConfigError, match="max_message_bytes"):
        trio_mcp.StdioServer("x", max_message_bytes=bad)


def test_max_message_bytes_has_a_generous_default() -> None:
    assert trio_mcp.StdioServer("x").max_message_bytes == 128 * MiB


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":7,"result":{"content":[', (True, 7)),
        (b'{"result":{"x":{"id":3}},"jsonrpc":"2.0","id":"a-b"}', (True, "a-b")),
        (b'{"jsonrpc": "2.0", "id": 4, "error": {"code": 1}}', (True, 4)),
        (b'{"result":{"x":1},"id":5,"extra":{},"jsonrpc":"2.0"}', (True, None)),
        # Requests and notifications from the server are not answers to anybody.
        (b'{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{', (False, None)),
        (b'{"method":"x","params":{"a":[1]},"jsonrpc":"2.0","id":7}', (False, None)),
        (b"Server started on stdio", (False, None)),
        (b'{"no":"keys of interest"}', (False, None)),
        (b'{"\\q":1,"id":"\\x","result":{', (True, None)),  # invalid escapes are unreadable
    ],
)
def test_the_id_of_an_unusable_line_is_read_from_its_ends(line: bytes, expected: tuple[bool, Any]) -> None:
    assert response_id(line[:40], line[-40:]) == expected


async def test_an_unencodable_argument_fails_only_its_call() -> None:
    """A lone surrogate (what os.fsdecode gives for a non-UTF-8 name) never reaches the wire."""
    async with trio_mcp.open_mcp_pool({"h": hostile()}) as pool:
        pid = result_text(await pool.tool_call("h", "pid"))
        with pytest.raises(trio_mcp.InvalidArgumentsError):
            await pool.tool_call("h", "echo", {"text": "bad \udc80 name"})
        assert result_text(await pool.tool_call("h", "pid")) == pid


# -- deep and malformed responses (item 13) ------------------------------------------


@pytest.mark.parametrize(("tool", "arguments"), [("deep", {"depth": 300}), ("malformed", {})])
async def test_an_unparsable_response_fails_its_call_at_once(tool: str, arguments: dict[str, Any]) -> None:
    # Without the fix the answer is dropped and the caller waits out call_timeout.
    async with trio_mcp.open_mcp_pool({"h": hostile()}, call_timeout=30) as pool:
        pid = result_text(await pool.tool_call("h", "pid"))
        with pytest.raises(trio_mcp.MalformedResponseError) as info:
            await pool.tool_call("h", tool, arguments)
        assert info.value.server == "h"
        if tool == "deep":
            assert "nested too deeply" in str(info.value)
        # The session survives: the line was read whole, the stream is in step.
        assert result_text(await pool.tool_call("h", "pid")) == pid


async def test_a_moderately_deep_response_still_arrives() -> None:
    async with trio_mcp.open_mcp_pool({"h": hostile()}) as pool:
        result = await pool.tool_call("h", "deep", {"depth": 100})
        assert result.structured_content is not None


# -- endless listings (item 14) -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["same", "cycle", "endless"])
@pytest.mark.parametrize(
    "listing", ["list_tools", "list_resources", "list_resource_templates", "list_prompts"]
)
async def test_a_listing_that_never_ends_fails_typed(mode: str, listing: str) -> None:
    # math.inf: without a page cap and cursor check the walk would never stop.
    async with trio_mcp.open_mcp_pool({"h": hostile("--cursor", mode)}, call_timeout=math.inf) as pool:
        expected = "more than 1000 pages" if mode == "endless" else "cursor it had already sent"
        with pytest.raises(trio_mcp.MalformedResponseError, match=expected) as info:
            await getattr(pool, listing)("h")
        assert info.value.server == "h"
        # The session is fine; only the listing was refused.
        assert result_text(await pool.tool_call("h", "echo", {"text": "still here"})) == "still here"


# -- noise on stdout (item 15) ------------------------------------------------------------


async def test_non_json_lines_are_logged_once_short_and_without_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with trio_mcp.open_mcp_pool({"h": hostile()}) as pool:
        with caplog.at_level(logging.DEBUG):
            assert result_text(await pool.tool_call("h", "noise", {"lines": 20_000})) == "ok"
            assert result_text(await pool.tool_call("h", "noise", {"lines": 10})) == "ok"
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # One burst warned about; the second, seconds later, is counted, not logged again.
    assert len(noisy) == 1, [r.getMessage() for r in noisy]
    assert noisy[0].levelno == logging.WARNING and noisy[0].exc_info is None
    assert len(noisy[0].getMessage()) < 300
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert record.exc_text is None or SECRET not in record.exc_text
