"""Authorization: OAuth flows through the pool, against a real local authorization server.

The server (``tests/servers/auth_server.py``) is an SDK-built MCP server behind bearer
tokens with its own authorization server: discovery, dynamic registration, the
authorization code flow with PKCE, refresh tokens and client credentials, all real HTTP.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import re
import stat
import sys
import time
import webbrowser
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt
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
from trio_mcp._cli import main

from .conformance.sdk_client import HeadlessBrowser, MemoryStorage
from .server_processes import HERE, ServerProcess
from .servers.auth_server import APP_ID, JWT_BEARER, JWT_MACHINE_ID, MACHINE_ID, MACHINE_SECRET, WORKLOAD_ID

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

    async def admin(self, what: str, body: dict[str, Any] | None = None) -> Any:
        async with httpx2.AsyncClient() as http:
            if body is None and what in ("stats", "secrets"):
                response = await http.get(self.url(f"/admin/{what}"))
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


# -- 3. trio-mcp's own configs: OAuth for people, ClientCredentials for machines -------------


#: True while the browser's own requests run (its logs are the browser's, not ours).
browsing: ContextVar[bool] = ContextVar("browsing", default=False)


class Person:
    """Plays the person in the browser: follows the authorization URL to the loopback
    redirect, as a browser would (the authorization server approves at once)."""

    def __init__(self, *, act: bool = True, delay: float = 0.0, forge_state: bool = False) -> None:
        self.act = act
        self.delay = delay
        self.forge_state = forge_state
        self.urls: list[str] = []

    async def __call__(self, url: str) -> None:
        self.urls.append(url)
        if not self.act:
            return
        await trio.sleep(self.delay)
        token = browsing.set(True)
        try:
            async with httpx2.AsyncClient() as http:
                answer = await http.get(url)
                assert answer.status_code == 302, answer.text
                location = answer.headers["location"]
                if self.forge_state:
                    location = re.sub(r"state=[^&]+", "state=forged", location)
                landed = await http.get(location)
        finally:
            browsing.reset(token)
        assert landed.status_code == 200


def oauth(tmp_path: Path, person: Person, **kwargs: Any) -> trio_mcp.OAuth:
    return trio_mcp.OAuth(open_url=person, token_store=trio_mcp.FileTokenStore(tmp_path), **kwargs)


async def whoami(config: trio_mcp.ServerConfig, **pool_options: Any) -> str:
    async with trio_mcp.open_mcp_pool({"s": config}, **pool_options) as pool:
        return trio_mcp.result_text(await pool.tool_call("s", "whoami"))


async def test_oauth_logs_in_once_and_a_restart_does_not_ask_again(
    auth_server: AuthServer, http_transport: str, tmp_path: Path
) -> None:
    person = Person()
    config = auth_server.config(http_transport, auth=oauth(tmp_path, person))
    assert await whoami(config) == f"dyn-{(await auth_server.admin('stats'))['register']} alice"
    assert len(person.urls) == 1
    assert await whoami(config) == await whoami(config)  # two more "restarts"
    assert len(person.urls) == 1
    stats = await auth_server.admin("stats")
    assert (stats["register"], stats["authorize"], stats["grant:authorization_code"]) == (1, 1, 1)
    # The login's URL is the one the metadata names, with PKCE and a loopback redirect.
    query = parse_qs(urlsplit(person.urls[0]).query)
    assert person.urls[0].startswith(auth_server.url("/oauth/authorize?"))
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")


async def test_the_token_store_is_private(auth_server: AuthServer, tmp_path: Path) -> None:
    store = trio_mcp.FileTokenStore(tmp_path / "tokens")
    config = auth_server.config("http", auth=trio_mcp.OAuth(open_url=Person(), token_store=store))
    await whoami(config)
    files = list((tmp_path / "tokens").iterdir())
    assert [path.name for path in files] == [store.path(auth_server.endpoint("http")).name]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tokens").stat().st_mode) == 0o700
    record = json.loads(files[0].read_text())
    assert record["issuer"].rstrip("/") == auth_server.issuer and record["tokens"]["access_token"]
    assert await store.delete(auth_server.endpoint("http")) is True
    assert await store.delete(auth_server.endpoint("http")) is False


async def test_a_restart_refreshes_an_expired_token_at_the_discovered_endpoint(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    await auth_server.admin("config", {"reported_lifetime": 1})
    person = Person()
    config = auth_server.config("http", auth=oauth(tmp_path, person))
    await whoami(config)
    await trio.sleep(1.2)  # the token's lifetime is wall-clock time
    # A new pool, as after a restart: the expiry and the token endpoint (not at /token
    # on this server) come from the store, so the token is refreshed, nobody asked.
    await whoami(config)
    stats = await auth_server.admin("stats")
    assert len(person.urls) == 1 and stats["grant:refresh_token"] == 1, stats


async def test_a_declined_login_is_asked_once_and_named(auth_server: AuthServer, tmp_path: Path) -> None:
    await auth_server.admin("config", {"deny": True})
    person = Person()
    config = auth_server.config("http", auth=oauth(tmp_path, person))
    with pytest.raises(trio_mcp.AuthorizationError, match=r"the login was refused.*access_denied") as info:
        await whoami(config)
    # The SDK's handshake falls back from server/discover to initialize: one login only.
    assert len(person.urls) == 1
    assert info.value.server == "s" and info.value.status == 401


async def test_interactive_false_never_asks_a_person(auth_server: AuthServer, tmp_path: Path) -> None:
    person = Person()
    config = auth_server.config("http", auth=oauth(tmp_path, person, interactive=False))
    with pytest.raises(trio_mcp.AuthorizationError, match="a person must log in"):
        await whoami(config)
    assert person.urls == []


async def test_connect_and_call_deadlines_stop_while_a_person_logs_in(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    # The person takes longer than the connect and call timeouts; the login still succeeds.
    config = auth_server.config("http", auth=oauth(tmp_path, Person(delay=2.5)))
    assert (await whoami(config, connect_timeout=1.5, call_timeout=1.5)).endswith("alice")
    # Nobody comes: the login's own timeout ends it, not the connect timeout.
    config = auth_server.config("http", auth=oauth(tmp_path / "other", Person(act=False), login_timeout=2.5))
    with pytest.raises(trio_mcp.AuthorizationError, match=r"nobody logged in within 2\.5s"):
        await whoami(config, connect_timeout=1.5)


async def test_a_pre_registered_client_is_not_registered_again(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    config = auth_server.config("http", auth=oauth(tmp_path, Person(), client_id="${APP}"))
    assert await whoami(config, variables={"APP": APP_ID}) == f"{APP_ID} alice"
    assert "register" not in await auth_server.admin("stats")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
async def test_client_credentials(auth_server: AuthServer, http_transport: str, method: str) -> None:
    if method == "private_key_jwt":
        auth = trio_mcp.ClientCredentials(
            JWT_MACHINE_ID,
            method=method,
            private_key="${KEY}",
            signing_algorithm="ES256",
            issuer=auth_server.issuer,
        )
        client = JWT_MACHINE_ID
    else:
        auth = trio_mcp.ClientCredentials(
            "${ID}", client_secret="${SECRET}", method=method, issuer=auth_server.issuer
        )
        client = MACHINE_ID
    variables = {"ID": MACHINE_ID, "SECRET": MACHINE_SECRET, "KEY": auth_server.private_key}
    assert (
        await whoami(auth_server.config(http_transport, auth=auth), variables=variables) == f"{client} None"
    )
    assert MACHINE_SECRET not in repr(auth) and "${SECRET}" not in repr(auth)


async def test_a_missing_credential_variable_is_a_template_error(auth_server: AuthServer) -> None:
    auth = trio_mcp.ClientCredentials(MACHINE_ID, client_secret="${SECRET}")
    with pytest.raises(trio_mcp.TemplateError, match=r"auth field 'client_secret' .*\$\{SECRET\}"):
        await whoami(auth_server.config("http", auth=auth))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: trio_mcp.ClientCredentials("id"), "needs a client_secret"),
        (lambda: trio_mcp.ClientCredentials("id", method="private_key_jwt"), "exactly one of"),
        (lambda: trio_mcp.ClientCredentials("id", client_secret="s", method="magic"), "method must be"),
        (lambda: trio_mcp.OAuth(redirect_uri="https://example.com/cb"), "redirect_uri must be"),
        (lambda: trio_mcp.OAuth(client_metadata_url="http://x/y"), "client_metadata_url"),
        (lambda: trio_mcp.OAuth(scopes=["a b"]), "scopes"),
        (lambda: trio_mcp.StreamableHttpServer("http://x/mcp", auth="token"), "auth must be"),
    ],
)
def test_auth_configs_are_checked(make: Callable[[], object], words: str) -> None:
    with pytest.raises(trio_mcp.ConfigError, match=words):
        make()


# -- secrets never appear: a sweep over every log record, repr and error of full flows ---------


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [error]
    while todo:
        exc = todo.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        todo.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)
        if isinstance(exc, BaseExceptionGroup):
            todo.extend(exc.exceptions)


async def test_no_secret_in_any_log_record_repr_or_error(
    auth_server: AuthServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shown: list[str] = []
    errors: list[BaseException] = []
    await auth_server.admin("config", {"reported_lifetime": 1})
    caplog.handler.addFilter(lambda _record: not browsing.get())  # a browser's logs are its own
    with caplog.at_level(logging.DEBUG):
        # People: login, use, refresh, revoke, a refused login.
        person = Person()
        auth = oauth(tmp_path, person, client_secret=None, scopes=["offline_access"])
        config = auth_server.config("http", auth=auth)
        async with trio_mcp.open_mcp_pool({"s": config}) as pool:
            await pool.tool_call("s", "whoami")
            await trio.sleep(1.2)
            await pool.tool_call("s", "whoami")
            await auth_server.admin("revoke")
            await auth_server.admin("config", {"deny": True})
            with pytest.raises(trio_mcp.AuthorizationError) as refused:
                await pool.tool_call("s", "whoami")
            errors.append(refused.value)
            shown += [repr(pool), repr(pool.statistics()), repr(config), repr(auth)]
        # A browser that forges the state: the SDK's error would name the real one.
        await auth_server.admin("config", {"deny": False})
        auth = oauth(tmp_path / "forged", Person(forge_state=True))
        with pytest.raises(trio_mcp.AuthorizationError, match="State parameter mismatch") as forged:
            await whoami(auth_server.config("http", auth=auth))
        errors.append(forged.value)
        # Machines: a good secret and a wrong one.
        for secret in (MACHINE_SECRET, "wrong-machine-secret-51e2"):
            auth_cc = trio_mcp.ClientCredentials(MACHINE_ID, client_secret=secret, issuer=auth_server.issuer)
            config = auth_server.config("sse", auth=auth_cc)
            shown += [repr(config), repr(auth_cc)]
            try:
                await whoami(config)
            except trio_mcp.MCPPoolError as error:
                errors.append(error)
    assert len(errors) == 3
    shown += [f"{exc!r} {exc}" for error in errors for exc in _chain(error)]
    shown += [record.getMessage() for record in caplog.records]
    shown += [caplog.text]  # includes formatted tracebacks of exc_info records
    text = "\n".join(shown)
    secrets = [*await auth_server.admin("secrets"), MACHINE_SECRET, "wrong-machine-secret-51e2"]
    assert len(secrets) > 10, (
        secrets,
        await auth_server.admin("stats"),
    )  # tokens, refresh tokens, codes, PKCE values, states, client secrets
    leaked = [secret for secret in secrets if secret in text]
    where = [line[:300] for line in text.splitlines() for secret in leaked if secret in line]
    assert not leaked, (len(leaked), where)


# -- 4. config files and the command line ------------------------------------------------------


def test_config_files_take_an_auth_entry() -> None:
    servers = trio_mcp.load_servers(
        {
            "mcpServers": {
                "people": {
                    "url": "https://example.com/mcp",
                    "auth": {"type": "oauth", "scopes": ["files:read"]},
                },
                "workloads": {
                    "url": "https://example.com/mcp",
                    "auth": {"type": "workload_identity", "client_id": "svc", "assertion": "${env:TOKEN}"},
                },
                "machines": {
                    "url": "https://example.com/sse",
                    "type": "sse",
                    "auth": {
                        "type": "client_credentials",
                        "client_id": "${env:CLIENT_ID}",
                        "client_secret": "${env:CLIENT_SECRET}",
                        "method": "client_secret_post",
                        "issuer": "https://auth.example.com",
                        "token_dir": "/tmp/tokens",
                    },
                },
            }
        }
    )
    people, machines = servers["people"], servers["machines"]
    assert servers["workloads"].auth == trio_mcp.WorkloadIdentity("svc", assertion="${TOKEN}")  # type: ignore[union-attr]
    assert isinstance(people, trio_mcp.StreamableHttpServer) and isinstance(machines, trio_mcp.SseServer)
    assert people.auth == trio_mcp.OAuth(scopes=["files:read"])
    assert machines.auth == trio_mcp.ClientCredentials(
        "${CLIENT_ID}",
        client_secret="${CLIENT_SECRET}",
        method="client_secret_post",
        issuer="https://auth.example.com",
        token_store=trio_mcp.FileTokenStore("/tmp/tokens"),
    )


@pytest.mark.parametrize(
    ("auth", "words"),
    [
        ({"type": "oauth", "scope": "x"}, r"server 'a': field 'auth' \(oauth\) does not take 'scope'"),
        ({"scopes": ["x"]}, "needs a 'type'"),
        ({"type": "client_credentials", "client_secret": "s"}, "needs a 'client_id'"),
        ("oauth", "must be an object"),
    ],
)
def test_bad_auth_entries_are_config_errors(auth: object, words: str) -> None:
    with pytest.raises(trio_mcp.ConfigError, match=words):
        trio_mcp.load_servers({"a": {"url": "https://example.com/mcp", "auth": auth}})


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_login_call_logout_from_the_command_line(
    auth_process: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def browser(url: str) -> bool:  # the person, in a browser the command opened
        opened.append(url)
        with httpx2.Client() as http:
            answer = http.get(url)
            http.get(answer.headers["location"]).raise_for_status()
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    monkeypatch.setenv("TRIO_MCP_TOKEN_DIR", str(tmp_path / "tokens"))
    path = tmp_path / "mcp.json"
    entry = {"url": auth_process.endpoint("http"), "auth": {"type": "oauth", "interactive": False}}
    path.write_text(json.dumps({"mcpServers": {"remote": entry}}))
    # Not interactive, not logged in: the call fails, naming what to do.
    code, out, err = cli("call", str(path), "remote", "whoami")
    assert code == 3 and "trio-mcp login" in err and not opened
    code, out, err = cli("login", str(path), "remote")
    assert (code, out.strip()) == (0, "logged in to 'remote' (2 tools)")
    assert len(opened) == 1 and opened[0] in err  # the address is shown as well
    code, out, err = cli("call", str(path), "remote", "whoami")
    assert (code, err) == (0, "") and out.strip().endswith("alice") and len(opened) == 1
    assert cli("logout", str(path), "remote")[1].strip() == "logged out of 'remote'"
    assert cli("logout", str(path), "remote")[1].strip() == "no stored tokens for 'remote'"
    code, out, err = cli("login", str(path), "nope")
    assert code == 2 and "no server named 'nope'" in err


def test_client_credentials_from_the_command_line(auth_process: AuthServer, tmp_path: Path) -> None:
    entry = {
        "url": auth_process.endpoint("sse"),
        "type": "sse",
        "auth": {"type": "client_credentials", "client_id": MACHINE_ID, "client_secret": "${env:SECRET}"},
    }
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"m": entry}}))
    code, out, err = cli("call", str(path), "m", "whoami", "--var", f"SECRET={MACHINE_SECRET}")
    assert (code, out.strip(), err) == (0, f"{MACHINE_ID} None", "")
    code, out, err = cli("call", str(path), "m", "whoami", "--var", "SECRET=wrong-cli-secret-77")
    assert code == 3 and "invalid_client" in err and "wrong-cli-secret-77" not in err


# -- 5. credentials per tenant ---------------------------------------------------------------


class Hinting(Person):
    """A person who logs in as ``user`` (the test server takes the login_hint as the subject)."""

    def __init__(self, user: str) -> None:
        super().__init__()
        self.user = user

    async def __call__(self, url: str) -> None:
        await super().__call__(f"{url}&login_hint={self.user}")


async def test_tenants_never_share_credentials_under_concurrency(auth_server: AuthServer) -> None:
    users = [f"user{i}" for i in range(6)]
    stores = {user: trio_mcp.MemoryTokenStore() for user in users}  # one per user, kept across evictions

    def servers_for(user: str) -> dict[str, trio_mcp.ServerConfig]:
        auth = trio_mcp.OAuth(open_url=Hinting(user), token_store=stores[user])
        return {"s": auth_server.config("http", auth=auth)}

    answers: list[tuple[str, str]] = []
    async with trio.open_nursery() as nursery:
        tenants = await nursery.start(
            functools.partial(trio_mcp.serve_tenant_pools, servers_for, max_tenants=3)
        )

        async def calls(user: str) -> None:
            done = 0
            while done < 2:
                try:
                    result = await tenants.tool_call(user, "s", "whoami")
                except trio_mcp.ServerOverloadedError:
                    await trio.sleep(0.05)  # every pool is busy: try again
                    continue
                answers.append((user, trio_mcp.result_text(result).split()[1]))
                done += 1

        async with trio.open_nursery() as callers:
            for user in users:
                callers.start_soon(calls, user)
        assert len(tenants.identities) <= 3
        tenants.close()
    assert len(answers) == 12 and all(user == subject for user, subject in answers)


async def test_tenants_refuse_shared_credentials(auth_server: AuthServer) -> None:
    shared = trio_mcp.MemoryTokenStore()
    configs: dict[str, Callable[[str], dict[str, trio_mcp.ServerConfig]]] = {
        "same store": lambda user: {
            "s": auth_server.config("http", auth=trio_mcp.OAuth(open_url=Person(), token_store=shared))
        },
        "default file store": lambda user: {
            "s": auth_server.config("http", auth=trio_mcp.OAuth(open_url=Person()))
        },
    }
    for servers_for in configs.values():
        async with trio.open_nursery() as nursery:
            tenants = await nursery.start(trio_mcp.serve_tenant_pools, servers_for)
            with pytest.raises(trio_mcp.ConfigError, match=r"token_store|same credentials"):
                await tenants.list_tools("a", "s")
                await tenants.list_tools("b", "s")
            tenants.close()


async def test_a_full_house_of_busy_tenants_fails_fast(auth_server: AuthServer) -> None:
    def servers_for(user: str) -> dict[str, trio_mcp.ServerConfig]:
        return {
            "s": auth_server.config(
                "http", auth=trio_mcp.ClientCredentials(MACHINE_ID, client_secret=MACHINE_SECRET)
            )
        }

    async with trio.open_nursery() as nursery:
        tenants = await nursery.start(
            functools.partial(trio_mcp.serve_tenant_pools, servers_for, max_tenants=1)
        )
        async with tenants.pool("a") as pool:
            await pool.tool_call("s", "echo", {"text": "x"})
            with pytest.raises(trio_mcp.ServerOverloadedError, match="all 1 tenant pools are in use"):
                await tenants.list_tools("b", "s")
        await tenants.list_tools("b", "s")  # "a" is idle now: it makes room
        assert tenants.identities == ["b"]
        tenants.close()
        with pytest.raises(trio_mcp.PoolClosedError):
            await tenants.list_tools("a", "s")


def workload_jwt(server: AuthServer, subject: str, audience: str | None = None) -> str:
    claims = {"sub": subject, "aud": audience or server.issuer, "exp": int(time.time()) + 300}
    return jwt.encode(claims, server.private_key, algorithm="ES256")


async def test_workload_identity(auth_server: AuthServer, http_transport: str) -> None:
    # The JWT as a ${name} template, filled from the pool's variables.
    auth = trio_mcp.WorkloadIdentity(WORKLOAD_ID, assertion="${JWT}", issuer=auth_server.issuer)
    token = workload_jwt(auth_server, "svc-reports")
    config = auth_server.config(http_transport, auth=auth)
    assert await whoami(config, variables={"JWT": token}) == f"{WORKLOAD_ID} svc-reports"
    assert token not in repr(auth) and "${JWT}" not in repr(auth)
    # Or a function of the audience, asked for a fresh JWT at each grant.
    audiences: list[str] = []

    async def fetch(audience: str) -> str:
        audiences.append(audience)
        return workload_jwt(auth_server, "svc-nightly", audience)

    config = auth_server.config(http_transport, auth=trio_mcp.WorkloadIdentity(WORKLOAD_ID, assertion=fetch))
    assert await whoami(config) == f"{WORKLOAD_ID} svc-nightly"
    assert [audience.rstrip("/") for audience in audiences] == [auth_server.issuer]


async def test_a_refused_workload_jwt_is_reported_not_retried(auth_server: AuthServer) -> None:
    token = workload_jwt(auth_server, "svc", audience="https://elsewhere.example")
    config = auth_server.config("http", auth=trio_mcp.WorkloadIdentity(WORKLOAD_ID, assertion=token))
    with pytest.raises(trio_mcp.AuthorizationError, match="invalid_grant"):
        await whoami(config)
    assert (await auth_server.admin("stats"))[f"grant:{JWT_BEARER}"] == 1


# -- DPoP (the conformance suite's auth/dpop and auth/dpop-nonce check it against a server) ---


class _TokenedFlow(httpx2.Auth):
    """A stand-in flow: one token request, then the request with a Bearer token."""

    async def async_auth_flow(  # noqa: ASYNC900 (httpx2 auth flows are async generators)
        self, request: httpx2.Request
    ) -> AsyncIterator[httpx2.Request]:
        token = httpx2.Request(
            "POST", "https://as.example/token?x=1", data={"grant_type": "client_credentials"}
        )
        answer = yield token
        assert answer.json()["token_type"] == "Bearer"  # what the SDK's flows understand
        request.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        yield request


async def test_dpop_proofs_bind_token_requests_and_tokens() -> None:
    from trio_mcp._auth import _Credentials, _DPoP

    store = trio_mcp.MemoryTokenStore()
    dpop = _DPoP(_TokenedFlow(), _Credentials(store, "https://mcp.example/mcp"))
    request = httpx2.Request("POST", "https://mcp.example/mcp?q=1", json={})
    flow = dpop.async_auth_flow(request)
    token_request = await flow.__anext__()
    proof = token_request.headers["DPoP"]
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256" and header["jwk"]["crv"] == "P-256"
    key = jwt.PyJWK(header["jwk"]).key
    claims = jwt.decode(proof, key, algorithms=["ES256"])
    assert (claims["htm"], claims["htu"]) == ("POST", "https://as.example/token") and "ath" not in claims
    # The authorization server wants a nonce first: the token request goes again, with it.
    retry = await flow.asend(
        httpx2.Response(
            400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n1"}, request=token_request
        )
    )
    assert retry is token_request
    again = jwt.decode(retry.headers["DPoP"], key, algorithms=["ES256"])
    assert again["nonce"] == "n1" and again["jti"] != claims["jti"]
    sent = await flow.asend(
        httpx2.Response(200, json={"access_token": "tok-1", "token_type": "DPoP"}, request=token_request)
    )
    assert sent is request and request.headers["Authorization"] == "DPoP tok-1"
    bound = jwt.decode(request.headers["DPoP"], key, algorithms=["ES256"])
    assert bound["htu"] == "https://mcp.example/mcp" and bound["htm"] == "POST"
    assert bound["ath"] == base64.urlsafe_b64encode(hashlib.sha256(b"tok-1").digest()).decode().rstrip("=")
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx2.Response(200, json={}, request=request))
    # The key is kept beside the tokens it binds: after a restart, the same key.
    await dpop._credentials._save()  # as set_tokens does
    restarted = _DPoP(_TokenedFlow(), _Credentials(store, "https://mcp.example/mcp"))
    await restarted._load_key()
    assert restarted._jwk == header["jwk"]
