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

import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from typing import Any

import httpx2

from ._errors import AuthorizationError, ConfigError, challenge_parameter

__all__ = [
    "OBSERVED",
    "AuthConfig",
    "ObservedAuth",
    "authorization_failed",
    "build_auth",
    "challenge_summary",
    "check_auth",
    "copy_authorization_error",
]

#: A request extension set on every request an :class:`ObservedAuth` sends: the
#: transport's response hook leaves those to it.
OBSERVED = "trio_mcp.observed"

# The parts of a WWW-Authenticate challenge that name what the server wants.
_NAMED_PARAMETERS = ("scope", "resource_metadata", "error")
# An OAuth error code (RFC 6749 §5.2): safe to repeat.
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


def challenge_summary(challenge: str) -> str:
    """The parts of a WWW-Authenticate challenge worth naming (never a token)."""
    scheme = challenge.split(None, 1)[0] if challenge.strip() else ""
    keep = [
        f'{name}="{value}"'
        for name in _NAMED_PARAMETERS
        if (value := challenge_parameter(challenge, name)) is not None
    ]
    return " ".join([scheme, *keep])[:300]


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
    if isinstance(exc, AuthorizationError):
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
            outgoing = await flow.__anext__()
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
                    outgoing = await flow.asend(response)
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
