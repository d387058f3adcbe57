"""Authorization: OAuth flows through the pool, against a real local authorization server.

The server (``tests/servers/auth_server.py``) is an SDK-built MCP server behind bearer
tokens with its own authorization server: discovery, dynamic registration, the
authorization code flow with PKCE, refresh tokens and client credentials, all real HTTP.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

import trio_mcp

from .conformance.sdk_client import HeadlessBrowser, MemoryStorage
from .server_processes import HERE, ServerProcess
from .servers.auth_server import JWT_MACHINE_ID, MACHINE_ID, MACHINE_SECRET

AUTH_SERVER = HERE / "servers" / "auth_server.py"
KINDS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "authorization_code")


class AuthServer(ServerProcess):
    """The OAuth-protected test server, with handles on its authorization server's state."""

    def __init__(self, public_key: str, private_key: str) -> None:
        super().__init__([sys.executable, str(AUTH_SERVER)], env={"AUTH_JWT_PUBLIC_KEY": public_key})
        self.private_key = private_key
        self.start()

    @property
    def issuer(self) -> str:
        return self.url("")

    def endpoint(self, transport: str) -> str:
        return self.url("/mcp" if transport == "http" else "/sse")

    def config(self, transport: str, **kwargs: Any) -> trio_mcp.ServerConfig:
        cls = trio_mcp.StreamableHttpServer if transport == "http" else trio_mcp.SseServer
        return cls(self.endpoint(transport), **kwargs)

    async def admin(self, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with httpx2.AsyncClient() as http:
            if body is None and what == "stats":
                response = await http.get(self.url("/admin/stats"))
            else:
                response = await http.post(self.url(f"/admin/{what}"), json=body or {})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(scope="module")
def auth_process() -> Iterator[AuthServer]:
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    server = AuthServer(public_pem, private_pem)
    yield server
    server.stop()


@pytest.fixture
async def auth_server(auth_process: AuthServer) -> AuthServer:
    await auth_process.admin("reset")
    return auth_process


@pytest.fixture(params=("http", "sse"))
def http_transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def sdk_provider(server: AuthServer, transport: str, kind: str, **kwargs: Any) -> httpx2.Auth:
    """One of the SDK's own providers, built as the SDK documents it."""
    url = server.endpoint(transport)
    if kind in ("client_secret_basic", "client_secret_post"):
        return ClientCredentialsOAuthProvider(
            url,
            MemoryStorage(),
            MACHINE_ID,
            kwargs.get("secret", MACHINE_SECRET),
            token_endpoint_auth_method=kind,  # type: ignore[arg-type]
            issuer=server.issuer,
        )
    if kind == "private_key_jwt":
        assertion = SignedJWTParameters(
            issuer=JWT_MACHINE_ID,
            subject=JWT_MACHINE_ID,
            signing_key=server.private_key,
            signing_algorithm="ES256",
        )
        return PrivateKeyJWTOAuthProvider(
            url,
            MemoryStorage(),
            JWT_MACHINE_ID,
            assertion_provider=assertion.create_assertion_provider(),
            issuer=server.issuer,
        )
    browser = HeadlessBrowser()
    return OAuthClientProvider(
        url,
        OAuthClientMetadata(
            client_name="trio-mcp tests",
            redirect_uris=[AnyUrl("http://127.0.0.1:9/callback")],
            grant_types=["authorization_code", "refresh_token"],
        ),
        MemoryStorage(),
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )


# -- 1. any httpx2.Auth, the SDK's providers unchanged ----------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_sdk_providers_work_unchanged_through_the_pool(
    auth_server: AuthServer, http_transport: str, kind: str
) -> None:
    auth = sdk_provider(auth_server, http_transport, kind)
    async with trio_mcp.open_mcp_pool({"s": auth_server.config(http_transport, auth=auth)}) as pool:
        who = trio_mcp.result_text(await pool.tool_call("s", "whoami"))
        assert trio_mcp.result_text(await pool.tool_call("s", "echo", {"text": "hi"})) == "hi"
        stats = pool.statistics()["s"]
    expected = {"private_key_jwt": JWT_MACHINE_ID, "authorization_code": "dyn-"}.get(kind, MACHINE_ID)
    assert who.startswith(expected)
    # The handshake's 401 was answered by the flow: no failure, one connection, one token.
    assert (stats.connects, stats.failed, stats.completed) == (1, 0, 2)
    grants = await auth_server.admin("stats")
    grant = "grant:authorization_code" if kind == "authorization_code" else "grant:client_credentials"
    assert grants[grant] == 1


