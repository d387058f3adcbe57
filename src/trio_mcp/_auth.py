"""Credentials for remote servers: authorization flows run for the pool.

Any ``httpx2.Auth`` can authorize a :class:`StreamableHttpServer` or :class:`SseServer`
— the SDK's OAuth providers (``mcp.client.auth``) included, unchanged. The pool runs
every flow inside :class:`ObservedAuth`, which does three things the bare flow does not:

- it reports to the transport only the *final* answer to each MCP request: a 401 the
  flow answered by fetching a token, and the flow's own requests (metadata discovery,
  registration, token), are none of the session's business;
- it turns a flow that fails (a refused token request, a declined login, metadata that
  does not check out) into one :class:`AuthorizationError` naming the server, what it
  asked for (scope, resource metadata URL) and what went wrong — never a token, code,
  verifier, state or secret (the SDK's own message is cut before any ``": "`` detail);
- it gives the flow's own requests the timeouts of the request they serve.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import logging
import math
import os
import re
import secrets
import socket
import sys
import time
import warnings
import webbrowser
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx2
import jwt as pyjwt
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
    static_assertion_provider,
)
from mcp.client.auth.oauth2 import OAuthContext
from mcp.client.auth.utils import is_valid_client_metadata_url, issuers_match, union_scopes
from mcp.shared.auth import (
    JWT_BEARER_GRANT_TYPE,
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
)
from mcp.shared.auth_utils import resource_url_from_server_url
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import AnyUrl

from ._errors import AuthorizationError, ConfigError, challenge_parameter
from ._headers import render_templates
from ._redact import redact_text

__all__ = [
    "OBSERVED",
    "AuthConfig",
    "ClientCredentials",
    "FileTokenStore",
    "HasDeadline",
    "MemoryTokenStore",
    "OAuth",
    "ObservedAuth",
    "TokenStore",
    "WorkloadIdentity",
    "auth_from_mapping",
    "authorization_failed",
    "build_auth",
    "challenge_summary",
    "check_auth",
    "copy_authorization_error",
    "default_token_directory",
    "pausable_deadline",
    "store_of",
    "token_key",
    "track_pauses",
    "untrack_pauses",
    "waiting_for_a_person",
]

logger = logging.getLogger("trio_mcp")

#: A request extension set on every request an :class:`ObservedAuth` sends: the
#: transport's response hook leaves those to it.
OBSERVED = "trio_mcp.observed"

# The parts of a WWW-Authenticate challenge that name what the server wants.
_NAMED_PARAMETERS = ("scope", "resource_metadata", "error")
# An OAuth error code (RFC 6749 §5.2): safe to repeat.
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


def challenge_summary(challenge: str) -> str:
    """The parts of a WWW-Authenticate challenge worth naming (never a token: nor one
    that a server quotes back in them)."""
    scheme = challenge.split(None, 1)[0] if challenge.strip() else ""
    keep = [
        f'{name}="{value}"'
        for name in _NAMED_PARAMETERS
        if (value := challenge_parameter(challenge, name)) is not None
    ]
    return redact_text(" ".join([scheme, *keep])[:300])


def authorization_failed(
    server: str, description: str, *, status: int = 401, challenge: str | None = None
) -> AuthorizationError:
    """The error for a failed authorization flow of ``server``."""
    message = f"server {server!r}: authorization failed: {description}"
    if challenge:
        message += f" (it asks: {challenge_summary(challenge)})"
    return AuthorizationError(message, server=server, status=status, challenge=challenge)


def copy_authorization_error(error: AuthorizationError) -> AuthorizationError:
    """A fresh copy of ``error``, to raise in one more task (tracebacks are per raise)."""
    return AuthorizationError(str(error), server=error.server, status=error.status, challenge=error.challenge)


def _describe_flow_error(exc: BaseException, side: httpx2.Response | None) -> str:
    """What went wrong in a flow, in words that carry no secret.

    The SDK's messages put details after a colon — a token endpoint's response body,
    the expected and received ``state`` — so only the part before it is kept.
    """
    if isinstance(exc, AuthorizationError | _FlowFailed):
        return str(exc)
    text = str(exc).split(": ", 1)[0].strip()[:200]
    words = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if side is not None and side.status_code >= 400:
        code = _oauth_error_code(side)
        answer = f"HTTP {side.status_code}" + (f" {code}" if code else "")
        words += f" (the authorization server answered {answer} to {_where(side.request)})"
    return words


def _oauth_error_code(response: httpx2.Response) -> str | None:
    """The ``error`` code of an OAuth error response, if it was read and has one."""
    try:
        code = response.json().get("error")
    except (httpx2.ResponseNotRead, ValueError, AttributeError):
        return None
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else None


def _where(request: httpx2.Request) -> str:
    url = request.url
    return f"{request.method} {url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"


# True while a flow the pool drives runs its own code (in that request's task).
_in_flow: ContextVar[bool] = ContextVar("trio_mcp_in_auth_flow", default=False)


class _QuietFlowErrors(logging.Filter):
    """Keep the SDK's flow errors out of logs while the pool drives the flow.

    The SDK logs a failed flow with its traceback (``logger.exception``), whose text can
    hold the expected ``state`` or a token response's fields. The pool reports the
    failure itself, as an :class:`AuthorizationError`; here the record keeps only what
    that error would say.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _in_flow.get() and record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {_describe_flow_error(record.exc_info[1], None)}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("mcp.client.auth.oauth2").addFilter(_QuietFlowErrors())


