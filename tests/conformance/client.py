"""The conformance client that goes through the trio-mcp pool.

Run by the official MCP conformance suite as ``python tests/conformance/client.py
<server-url>`` (``make conformance`` does it for every client scenario, see
``run.py``). Every request goes through :func:`trio_mcp.open_mcp_pool` with one
:class:`trio_mcp.StreamableHttpServer` pointed at the suite's mock server, configured
as a user would: no option the pool does not offer, no reaching into the SDK below it.
The ``auth/*`` scenarios authorize with the SDK's own OAuth providers, exactly as the
raw SDK client (``sdk_client.py``) builds them, passed to the pool as ``auth=``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mcp.types as types
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: make `tests` importable

from tests.conformance.scenarios import Run, main, run_flow
from tests.conformance.sdk_client import oauth_for

import trio_mcp

SERVER = "conformance"
# Well inside the suite's own per-scenario timeout, so a hang reports as our error.
DEADLINE = 25.0


class PoolSession:
    def __init__(self, pool: trio_mcp.MCPPool) -> None:
        self._pool = pool

    async def list_tools(self) -> list[types.Tool]:
        return await self._pool.list_tools(SERVER)

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
        return await self._pool.tool_call(SERVER, name, arguments)


async def run_through_pool(run: Run) -> None:
    with trio.fail_after(DEADLINE):
        auth = await oauth_for(run)
        servers = {SERVER: trio_mcp.StreamableHttpServer(run.url, mode=run.mode, auth=auth)}
        async with trio_mcp.open_mcp_pool(servers, validate_arguments=run.check_arguments) as pool:
            await run_flow(run, PoolSession(pool))


if __name__ == "__main__":
    main(lambda run: trio.run(run_through_pool, run))
