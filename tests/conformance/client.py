"""The conformance client that goes through the trio-mcp pool.

Run by the official MCP conformance suite as ``python tests/conformance/client.py
<server-url>`` (``make conformance`` does it for every client scenario, see
``run.py``). Every request goes through :func:`trio_mcp.open_mcp_pool` with one
:class:`trio_mcp.StreamableHttpServer` pointed at the suite's mock server, configured
as a user would: no option the pool does not offer, no reaching into the SDK below it.
The ``auth/*`` scenarios authorize with the SDK's own OAuth providers, exactly as the
raw SDK client (``sdk_client.py``) builds them, passed to the pool as ``auth=``; with
``--own-auth`` (``run.py --client pool-own-auth``) they use trio-mcp's own configs
instead — :class:`trio_mcp.OAuth` with its loopback receiver, and
:class:`trio_mcp.ClientCredentials` — where it has one for the scenario. Where the SDK
has no provider (workload identity, DPoP), both use trio-mcp's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx2
import mcp.types as types
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: make `tests` importable

from tests.conformance.scenarios import Run, main, run_flow
from tests.conformance.sdk_client import CLIENT_METADATA_URL, oauth_for

import trio_mcp

SERVER = "conformance"
OWN_AUTH = "--own-auth" in sys.argv[1:-1]
# Scenarios the SDK has no provider for: trio-mcp's own config, whichever client this is.
NO_SDK_PROVIDER = frozenset({"auth/wif-jwt-bearer", "auth/dpop", "auth/dpop-nonce"})
# Well inside the suite's own per-scenario timeout, so a hang reports as our error.
DEADLINE = 25.0


class PoolSession:
    def __init__(self, pool: trio_mcp.MCPPool) -> None:
        self._pool = pool

    async def list_tools(self) -> list[types.Tool]:
        return await self._pool.list_tools(SERVER)

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
        return await self._pool.tool_call(SERVER, name, arguments)

    async def list_skills(self) -> list[str]:
        return [skill.name for skill in await self._pool.list_skills(SERVER)]

    async def load_skill(self, name: str) -> list[bytes]:
        skill = await self._pool.read_skill(SERVER, name)
        files = skill.entry.files or ()
        return [
            await self._pool.read_skill_file(SERVER, skill, item.uri)
            for item in files
            if item.uri != skill.entry.uri
        ]


def _accept(server: str, params: types.ElicitRequestParams) -> types.ElicitResult:
    # An unattended client: accept every form with the defaults its schema declares.
    return trio_mcp.accept_with_defaults(params)


async def browse(url: str) -> None:
    """A headless browser: follow the authorization URL to the client's loopback redirect."""
    async with httpx2.AsyncClient() as http:
        answer = await http.get(url)
        location = answer.headers.get("location")
        if not answer.is_redirect or not location:
            raise RuntimeError(f"the authorization endpoint answered {answer.status_code}, not a redirect")
        await http.get(location)


async def own_auth_for(run: Run) -> Any:
    """trio-mcp's own config for an ``auth/*`` scenario, where it has one."""
    context = run.context
    if run.scenario == "auth/client-credentials-basic":
        return trio_mcp.ClientCredentials(context["client_id"], client_secret=context["client_secret"])
    if run.scenario == "auth/client-credentials-jwt":
        return trio_mcp.ClientCredentials(
            context["client_id"],
            method="private_key_jwt",
            private_key=context["private_key_pem"],
            signing_algorithm=context.get("signing_algorithm", "ES256"),
        )
    if run.scenario == "auth/wif-jwt-bearer":
        return trio_mcp.WorkloadIdentity(context["client_id"], assertion=context["valid_jwt"])
    if run.scenario == "auth/enterprise-managed-authorization":
        return await oauth_for(run)  # SEP-990: only the SDK's provider does it
    return trio_mcp.OAuth(
        client_id=context.get("client_id"),
        client_secret=context.get("client_secret"),
        client_metadata_url=CLIENT_METADATA_URL,
        open_url=browse,
        token_store=trio_mcp.MemoryTokenStore(),
        dpop=run.scenario.startswith("auth/dpop"),
    )


async def run_through_pool(run: Run) -> None:
    handlers = trio_mcp.Handlers(elicitation=_accept)
    with trio.fail_after(DEADLINE):
        if not run.scenario.startswith("auth/"):
            auth = None
        elif OWN_AUTH or run.scenario in NO_SDK_PROVIDER:
            auth = await own_auth_for(run)
        else:
            auth = await oauth_for(run)
        servers = {SERVER: trio_mcp.StreamableHttpServer(run.url, mode=run.mode, auth=auth)}
        async with trio_mcp.open_mcp_pool(
            servers, validate_arguments=run.check_arguments, handlers=handlers
        ) as pool:
            await run_flow(run, PoolSession(pool))


if __name__ == "__main__":
    main(lambda run: trio.run(run_through_pool, run))