class ObservedAuth(httpx2.Auth):
    """Runs ``inner`` for the pool's HTTP client (see the module docstring).

    ``observe`` is given the final answer to each request; ``failed`` the error of a
    flow that failed, which is then raised.
    """

    def __init__(
        self,
        inner: httpx2.Auth,
        server: str,
        observe: Callable[[httpx2.Response], Awaitable[None]],
        failed: Callable[[AuthorizationError], None],
    ) -> None:
        self._inner = inner
        self._server = server
        self._observe = observe
        self._failed = failed
        #: Set once a flow failed on a 401: this connection does not run the flow (or
        #: ask a person to log in) again; its requests go as they are, refused.
        self._refused: AuthorizationError | None = None

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise RuntimeError("the pool drives authorization flows asynchronously")

    async def async_auth_flow(  # noqa: ASYNC900 (httpx2 auth flows are async generators)
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self._refused is not None:
            self._failed(copy_authorization_error(self._refused))
            request.extensions[OBSERVED] = True
            await self._observe((yield request))
            return
        flow = self._inner.async_auth_flow(request)
        timeout = request.extensions.get("timeout")
        trigger: httpx2.Response | None = None  # the last answer to the request itself
        side: httpx2.Response | None = None  # the last answer to one of the flow's own
        response: httpx2.Response | None = None
        error: AuthorizationError | None = None
        try:
            outgoing = await self._step(flow, None)
            while True:
                outgoing.extensions[OBSERVED] = True
                if timeout is not None:
                    outgoing.extensions.setdefault("timeout", timeout)
                response = yield outgoing
                if outgoing is request:
                    trigger = response
                else:
                    side = response
                try:
                    outgoing = await self._step(flow, response)
                except StopAsyncIteration:
                    break
        except Exception as exc:
            status = trigger.status_code if trigger is not None and trigger.status_code in (401, 403) else 401
            challenge = trigger.headers.get("www-authenticate") if trigger is not None else None
            error = authorization_failed(
                self._server, _describe_flow_error(exc, side), status=status, challenge=challenge
            )
        finally:
            await flow.aclose()
        if error is not None or response is None or response.request is not request:
            # The flow failed (or ended on a request of its own). Raising here would
            # crash the transport under the session; instead the request is sent once
            # more as the flow left it, so the server's own refusal answers it, and
            # the error is left where the caller's translation finds it.
            if error is not None:
                self._failed(error)
                if error.status == 401:
                    self._refused = error
            request.extensions[OBSERVED] = True
            response = yield request
        await self._observe(response)

    @staticmethod
    async def _step(
        flow: AsyncGenerator[httpx2.Request, httpx2.Response], response: httpx2.Response | None
    ) -> httpx2.Request:
        """Run the inner flow to its next request, marked as a flow of the pool's."""
        token = _in_flow.set(True)
        try:
            return await (flow.__anext__() if response is None else flow.asend(response))
        finally:
            _in_flow.reset(token)

    @property
    def inner(self) -> httpx2.Auth:
        return self._inner


class AuthConfig:
    """Base of trio-mcp's own authorization configs: a value that makes an ``httpx2.Auth``."""

    def build(self, server: str, url: str, variables: Mapping[str, str]) -> httpx2.Auth:
        """The flow for ``server`` at ``url``; ``${name}`` fields are filled from ``variables``."""
        raise NotImplementedError


def check_auth(value: object) -> None:
    """Validate a server config's ``auth``."""
    if value is not None and not isinstance(value, httpx2.Auth | AuthConfig):
        raise ConfigError(
            "auth must be an httpx2.Auth (such as mcp.client.auth.OAuthClientProvider), "
            f"trio_mcp.OAuth or trio_mcp.ClientCredentials, got {type(value).__name__}"
        )


def build_auth(server: str, config: Any, variables: Mapping[str, str]) -> httpx2.Auth | None:
    """The ``httpx2.Auth`` a server config asks for, if any (built once per pool)."""
    auth = getattr(config, "auth", None)
    if isinstance(auth, AuthConfig):
        return auth.build(server, str(config.url), variables)
    if auth is None or isinstance(auth, httpx2.Auth):
        return auth
    raise AssertionError("unreachable: the config's validator checked it")  # pragma: no cover


# -- clocks that stop while a person logs in ---------------------------------------------

_clocks: ContextVar[tuple[_Clock, ...]] = ContextVar("trio_mcp_clocks", default=())


class HasDeadline(Protocol):
    """Anything with a settable deadline on trio's clock: a cancel scope, a pool request."""

    deadline: float


class _Clock:
    """A deadline (a cancel scope's) that stops while a person is being waited for."""

    __slots__ = ("_budget", "_pauses", "_scope")

    def __init__(self, scope: HasDeadline) -> None:
        self._scope = scope
        self._pauses = 0
        self._budget = 0.0

    def pause(self) -> None:
        if not self._pauses:
            self._budget = max(0.0, self._scope.deadline - trio.current_time())
            self._scope.deadline = math.inf
        self._pauses += 1

    def resume(self) -> None:
        self._pauses -= 1
        if not self._pauses:
            self._scope.deadline = trio.current_time() + self._budget


def track_pauses(scope: HasDeadline) -> Token[tuple[_Clock, ...]]:
    """Let a login stop ``scope``'s deadline from now on (see :func:`waiting_for_a_person`).

    The clock reaches the login through the context of the requests sent meanwhile;
    pass the token to :func:`untrack_pauses` when the scope is done.
    """
    return _clocks.set((*_clocks.get(), _Clock(scope)))


def untrack_pauses(token: Token[tuple[_Clock, ...]]) -> None:
    _clocks.reset(token)


class pausable_deadline:  # used like the trio function it stands for
    """``trio.move_on_after(seconds)``, whose clock stops while a person logs in.

    A connect or call deadline measures the server; the minutes somebody spends in a
    browser (see :func:`waiting_for_a_person`) are not the server's. The clock reaches
    the login through the context of the requests sent meanwhile.
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._scope: trio.CancelScope | None = None
        self._token: Token[tuple[_Clock, ...]] | None = None

    def __enter__(self) -> trio.CancelScope:
        self._scope = trio.CancelScope(deadline=trio.current_time() + self._seconds)
        scope = self._scope.__enter__()
        self._token = track_pauses(scope)
        return scope

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        assert self._token is not None
        assert self._scope is not None
        untrack_pauses(self._token)
        return self._scope.__exit__(exc_type, exc, tb)


@contextmanager
def waiting_for_a_person() -> Iterator[None]:
    """Stop the clocks of the requests this login serves while the block runs."""
    clocks = _clocks.get()
    for clock in clocks:
        clock.pause()
    try:
        yield
    finally:
        for clock in clocks:
            clock.resume()


# -- token stores ---------------------------------------------------------------------------


class TokenStore(Protocol):
    """Where tokens and client registrations are kept between runs, keyed by server.

    The key is the server's canonical resource URL; a record is a JSON-compatible dict
    (tokens, client registration, the issuer that granted them, when they expire).
    Records hold secrets: keep them where only their owner can read them.
    """

    async def load(self, key: str) -> dict[str, Any] | None:
        """The record for ``key``, or None."""
        ...

    async def save(self, key: str, record: dict[str, Any]) -> None:
        """Replace the record for ``key``."""
        ...

    async def delete(self, key: str) -> bool:
        """Forget the record for ``key``; whether there was one."""
        ...


@attrs.define(eq=False)
class MemoryTokenStore:
    """A :class:`TokenStore` that lasts as long as the object (nothing on disk)."""

    _records: dict[str, dict[str, Any]] = attrs.field(factory=dict, repr=False, init=False)

    async def load(self, key: str) -> dict[str, Any] | None:
        record = self._records.get(key)
        return json.loads(json.dumps(record)) if record is not None else None

    async def save(self, key: str, record: dict[str, Any]) -> None:
        self._records[key] = json.loads(json.dumps(record))

    async def delete(self, key: str) -> bool:
        return self._records.pop(key, None) is not None


def default_token_directory() -> Path:
    """Where :class:`FileTokenStore` keeps tokens unless told otherwise.

    ``$TRIO_MCP_TOKEN_DIR`` if set; else ``trio-mcp/tokens`` under the user's config
    folder (``%APPDATA%`` on Windows, ``~/Library/Application Support`` on macOS,
    ``$XDG_CONFIG_HOME`` or ``~/.config`` elsewhere).
    """
    override = os.environ.get("TRIO_MCP_TOKEN_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "trio-mcp" / "tokens"


def _file_name(key: str) -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "_", urlsplit(key).hostname or "server")[:64]
    return f"{host}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def _to_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen
class FileTokenStore:
    """A :class:`TokenStore` with one JSON file per server, readable by its owner only.

    Files are written whole (to a new file, then renamed over the old one) with mode
    0600, in a directory made with mode 0700: :func:`default_token_directory` unless
    ``directory`` says otherwise.
    """

    directory: Path | None = attrs.field(default=None, converter=_to_path)

    def path(self, key: str) -> Path:
        """The file that holds the record for ``key``."""
        return (self.directory or default_token_directory()) / _file_name(key)

    async def load(self, key: str) -> dict[str, Any] | None:
        return await trio.to_thread.run_sync(self._read, self.path(key))

    async def save(self, key: str, record: dict[str, Any]) -> None:
        await trio.to_thread.run_sync(self._write, self.path(key), record)

    async def delete(self, key: str) -> bool:
        path = self.path(key)

        def unlink() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await trio.to_thread.run_sync(unlink)

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("token file %s is unreadable (%s); logging in again", path, type(exc).__name__)
            return None
        return record if isinstance(record, dict) else None

    @staticmethod
    def _write(path: Path, record: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.name == "posix":
            os.chmod(path.parent, 0o700)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(record, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def token_key(url: str) -> str:
    """The key a server's tokens are stored under: its canonical resource URL."""
    return resource_url_from_server_url(url)


class _Credentials:
    """The SDK's ``TokenStorage`` for one provider, over a :class:`TokenStore` record.

    Besides tokens and client registration, the record keeps what the SDK holds only in
    memory but a restart needs: when the tokens expire (so an expired one is refreshed,
    not presented) and the authorization server's metadata (so the refresh goes to its
    token endpoint).
    """

    def __init__(self, store: TokenStore, key: str) -> None:
        self._store = store
        self.key = key
        self.context: OAuthContext | None = None
        self._record: dict[str, Any] | None = None

    async def record(self) -> dict[str, Any]:
        if self._record is None:
            self._record = await self._store.load(self.key) or {}
        return self._record

    async def _save(self) -> None:
        record = await self.record()
        record["resource"] = self.key
        context = self.context
        if context is not None:
            record["expires_at"] = context.token_expiry_time
            if context.auth_server_url is not None:
                record["issuer"] = context.auth_server_url
            if context.oauth_metadata is not None:
                record["oauth_metadata"] = context.oauth_metadata.model_dump(mode="json", exclude_none=True)
        await self._store.save(self.key, record)

    async def get_tokens(self) -> OAuthToken | None:
        tokens = (await self.record()).get("tokens")
        return OAuthToken.model_validate(tokens) if tokens else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        (await self.record())["tokens"] = tokens.model_dump(mode="json", exclude_none=True)
        await self._save()

    async def forget_tokens(self) -> None:
        record = await self.record()
        if record.pop("tokens", None) is not None:
            record.pop("expires_at", None)
            await self._save()

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        info = (await self.record()).get("client_info")
        return OAuthClientInformationFull.model_validate(info) if info else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        (await self.record())["client_info"] = client_info.model_dump(mode="json", exclude_none=True)
        await self._save()


# -- the person's part: open a URL, receive the redirect on 127.0.0.1 ----------------------


class _FlowFailed(Exception):
    """A failure of trio-mcp's own flow code; its message is written to be shown as is."""


_PAGE = (
    "<!doctype html><meta charset=utf-8><title>trio-mcp</title><p>{text}</p><p>You can close this window.</p>"
)
# A browser that connects and says nothing does not hold the login up for longer.
_REQUEST_TIMEOUT = 10.0
_MAX_REQUEST_HEAD = 16 * 1024


async def _answer_redirect(
    stream: trio.SocketStream, path: str, found: trio.MemorySendChannel[dict[str, str]]
) -> None:
    """Serve one HTTP request on the loopback receiver; send the redirect's parameters on."""
    async with stream:
        head = b""
        with trio.move_on_after(_REQUEST_TIMEOUT):  # noqa: ASYNC912
            while b"\r\n\r\n" not in head and len(head) < _MAX_REQUEST_HEAD:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        target = urlsplit(parts[1]) if len(parts) == 3 and parts[0] == "GET" else None
        params = {key: values[0] for key, values in parse_qs(target.query).items()} if target else {}
        if target is None or target.path != path:
            status, text = "404 Not Found", "Nothing here."
        elif "code" in params:
            status, text = "200 OK", "Logged in: trio-mcp has what it needs."
        elif "error" in params:
            status, text = "200 OK", "The login did not succeed."
        else:
            status, text = "400 Bad Request", "This is not an authorization response."
        body = _PAGE.format(text=text).encode()
        response = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
        ).encode()
        with trio.move_on_after(_REQUEST_TIMEOUT):  # noqa: ASYNC912
            try:
                await stream.send_all(response + body)
            except trio.BrokenResourceError:
                pass
        if status == "200 OK":
            try:
                found.send_nowait(params)
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass  # an answer arrived already


