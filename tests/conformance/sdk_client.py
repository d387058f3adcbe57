"""The same conformance flows over the raw SDK ``mcp.Client``: the baseline for the pool.

Uses what the SDK offers that the pool does not (yet): client-side handlers
(elicitation, sampling, roots) and OAuth providers for the ``auth/*`` scenarios.
Runs on asyncio, as the SDK's own conformance runs do. Measure it with
``python tests/conformance/run.py --client sdk --no-baseline``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import mcp.types as types
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.auth.utils import build_protected_resource_metadata_discovery_urls
from mcp.client.context import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: make `tests` importable

from tests.conformance.scenarios import Run, main, run_flow

DEADLINE = 25.0
REDIRECT_URI = "http://localhost:3000/callback"
# The suite's mock authorization servers accept this URL as a client ID metadata document.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


class SdkSession:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def list_tools(self) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await self._client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
        return await self._client.call_tool(name, arguments)


# -- client-side handlers ---------------------------------------------------------


async def accept_defaults(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult:
    """Accept, with every default the requested schema declares (SEP-1034)."""
    content: dict[str, Any] = {}
    if isinstance(params, types.ElicitRequestFormParams):
        for name, schema in params.requested_schema.get("properties", {}).items():
            if "default" in schema:
                content[name] = schema["default"]
    return types.ElicitResult(action="accept", content=content)


async def confirm(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    """The answer the request-state (MRTR) scenario asks for: a yes to its ``confirmed`` field."""
    return types.ElicitResult(action="accept", content={"confirmed": True})


async def sample(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=""), model="conformance"
    )


async def list_roots(context: ClientRequestContext) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[])


# -- authorization ------------------------------------------------------------------


class MemoryStorage:
    """Tokens and client registration kept for one run."""

    def __init__(self, client_info: OAuthClientInformationFull | None = None) -> None:
        self._tokens: OAuthToken | None = None
        self._client_info = client_info

    async def get_tokens(self) -> OAuthToken | None:
        return self._tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self._client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._client_info = client_info


class HeadlessBrowser:
    """Follows the authorization URL itself and takes the code from the redirect."""

    def __init__(self) -> None:
        self._result: AuthorizationCodeResult | None = None

    async def open(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient() as http:
            response = await http.get(authorization_url, follow_redirects=False)
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            raise RuntimeError(f"the authorization endpoint answered {response.status_code}, not a redirect")
        query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        if "code" not in query:
            raise RuntimeError("the authorization redirect carries no code")
        self._result = AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    async def callback(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        if result is None:
            raise RuntimeError("no authorization code: the redirect was never followed")
        return result


async def _issuer_from_resource_metadata(url: str) -> str:
    metadata_url = build_protected_resource_metadata_discovery_urls(None, url)[0]
    async with httpx2.AsyncClient() as http:
        response = await http.get(metadata_url)
    response.raise_for_status()
    issuer: str = response.json()["authorization_servers"][0]
    return issuer


def _id_jag_fetcher(run: Run) -> Callable[[str, str], Awaitable[str]]:
    """SEP-990: trade the IdP's ID token for an ID-JAG at the IdP (RFC 8693)."""
    context = run.context

    async def fetch(audience: str, resource: str) -> str:
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                context["idp_token_endpoint"],
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                    "subject_token": context["idp_id_token"],
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "audience": audience,
                    "resource": resource,
                    "client_id": context["idp_client_id"],
                },
            )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    return fetch


async def oauth_for(run: Run) -> httpx2.Auth | None:
    """The SDK's provider for an ``auth/*`` scenario (None for the others)."""
    if not run.scenario.startswith("auth/"):
        return None
    context = run.context
    # Client credentials and identity assertion: a registered client, no browser.
    registered: dict[str, Any] = {
        "server_url": run.url,
        "storage": MemoryStorage(),
        "client_id": context.get("client_id"),
    }
    if run.scenario == "auth/client-credentials-basic":
        return ClientCredentialsOAuthProvider(
            **registered,
            client_secret=context["client_secret"],
            token_endpoint_auth_method="client_secret_basic",
        )
    if run.scenario == "auth/client-credentials-jwt":
        assertion = SignedJWTParameters(
            issuer=context["client_id"],
            subject=context["client_id"],
            signing_algorithm=context.get("signing_algorithm", "ES256"),
            signing_key=context["private_key_pem"],
        )
        return PrivateKeyJWTOAuthProvider(
            **registered, assertion_provider=assertion.create_assertion_provider()
        )
    if run.scenario == "auth/enterprise-managed-authorization":
        return IdentityAssertionOAuthProvider(
            **registered,
            client_secret=context["client_secret"],
            issuer=await _issuer_from_resource_metadata(run.url),
            assertion_provider=_id_jag_fetcher(run),
            token_endpoint_auth_method="client_secret_basic",
        )
    # Everything else: the authorization code flow, pre-registered if the context says so.
    client_info = None
    if "client_id" in context:
        secret = context.get("client_secret")
        client_info = OAuthClientInformationFull(
            client_id=context["client_id"],
            client_secret=secret,
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
        )
    browser = HeadlessBrowser()
    return OAuthClientProvider(
        server_url=run.url,
        client_metadata=OAuthClientMetadata(
            client_name="trio-mcp conformance (SDK baseline)",
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=MemoryStorage(client_info),
        redirect_handler=browser.open,
        callback_handler=browser.callback,
        client_metadata_url=CLIENT_METADATA_URL,
    )


@asynccontextmanager
async def open_sdk_client(run: Run) -> AsyncIterator[Client]:
    async with AsyncExitStack() as stack:
        auth = await oauth_for(run)
        target: Any = run.url
        if auth is not None:
            http = await stack.enter_async_context(httpx2.AsyncClient(auth=auth, timeout=30.0))
            target = streamable_http_client(run.url, http_client=http)
        client = Client(
            target,
            mode=run.mode,
            elicitation_callback=confirm
            if run.scenario == "sep-2322-client-request-state"
            else accept_defaults,
            sampling_callback=sample,
            list_roots_callback=list_roots,
        )
        yield await stack.enter_async_context(client)


async def run_through_sdk(run: Run) -> None:
    with anyio.fail_after(DEADLINE):
        async with open_sdk_client(run) as client:
            await run_flow(run, SdkSession(client))


if __name__ == "__main__":
    main(lambda run: anyio.run(run_through_sdk, run))