async def test_a_refused_flow_is_an_authorization_error(auth_server: AuthServer, http_transport: str) -> None:
    auth = sdk_provider(auth_server, http_transport, "client_secret_basic", secret="wrong-secret-9c2d")
    async with trio_mcp.open_mcp_pool({"s": auth_server.config(http_transport, auth=auth)}) as pool:
        with pytest.raises(trio_mcp.AuthorizationError) as info:
            await pool.tool_call("s", "whoami")
    error = info.value
    assert error.server == "s" and error.status == 401
    assert "invalid_client" in str(error) and "/token" in str(error)
    assert error.resource_metadata == auth_server.url("/.well-known/oauth-protected-resource")
    assert "wrong-secret-9c2d" not in str(error) + repr(error)
    assert error.__cause__ is None and error.__context__ is None


async def test_tokens_are_refreshed_through_the_pool(auth_server: AuthServer, http_transport: str) -> None:
    # Every token says it lasts a second (the server honours it for an hour).
    await auth_server.admin("config", {"reported_lifetime": 1})
    auth = sdk_provider(auth_server, http_transport, "authorization_code")
    async with trio_mcp.open_mcp_pool({"s": auth_server.config(http_transport, auth=auth)}) as pool:
        await pool.tool_call("s", "echo", {"text": "x"})
        await trio.sleep(1.2)  # the client's clock is the wall clock: let the token expire
        await pool.tool_call("s", "echo", {"text": "x"})
        assert pool.statistics()["s"].connects == 1
    stats = await auth_server.admin("stats")
    assert stats["authorize"] == 1 and stats["grant:authorization_code"] == 1, stats
    assert stats["grant:refresh_token"] >= 1


async def test_a_flow_failing_mid_session_fails_that_call(auth_server: AuthServer) -> None:
    auth = sdk_provider(auth_server, "http", "authorization_code")
    async with trio_mcp.open_mcp_pool({"s": auth_server.config("http", auth=auth)}) as pool:
        await pool.tool_call("s", "echo", {"text": "x"})
        # The tokens die and the person says no: the SDK's provider logs in again, refused.
        await auth_server.admin("revoke")
        await auth_server.admin("config", {"deny": True})
        with pytest.raises(trio_mcp.AuthorizationError, match="server 's': authorization failed") as info:
            await pool.tool_call("s", "echo", {"text": "x"})
        assert info.value.status == 401
        # Its credentials are dead: the session is dropped, and the next call does not
        # ask the person again at once.
        with pytest.raises(trio_mcp.AuthorizationError, match="not tried again for"):
            await pool.tool_call("s", "echo", {"text": "x"})
        stats = pool.statistics()["s"]
        assert (stats.state, stats.connects) == (trio_mcp.ServerState.UNAUTHORIZED, 1)
    assert (await auth_server.admin("stats"))["authorize"] == 2  # the first login, and the refused one


# -- 2. authorization failures are not transient ----------------------------------------


async def test_authorization_failures_neither_retry_at_once_nor_trip_the_circuit(
    auth_server: AuthServer,
) -> None:
    policy = trio_mcp.ReconnectPolicy(failure_threshold=1, circuit_reset=3600)
    auth = sdk_provider(auth_server, "http", "authorization_code")
    await auth_server.admin("config", {"deny": True})
    config = auth_server.config("http", auth=auth, reconnect=policy)
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        for attempt in range(3):
            with pytest.raises(trio_mcp.AuthorizationError) as info:
                await pool.tool_call("s", "echo", {"text": "x"})
            if attempt:
                assert "not tried again for" in str(info.value)
        stats = pool.statistics()["s"]
    assert stats.state is trio_mcp.ServerState.UNAUTHORIZED
    assert stats.consecutive_failures == 0
    # One login was attempted, not three.
    assert (await auth_server.admin("stats"))["authorize"] == 1


async def test_after_the_hold_one_call_tries_again(auth_server: AuthServer) -> None:
    policy = trio_mcp.ReconnectPolicy(circuit_reset=0.2)
    auth = sdk_provider(auth_server, "http", "authorization_code")
    await auth_server.admin("config", {"deny": True})
    async with trio_mcp.open_mcp_pool({"s": auth_server.config("http", auth=auth, reconnect=policy)}) as pool:
        with pytest.raises(trio_mcp.AuthorizationError):
            await pool.tool_call("s", "echo", {"text": "x"})
        await auth_server.admin("config", {"deny": False})
        await trio.sleep(0.3)  # past the hold (real time: the server's clock is real)
        assert trio_mcp.result_text(await pool.tool_call("s", "echo", {"text": "ok"})) == "ok"
        assert pool.statistics()["s"].state is trio_mcp.ServerState.READY
    assert (await auth_server.admin("stats"))["authorize"] == 2