async def _serve_redirects(
    listener: trio.SocketListener, path: str, found: trio.MemorySendChannel[dict[str, str]]
) -> None:
    async with trio.open_nursery() as nursery:
        while True:
            stream = await listener.accept()
            nursery.start_soon(_answer_redirect, stream, path, found)


async def _open_in_browser(url: str) -> None:
    """The default ``open_url``: the user's web browser."""
    if not await trio.to_thread.run_sync(webbrowser.open, url):
        raise _FlowFailed(
            "no web browser could be opened for the login; pass OAuth(open_url=...) or log in with "
            "`trio-mcp login`"
        )


def _loopback(uri: str) -> tuple[str, int, str] | None:
    """(host, port, path) of an http loopback redirect URI, or None."""
    parts = urlsplit(uri)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        return None
    return parts.hostname, parts.port, parts.path or "/"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _OAuthProvider(OAuthClientProvider):
    """The SDK's ``OAuthClientProvider``, with trio-mcp's login, store and restart handling."""

    def __init__(self, config: OAuth, url: str, client_id: str | None, client_secret: str | None) -> None:
        self._config = config
        self._client_id = client_id
        self._client_secret = client_secret
        self._credentials = _Credentials(config.token_store or FileTokenStore(), token_key(url))
        self._authorization_url: str | None = None
        super().__init__(
            url,
            OAuthClientMetadata(
                client_name=config.client_name,
                redirect_uris=[AnyUrl(config.redirect_uri or "http://127.0.0.1/callback")],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                scope=" ".join(config.scopes) or None,
            ),
            self._credentials,
            redirect_handler=self._remember_url,
            callback_handler=self._log_in,
            client_metadata_url=config.client_metadata_url,
        )
        self._credentials.context = self.context

    async def _initialize(self) -> None:
        await super()._initialize()
        record = await self._credentials.record()
        context = self.context
        expires_at = record.get("expires_at")
        if context.current_tokens is not None and isinstance(expires_at, int | float):
            context.token_expiry_time = float(expires_at)
        metadata = record.get("oauth_metadata")
        if metadata and context.oauth_metadata is None:
            context.oauth_metadata = OAuthMetadata.model_validate(metadata)
            context.auth_server_url = context.auth_server_url or record.get("issuer")
        stored = context.client_info
        redirect = self._config.redirect_uri
        if redirect is None and stored is not None:
            redirect = next((str(u) for u in stored.redirect_uris or () if _loopback(str(u))), None)
        if redirect is None:
            redirect = f"http://127.0.0.1:{_free_port()}/callback"
        context.client_metadata.redirect_uris = [AnyUrl(redirect)]
        if self._client_id is not None and (stored is None or stored.client_id != self._client_id):
            # A pre-registered client: no registration, whatever was stored before.
            context.client_info = OAuthClientInformationFull(
                client_id=self._client_id,
                client_secret=self._client_secret,
                redirect_uris=[AnyUrl(redirect)],
                token_endpoint_auth_method="client_secret_basic" if self._client_secret else "none",
            )

    async def _handle_refresh_response(self, response: httpx2.Response) -> bool:
        refreshed = await super()._handle_refresh_response(response)
        if not refreshed:
            await self._credentials.forget_tokens()  # or the next start tries them again
        return refreshed

    async def _perform_authorization(self) -> httpx2.Request:
        if not self._config.interactive:
            raise _FlowFailed("a person must log in (interactive=False): run `trio-mcp login` first")
        configured = " ".join(self._config.scopes) or None
        self.context.client_metadata.scope = union_scopes(configured, self.context.client_metadata.scope)
        return await super()._perform_authorization()

    async def _remember_url(self, url: str) -> None:
        self._authorization_url = url

    async def _log_in(self) -> AuthorizationCodeResult:
        """Listen on the redirect URI, have the URL opened, wait for the browser's redirect."""
        url, self._authorization_url = self._authorization_url, None
        assert url is not None
        uris = self.context.client_metadata.redirect_uris
        redirect = str(uris[0]) if uris else "?"
        where = _loopback(redirect)
        if where is None:
            raise _FlowFailed(f"the redirect URI {redirect} is not an http://127.0.0.1:<port> address")
        _host, port, path = where
        try:
            listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        except OSError as exc:
            raise _FlowFailed(f"cannot receive the login on {redirect} (errno {exc.errno})") from None
        found_send, found_receive = trio.open_memory_channel[dict[str, str]](1)
        params: dict[str, str] | None = None
        try:
            with waiting_for_a_person(), trio.move_on_after(self._config.login_timeout):
                async with trio.open_nursery() as nursery:
                    for listener in listeners:
                        nursery.start_soon(_serve_redirects, listener, path, found_send)
                    opened = (self._config.open_url or _open_in_browser)(url)
                    if inspect.isawaitable(opened):
                        await opened
                    params = await found_receive.receive()
                    nursery.cancel_scope.cancel()
        finally:
            for listener in listeners:
                await listener.aclose()
        if params is None:
            raise _FlowFailed(f"nobody logged in within {self._config.login_timeout:g}s (login_timeout)")
        if "error" in params:
            code = params["error"]
            raise _FlowFailed(
                "the login was refused: the authorization server answered "
                + (code if _ERROR_CODE.match(code) else "an error")
            )
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


