"""Streamable HTTP servers that misbehave on purpose (``servers/hostile_http_server.py``),
in both protocol eras: each failure is one clear typed error, the secrets a request
carried never come back through an error or a log record, and the pool keeps serving."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
import trio

import trio_mcp
from trio_mcp import result_text

from .server_processes import HERE, ServerProcess

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