# -- DPoP: sender-constrained tokens (RFC 9449, SEP-1932) ------------------------------------

_FORM = "application/x-www-form-urlencoded"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _origin_of(url: httpx2.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _is_token_request(request: httpx2.Request) -> bool:
    """A request to a token endpoint (a form POST with a grant type)."""
    return (
        request.method == "POST"
        and request.headers.get("content-type", "").startswith(_FORM)
        and b"grant_type=" in request.content
    )


def _asks_for_nonce(response: httpx2.Response) -> bool:
    if response.status_code == 401:
        return challenge_parameter(response.headers.get("www-authenticate"), "error") == "use_dpop_nonce"
    if response.status_code == 400:
        try:
            return bool(response.json().get("error") == "use_dpop_nonce")
        except (ValueError, AttributeError):
            return False
    return False


class _DPoP(httpx2.Auth):
    """Binds the tokens of ``inner`` to a key of this client's (RFC 9449).

    Every token request carries a proof (so the token issued is bound to the key), and
    every request presenting a token uses the ``DPoP`` scheme with a fresh proof naming
    the token's hash. A ``use_dpop_nonce`` answer, from the authorization server or the
    MCP server, is retried once with the nonce it supplies; nonces are kept per origin.
    The key (P-256) is kept in the token store record beside the tokens it binds, so a
    restart presents them with the same key.
    """

    requires_response_body = True

    def __init__(self, inner: httpx2.Auth, credentials: _Credentials | None = None) -> None:
        self._inner = inner
        self._credentials = credentials
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._jwk: dict[str, str] = {}
        self._nonces: dict[str, str] = {}

    async def _load_key(self) -> None:
        """The key: kept with the tokens it binds (as secret as they are), else a new one."""
        record = await self._credentials.record() if self._credentials is not None else {}
        stored = record.get("dpop_key")
        key = None
        if isinstance(stored, str):
            loaded = serialization.load_pem_private_key(stored.encode(), password=None)
            key = loaded if isinstance(loaded, ec.EllipticCurvePrivateKey) else None
        if key is None:
            key = ec.generate_private_key(ec.SECP256R1())
            # Saved with the next tokens (the record is written whole).
            record["dpop_key"] = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
        numbers = key.public_key().public_numbers()
        self._jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
        self._key = key

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise RuntimeError("the pool drives authorization flows asynchronously")

    def _proof(self, request: httpx2.Request, token: str | None) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": request.method,
            "htu": str(request.url.copy_with(query=None, fragment=None)),
            "iat": int(time.time()),
        }
        nonce = self._nonces.get(_origin_of(request.url))
        if nonce is not None:
            claims["nonce"] = nonce
        if token is not None:
            claims["ath"] = _b64url(hashlib.sha256(token.encode()).digest())
        assert self._key is not None
        return pyjwt.encode(
            claims, self._key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": self._jwk}
        )

    def _prove(self, request: httpx2.Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "dpop") and token:
            request.headers["Authorization"] = f"DPoP {token}"
            request.headers["DPoP"] = self._proof(request, token)
        elif _is_token_request(request):
            request.headers["DPoP"] = self._proof(request, None)

    async def async_auth_flow(  # noqa: ASYNC900 (httpx2 auth flows are async generators)
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self._key is None:
            await self._load_key()
        flow = self._inner.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                self._prove(outgoing)
                response = yield outgoing
                await response.aread()
                nonce = response.headers.get("dpop-nonce")
                if nonce:
                    self._nonces[_origin_of(outgoing.url)] = nonce
                    if _asks_for_nonce(response):
                        self._prove(outgoing)  # a fresh proof, with the nonce
                        response = yield outgoing
                        await response.aread()
                if _is_token_request(outgoing):
                    response = _as_bearer(response)
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return
        finally:
            await flow.aclose()


def _as_bearer(response: httpx2.Response) -> httpx2.Response:
    """A DPoP token response, as the flow underneath understands it (it knows only Bearer)."""
    try:
        body = response.json()
    except ValueError:
        return response
    if not isinstance(body, dict) or str(body.get("token_type", "")).lower() != "dpop":
        return response
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")
    }
    return httpx2.Response(
        response.status_code, headers=headers, json={**body, "token_type": "Bearer"}, request=response.request
    )


# -- trio-mcp's own configs ------------------------------------------------------------------


def _bound(dpop: bool, provider: httpx2.Auth, credentials: _Credentials) -> httpx2.Auth:
    return _DPoP(provider, credentials) if dpop else provider


def _hidden(value: object) -> str:
    return "None" if value is None else "'***'"


def _to_scopes(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(value)


def _check_scopes(_inst: object, _attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    if not all(isinstance(scope, str) and scope and " " not in scope for scope in value):
        raise ConfigError("scopes must be non-empty strings without spaces")


def _optional_str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name} must be a non-empty string or None")


def _check_redirect_uri(_inst: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or _loopback(value) is None):
        raise ConfigError("redirect_uri must be an http://127.0.0.1:<port>/<path> (or localhost) URI")


def _check_metadata_url(_inst: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not is_valid_client_metadata_url(value):
        raise ConfigError("client_metadata_url must be an https:// URL with a path")


def _check_store(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not all(
        callable(getattr(value, name, None)) for name in ("load", "save", "delete")
    ):
        raise ConfigError("token_store must be a TokenStore (load, save and delete)")


def _check_seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{attribute.name} must be a positive number of seconds")


def _check_callable(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"{attribute.name} must be callable or None")


def _render(
    server: str, fields: Mapping[str, str | None], variables: Mapping[str, str]
) -> dict[str, str | None]:
    """Fields with ``${name}`` placeholders filled from the pool's variables."""
    present = {name: value for name, value in fields.items() if value is not None}
    rendered = render_templates(server, "auth field", present, variables)
    return {name: rendered.get(name) for name in fields}


@attrs.frozen
class OAuth(AuthConfig):
    """Authorization code with PKCE, for people: log in once in a browser; tokens are kept.

    On the server's first 401 the flow discovers its authorization server (protected
    resource metadata, then authorization server metadata, in every well-known layout,
    with the 2025-03-26 fallbacks), registers (a client ID metadata document if
    ``client_metadata_url`` is given and supported, else dynamic registration, unless
    ``client_id`` names a pre-registered client), opens the authorization URL with
    ``open_url`` (the web browser by default), receives the redirect on 127.0.0.1, and
    exchanges the code. Scopes are the server's choice (challenge, metadata) plus
    ``scopes``; a 403 ``insufficient_scope`` steps up. Tokens, registration and
    expiry go to ``token_store`` (a :class:`FileTokenStore` by default), so a restart
    refreshes instead of asking again.

    ``client_id`` and ``client_secret`` may hold ``${name}`` placeholders, filled from
    the pool's variables.
    """

    #: Scopes to ask for besides those the server names (e.g. ``"offline_access"``).
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_to_scopes, validator=_check_scopes)
    #: A pre-registered client (no registration is made).
    client_id: str | None = attrs.field(default=None, validator=_optional_str)
    client_secret: str | None = attrs.field(default=None, validator=_optional_str, repr=_hidden)
    #: The https URL of this client's metadata document (SEP-991), used where supported.
    client_metadata_url: str | None = attrs.field(default=None, validator=_check_metadata_url)
    client_name: str = attrs.field(default="trio-mcp", validator=_optional_str)
    #: The loopback redirect URI; by default one on a free port of 127.0.0.1, kept with
    #: the registration so later logins reuse it.
    redirect_uri: str | None = attrs.field(default=None, validator=_check_redirect_uri)
    #: Called with the authorization URL (plain or async): shows it to the person. The
    #: default opens the web browser.
    open_url: Callable[[str], Any] | None = attrs.field(default=None, validator=_check_callable)
    token_store: TokenStore | None = attrs.field(default=None, validator=_check_store)
    #: False: never ask a person; only stored (or refreshed) tokens are used.
    interactive: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    #: How long a person has to log in (seconds); connect and call deadlines stop meanwhile.
    login_timeout: float = attrs.field(default=300.0, validator=_check_seconds)
    #: Bind the tokens to a key of this client's (DPoP, RFC 9449).
    dpop: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def build(self, server: str, url: str, variables: Mapping[str, str]) -> httpx2.Auth:
        fields = _render(
            server, {"client_id": self.client_id, "client_secret": self.client_secret}, variables
        )
        provider = _OAuthProvider(self, url, fields["client_id"], fields["client_secret"])
        return _bound(self.dpop, provider, provider._credentials)


def _check_method(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in _CLIENT_METHODS:
        raise ConfigError(f"method must be one of {_CLIENT_METHODS}, got {value!r}")


_CLIENT_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


@attrs.frozen
class ClientCredentials(AuthConfig):
    """The client credentials grant, for machines: no person, no browser.

    The client authenticates to the token endpoint with ``client_secret`` (``method``
    ``"client_secret_basic"``, the default, or ``"client_secret_post"``) or with a JWT
    signed by ``private_key`` (``"private_key_jwt"``; or give ``assertion``, an async
    function of the audience returning a JWT, e.g. from workload identity). Name the
    authorization server with ``issuer`` so the credentials are only ever sent to it.
    ``client_id``, ``client_secret`` and ``private_key`` may hold ``${name}``
    placeholders, filled from the pool's variables.
    """

    client_id: str = attrs.field(validator=_optional_str)
    client_secret: str | None = attrs.field(default=None, validator=_optional_str, repr=_hidden)
    method: str = attrs.field(default="client_secret_basic", validator=_check_method)
    #: PEM private key for ``private_key_jwt``.
    private_key: str | None = attrs.field(default=None, validator=_optional_str, repr=_hidden)
    signing_algorithm: str = attrs.field(default="RS256", validator=_optional_str)
    assertion: Callable[[str], Awaitable[str]] | None = attrs.field(default=None, validator=_check_callable)
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_to_scopes, validator=_check_scopes)
    #: The authorization server's issuer identifier (strongly advised).
    issuer: str | None = attrs.field(default=None, validator=_optional_str)
    #: Where tokens are kept; in memory by default (a machine just asks again).
    token_store: TokenStore | None = attrs.field(default=None, validator=_check_store)
    #: Bind the tokens to a key of this client's (DPoP, RFC 9449).
    dpop: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.method == "private_key_jwt":
            if (self.private_key is None) == (self.assertion is None):
                raise ConfigError("private_key_jwt needs exactly one of private_key and assertion")
        elif self.client_secret is None:
            raise ConfigError(f"{self.method} needs a client_secret")

    def build(self, server: str, url: str, variables: Mapping[str, str]) -> httpx2.Auth:
        fields = _render(
            server,
            {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "private_key": self.private_key,
            },
            variables,
        )
        client_id = fields["client_id"]
        assert client_id is not None
        storage = _Credentials(self.token_store or MemoryTokenStore(), token_key(url))
        scope = " ".join(self.scopes) or None
        provider: OAuthClientProvider
        with warnings.catch_warnings():
            # Without an issuer the SDK warns (once per provider) that discovery picks
            # the authorization server; the docs say so, and advise issuer=.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            if self.method == "private_key_jwt":
                assertion = self.assertion
                if assertion is None:
                    assertion = SignedJWTParameters(
                        issuer=client_id,
                        subject=client_id,
                        signing_key=fields["private_key"] or "",
                        signing_algorithm=self.signing_algorithm,
                    ).create_assertion_provider()
                provider = PrivateKeyJWTOAuthProvider(
                    url, storage, client_id, assertion_provider=assertion, scope=scope, issuer=self.issuer
                )
            else:
                provider = ClientCredentialsOAuthProvider(
                    url,
                    storage,
                    client_id,
                    fields["client_secret"] or "",
                    token_endpoint_auth_method=self.method,  # type: ignore[arg-type]
                    scope=scope,
                    issuer=self.issuer,
                )
        storage.context = provider.context
        return _bound(self.dpop, provider, storage)


class _JwtBearerProvider(OAuthClientProvider):
    """The RFC 7523 jwt-bearer grant (workload identity federation, SEP-1933).

    Like the SDK's client credentials providers — a fixed client, no registration, no
    person — but the token request presents the workload's JWT *as the grant*.
    """

    def __init__(
        self,
        url: str,
        storage: _Credentials,
        client_id: str,
        assertion: Callable[[str], Awaitable[str]],
        scope: str | None,
        issuer: str | None,
    ) -> None:
        super().__init__(
            url,
            OAuthClientMetadata(
                redirect_uris=None,
                grant_types=[JWT_BEARER_GRANT_TYPE],
                token_endpoint_auth_method="none",
                scope=scope,
            ),
            storage,
        )
        self._assertion = assertion
        self._issuer = issuer
        self._fixed_client_info = OAuthClientInformationFull(
            redirect_uris=None,
            client_id=client_id,
            grant_types=[JWT_BEARER_GRANT_TYPE],
            token_endpoint_auth_method="none",
            scope=scope,
        )

    async def _initialize(self) -> None:
        self.context.current_tokens = await self.context.storage.get_tokens()
        self.context.client_info = self._fixed_client_info
        self._initialized = True

    def _select_authorization_server(self, advertised: list[str]) -> str:
        if self._issuer is not None:
            for server in advertised:
                if issuers_match(server, self._issuer):
                    return server
        return advertised[0]

    async def _perform_authorization(self) -> httpx2.Request:
        metadata = self.context.oauth_metadata
        if self._issuer is not None and (
            metadata is None or not issuers_match(str(metadata.issuer), self._issuer)
        ):
            raise _FlowFailed(
                f"the server's authorization server is not the configured issuer {self._issuer}"
            )
        audience = (
            str(metadata.issuer) if metadata is not None else (self._issuer or self._get_token_endpoint())
        )
        data = {
            "grant_type": JWT_BEARER_GRANT_TYPE,
            "assertion": await self._assertion(audience),
            "client_id": self._fixed_client_info.client_id,
        }
        if self.context.should_include_resource_param(self.context.protocol_version):
            data["resource"] = self.context.get_resource_url()
        if self.context.client_metadata.scope:
            data["scope"] = self.context.client_metadata.scope
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return httpx2.Request("POST", self._get_token_endpoint(), data=data, headers=headers)


def _check_assertion(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not (isinstance(value, str) and value) and not callable(value):
        raise ConfigError(
            "assertion must be a JWT (a string, may be a ${name} template) or an async function"
        )


@attrs.frozen
class WorkloadIdentity(AuthConfig):
    """The JWT-bearer grant, for workloads whose platform vouches for them (SEP-1933).

    The token request presents ``assertion`` — a JWT from the workload's identity
    provider (a cloud's metadata service, a Kubernetes service account token) — as the
    authorization grant (RFC 7523 §2.1); there is no client secret. ``assertion`` is the
    JWT itself (a string, which may be a ``${name}`` template) or an async function of
    the audience (the authorization server's issuer) returning a fresh one. A refused
    grant is reported, not retried with another.
    """

    client_id: str = attrs.field(validator=_optional_str)
    assertion: str | Callable[[str], Awaitable[str]] = attrs.field(validator=_check_assertion, repr=_hidden)
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_to_scopes, validator=_check_scopes)
    #: The authorization server's issuer identifier (strongly advised).
    issuer: str | None = attrs.field(default=None, validator=_optional_str)
    token_store: TokenStore | None = attrs.field(default=None, validator=_check_store)
    #: Bind the tokens to a key of this client's (DPoP, RFC 9449).
    dpop: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def build(self, server: str, url: str, variables: Mapping[str, str]) -> httpx2.Auth:
        static = self.assertion if isinstance(self.assertion, str) else None
        fields = _render(server, {"client_id": self.client_id, "assertion": static}, variables)
        client_id, jwt = fields["client_id"], fields["assertion"]
        assert client_id is not None
        assertion: Callable[[str], Awaitable[str]]
        if jwt is not None:
            assertion = static_assertion_provider(jwt)
        else:
            assert callable(self.assertion)
            assertion = self.assertion
        storage = _Credentials(self.token_store or MemoryTokenStore(), token_key(url))
        provider = _JwtBearerProvider(
            url, storage, client_id, assertion, " ".join(self.scopes) or None, self.issuer
        )
        storage.context = provider.context
        return _bound(self.dpop, provider, storage)


# -- config files ---------------------------------------------------------------------------

_OAUTH_KEYS = frozenset(
    {"type", "scopes", "client_id", "client_secret", "client_metadata_url", "client_name"}
    | {"redirect_uri", "interactive", "login_timeout", "token_dir", "dpop"}
)
_CLIENT_CREDENTIALS_KEYS = frozenset(
    {"type", "client_id", "client_secret", "method", "private_key", "signing_algorithm", "scopes"}
    | {"issuer", "token_dir", "dpop"}
)
_WORKLOAD_IDENTITY_KEYS = frozenset(
    {"type", "client_id", "assertion", "scopes", "issuer", "token_dir", "dpop"}
)
_AUTH_TYPES = {
    "oauth": _OAUTH_KEYS,
    "client_credentials": _CLIENT_CREDENTIALS_KEYS,
    "workload_identity": _WORKLOAD_IDENTITY_KEYS,
}


def auth_from_mapping(entry: Mapping[str, Any], placeholders: Callable[[str], str]) -> AuthConfig:
    """The ``auth`` object of a config file entry, as :class:`OAuth` or :class:`ClientCredentials`.

    ``{"type": "oauth", "scopes": [...], ...}`` or ``{"type": "client_credentials",
    "client_id": ..., "client_secret": "${env:SECRET}", ...}``: the keyword arguments of
    those classes, plus ``token_dir`` (a :class:`FileTokenStore` directory). String
    values go through ``placeholders`` (``${env:NAME}`` becomes ``${NAME}``). Unknown
    keys are errors: a misspelt credential setting must not pass silently.
    """
    if not isinstance(entry, Mapping):
        raise ConfigError("field 'auth' must be an object")
    kind = str(entry.get("type", "")).lower().replace("-", "_")
    allowed = _AUTH_TYPES.get(kind)
    if allowed is None:
        raise ConfigError("field 'auth' needs a 'type': 'oauth', 'client_credentials' or 'workload_identity'")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"field 'auth' ({kind}) does not take {', '.join(map(repr, unknown))}")
    options: dict[str, Any] = {
        key: placeholders(value) if isinstance(value, str) else value
        for key, value in entry.items()
        if key not in ("type", "token_dir")
    }
    if "token_dir" in entry:
        token_dir = entry["token_dir"]
        if not isinstance(token_dir, str):
            raise ConfigError("field 'auth.token_dir' must be a path")
        options["token_store"] = FileTokenStore(Path(token_dir).expanduser())
    if kind == "oauth":
        return OAuth(**options)
    if "client_id" not in options:
        raise ConfigError(f"a {kind} auth needs a 'client_id'")
    if kind == "workload_identity":
        if "assertion" not in options:
            raise ConfigError("a workload_identity auth needs an 'assertion' (the JWT, e.g. ${env:TOKEN})")
        return WorkloadIdentity(**options)
    return ClientCredentials(**options)


def store_of(auth: AuthConfig) -> TokenStore:
    """Where ``auth`` keeps its tokens."""
    if isinstance(auth, OAuth):
        return auth.token_store or FileTokenStore()
    if isinstance(auth, ClientCredentials | WorkloadIdentity):
        return auth.token_store or MemoryTokenStore()
    raise TypeError(type(auth).__name__)
