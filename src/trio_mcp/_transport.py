"""Turning a server configuration into an SDK transport, watched for end-of-stream.

The SDK's dispatcher notices a dead transport only when somebody next sends on it.
The pool wants to know at once (to reap a crashed child and reconnect), so the read
side of every transport is wrapped in :class:`_WatchedReadStream`, which fires an
event when the stream ends. It costs one extra attribute lookup per message.

The SDK also folds every HTTP error status into one JSON-RPC error (-32603 "Server
returned an error response"). The pool needs the status itself — to say "HTTP 401"
instead, and to tell a server that no longer knows our session (it restarted) from a
server that answered the request. So the HTTP transports get a response hook that
writes what it saw into the :class:`HttpOutcome` of the request's caller: a
context variable set by :func:`watch_http`, which reaches the SDK's POST task
because the SDK runs each POST in the sending task's context.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import attrs
import httpx2
import trio
from mcp.client._transport import ReadStream, Transport, TransportStreams, WriteStream
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage
from mcp_types import ErrorData
from mcp_types.jsonrpc import JSONRPCError, JSONRPCNotification, JSONRPCResponse

from ._auth import OBSERVED, ObservedAuth
from ._config import (
    DEFAULT_MAX_MESSAGE_BYTES,
    InProcessServer,
    ServerConfig,
    SseServer,
    StdioServer,
    StreamableHttpServer,
)
from ._errors import AuthorizationError, MalformedResponseError, ServerUnavailableError
from ._redact import install_log_redaction
from ._stdio import stdio_transport

__all__ = ["HttpOutcome", "client_target", "open_transport", "watch_http"]

# Bodies of HTTP error responses are read (to tell a rejected session from a JSON-RPC
# error reply) only up to this size; larger ones are not a session rejection.
_MAX_ERROR_BODY = 64 * 1024
# Courtesy cancels queued for an SSE server at most (see _SseWriteStream).
_SSE_CANCELS_QUEUED = 1024


@attrs.define(slots=True)
class HttpOutcome:
    """What the HTTP layer saw of the requests made while it was current."""

    #: The last HTTP error status (>= 400) answered to one of them; None if none.
    status: int | None = None
    #: The server answered for a session it does not know (it restarted, or dropped
    #: it): the request was not run, and a new session may send it again.
    session_rejected: bool = False
    #: The error response's body was a JSON-RPC error reply to the request itself.
    replied: bool = False
    #: That reply's error object (the SDK's HTTP+SSE client never reads it).
    reply: dict[str, Any] | None = None
    #: The ``WWW-Authenticate`` challenge of a 401/403, if any (it names no secret).
    challenge: str | None = None
    #: The authorization flow run for one of the requests failed (see ``_auth``).
    auth_error: AuthorizationError | None = None
    #: The body of an answer broke off (a network error mid-body): the connection or the
    #: server is gone, not just that answer (see ``_translate.only_the_answer_was_lost``).
    broken: bool = False


_current_outcome: ContextVar[HttpOutcome | None] = ContextVar("trio_mcp_http_outcome", default=None)

# The id of the request a POST carried, set in that POST's own task (the SDK runs each
# in a task of its own) when its answer arrives: the answer it relays must be for it.
_posted_id: ContextVar[Any] = ContextVar("trio_mcp_posted_id", default=None)
# How httpx2 encodes the SDK's requests: the id comes second (read without parsing it all).
_POSTED_ID = re.compile(rb'\{"jsonrpc":"2\.0","id":(-?[0-9]+|"(?:[^"\\]|\\.)*")[,}]')


def _request_id(request: httpx2.Request) -> Any:
    """The id of the JSON-RPC request ``request`` posts; None if it posts none."""
    try:
        match = _POSTED_ID.match(request.content, 0, 300)
        return None if match is None else json.loads(match[1])
    except (httpx2.RequestNotRead, ValueError):
        return None


class watch_http:  # a class, not a generator: it is entered around every request
    """Collect, for the requests this task sends meanwhile, what the HTTP layer saw."""

    __slots__ = ("_token",)

    def __enter__(self) -> HttpOutcome:
        outcome = HttpOutcome()
        self._token = _current_outcome.set(outcome)
        return outcome

    def __exit__(self, *exc_info: object) -> None:
        _current_outcome.reset(self._token)


async def _reply_in(response: httpx2.Response) -> dict[str, Any] | None:
    """The JSON-RPC error an HTTP error response carries in reply to its POST's request, if any."""
    request = response.request
    if request.method != "POST" or not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        return None
    length = response.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > _MAX_ERROR_BODY:
        return None
    try:
        body = json.loads(await response.aread())
        sent_id = json.loads(request.content).get("id")
    except (ValueError, AttributeError, httpx2.StreamError):
        return None
    if isinstance(body, dict) and "error" in body and sent_id is not None and body.get("id") == sent_id:
        error = body["error"]
        return error if isinstance(error, dict) else {}
    return None


def _is_session_rejection(response: httpx2.Response, *, sse: bool, replied: bool) -> bool:
    """Whether an HTTP error answers "no such session" rather than the request itself.

    Decided from the transport alone — the status, and whether the request carried a
    session of ours — never from the words of an error message. Streamable HTTP: a
    400 or 404 to a request that carried our ``Mcp-Session-Id`` (404 is the spec's
    "session terminated"; 400 is what other SDKs answer to an unknown session), unless
    its body is a JSON-RPC error reply to this very request. SSE: the session is in the
    endpoint URL, and a 400/404 to a message POST means the server refused it unrun.
    """
    if response.status_code not in (400, 404) or replied:
        return False
    if sse:
        return response.request.method == "POST"
    return "mcp-session-id" in response.request.headers


class _WatchedBody(httpx2.AsyncByteStream):
    """A response body that notes in ``outcome`` a network error that breaks it off."""

    __slots__ = ("_inner", "_iterator", "_outcome")

    def __init__(self, inner: httpx2.AsyncByteStream, outcome: HttpOutcome) -> None:
        self._inner = inner
        self._outcome = outcome
        self._iterator: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._iterator = self._inner.__aiter__()
        return self

    async def __anext__(self) -> bytes:
        assert self._iterator is not None
        try:
            return await self._iterator.__anext__()
        except httpx2.TransportError:
            self._outcome.broken = True
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


def _observer(on_rejected: Callable[[], None], *, sse: bool) -> Callable[[httpx2.Response], Awaitable[None]]:
    """What to do with the final answer to one of the transport's requests."""

    async def observe(response: httpx2.Response) -> None:
        status = response.status_code
        method = response.request.method
        outcome = _current_outcome.get()
        if method == "POST":
            if outcome is not None and isinstance(response.stream, httpx2.AsyncByteStream):
                response.stream = _WatchedBody(response.stream, outcome)
            if status < 300 and not sse:  # Streamable HTTP: the answer comes on this POST
                _posted_id.set(_request_id(response.request))
        if status < 400 or method == "DELETE":
            return
        reply = await _reply_in(response)
        replied = reply is not None
        rejected = _is_session_rejection(response, sse=sse, replied=replied)
        if outcome is not None:
            outcome.status = status
            outcome.replied, outcome.reply = replied, reply
            outcome.session_rejected = outcome.session_rejected or rejected
            if status in (401, 403):
                outcome.challenge = response.headers.get("www-authenticate")
        # The stream that would carry answers is gone: an SSE client's message writer
        # dies on any error status, and a rejected standalone GET means the session is.
        if (sse and method == "POST") or (rejected and method == "GET"):
            on_rejected()

    return observe


def _auth_failed(error: AuthorizationError) -> None:
    outcome = _current_outcome.get()
    if outcome is not None:
        outcome.auth_error = error


def _http_client(
    name: str,
    headers: dict[str, str] | None,
    on_rejected: Callable[[], None],
    *,
    sse: bool,
    auth: httpx2.Auth | None = None,
    **kwargs: Any,
) -> httpx2.AsyncClient:
    observe = _observer(on_rejected, sse=sse)

    async def hook(response: httpx2.Response) -> None:
        # An authorization flow reports its request's final answer itself (a 401 it
        # answers with a token is no error), and its own requests are not the session's.
        if not response.request.extensions.get(OBSERVED):
            await observe(response)

    if auth is not None:
        auth = ObservedAuth(auth, name, observe, _auth_failed)
    client = create_mcp_http_client(headers=headers, auth=auth, **kwargs)
    client.event_hooks["response"].append(hook)
    return client


def _default_result_type(result: dict[str, Any]) -> None:
    """Spell out ``resultType: "complete"`` where a server left it out.

    The 2026-07-28 protocol says an absent ``resultType`` means ``"complete"``, but the
    SDK's 2026 result schemas require the field and reject such a result as malformed
    (SDK 2.3). Older revisions do not know the field: the SDK drops it from their
    results before parsing, so adding it changes nothing there.
    """
    if "resultType" not in result:
        result["resultType"] = "complete"


class _WatchedReadStream:
    """A read stream that calls ``on_end`` once, when its inner stream ends or breaks.

    An HTTP answer relayed for another request than the one its POST carried (the SDK
    passes a JSON answer on as it is) fails the POST's own request at once, instead of
    leaving it to its deadline and handing the answer to whoever owns that id.
    """

    __slots__ = ("_ended", "_inner", "_name", "_on_end", "_posts")

    def __init__(
        self,
        inner: ReadStream[SessionMessage | Exception],
        on_end: Callable[[], None],
        name: str,
        *,
        posts: bool,
    ) -> None:
        self._inner = inner
        self._on_end = on_end
        self._ended = False
        self._name = name
        # Streamable HTTP: each answer comes on the POST of its request (checked below);
        # no other transport pays for the check.
        self._posts = posts

    @property
    def last_context(self) -> Any:
        # The SDK duck-types this to restore the sender's contextvars.
        return getattr(self._inner, "last_context", None)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end()

    async def receive(self) -> SessionMessage | Exception:
        try:
            item = await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._end()
            raise
        if isinstance(item, SessionMessage) and isinstance(item.message, JSONRPCResponse | JSONRPCError):
            if self._posts:
                context = getattr(self._inner, "last_context", None)
                posted = None if context is None else context.get(_posted_id)
                if posted is not None and item.message.id != posted:
                    return self._misdirected(posted)
            if isinstance(item.message, JSONRPCResponse):
                _default_result_type(item.message.result)
        return item

    def _misdirected(self, request_id: Any) -> SessionMessage:
        error = MalformedResponseError(
            f"server {self._name!r} answered a request with the response to another one", server=self._name
        )
        data = ErrorData(code=error.code, message=str(error), data=error)  # the pool's error, carried
        return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=data))

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _resolve_command(name: str, config: StdioServer) -> str:
    """The executable to run, or a clear error if there is none (before any spawn)."""
    command = config.command
    if os.sep in command or (os.altsep and os.altsep in command):
        base = Path(config.cwd) if config.cwd is not None else Path.cwd()
        path = Path(command) if Path(command).is_absolute() else base / command
        if os.access(path, os.X_OK) and path.is_file():
            return command
    else:
        search_path = (
            config.env.get("PATH") if config.env and "PATH" in config.env else os.environ.get("PATH")
        )
        found = shutil.which(command, path=search_path)
        if found is not None:
            return found
    raise ServerUnavailableError(
        f"server {name!r}: command {command!r} was not found or is not executable",
        server=name,
    )


@asynccontextmanager
async def _streamable_http(
    name: str, url: str, headers: dict[str, str], on_rejected: Callable[[], None], auth: httpx2.Auth | None
) -> AsyncIterator[TransportStreams]:
    client = _http_client(name, headers, on_rejected, sse=False, auth=auth)
    # The SDK's own bound on one SSE event is 1 MiB: any larger answer a server streams
    # (as SDK servers do in the 2025 era) broke its stream and cost the session. Bound
    # it as a stdio message is by default; JSON answers are not bounded at all.
    streams_cm = streamable_http_client(url, http_client=client, max_sse_event_size=DEFAULT_MAX_MESSAGE_BYTES)
    async with client, streams_cm as streams:
        yield streams


def _build(
    name: str,
    config: ServerConfig,
    rendered: dict[str, str],
    lost: trio.Event,
    auth: httpx2.Auth | None,
    closing: list[Callable[[], None]] | None,
) -> Transport:
    """The SDK transport; ``rendered`` is the templated headers, or a stdio server's env."""
    assert not isinstance(config, InProcessServer)  # the SDK connects those itself
    on_rejected = lost.set  # an HTTP server that no longer knows the session
    if isinstance(config, StdioServer):
        if config.cwd is not None and not Path(config.cwd).is_dir():
            raise ServerUnavailableError(
                f"server {name!r}: working directory {str(config.cwd)!r} does not exist",
                server=name,
            )
        command = _resolve_command(name, config)
        env = rendered if config.env is not None else None
        if sys.platform == "win32":  # no process groups: the SDK's Job Objects instead
            return stdio_client(
                StdioServerParameters(command=command, args=list(config.args), env=env, cwd=config.cwd),
                errlog=config.stderr if hasattr(config.stderr, "fileno") else sys.stderr,
            )
        return stdio_transport(
            name,
            command,
            list(config.args),
            env,
            config.cwd,
            config.max_message_bytes,
            stderr=config.stderr,
            closing=closing,
        )
    if isinstance(config, SseServer):
        server_auth = auth

        def factory(
            headers: dict[str, str] | None = None,
            timeout: httpx2.Timeout | None = None,
            auth: httpx2.Auth | None = None,  # the SDK passes none: ours is the config's
        ) -> httpx2.AsyncClient:
            return _http_client(name, headers, on_rejected, sse=True, timeout=timeout, auth=server_auth)

        return sse_client(config.url, headers=rendered, httpx_client_factory=factory)
    return _streamable_http(name, config.url, rendered, on_rejected, auth)


class _SseWriteStream:
    """The SSE transport's write stream, except that nobody waits for a ``notifications/cancelled``.

    The SDK's SSE transport POSTs one message at a time, and sends the courtesy cancel of
    an abandoned request shielded, for up to 5 s: behind a POST that the server does not
    answer, a call that timed out would end that long after its deadline. Here the cancels
    are handed to the transport, in order, by a task of their own.
    """

    __slots__ = ("_cancels", "_inner", "_nursery")

    def __init__(self, inner: WriteStream[SessionMessage], nursery: trio.Nursery) -> None:
        self._inner = inner
        self._nursery = nursery
        self._cancels: collections.deque[SessionMessage] = collections.deque()

    async def send(self, item: SessionMessage) -> None:
        message = item.message
        if not isinstance(message, JSONRPCNotification) or message.method != "notifications/cancelled":
            await self._inner.send(item)
            return
        cancels = self._cancels
        if len(cancels) >= _SSE_CANCELS_QUEUED:
            return  # the server has not been reading for a long while: dropped
        if not cancels:
            try:
                self._nursery.start_soon(self._forward)
            except RuntimeError:  # the transport has closed
                raise anyio.ClosedResourceError from None
        cancels.append(item)

    async def _forward(self) -> None:
        cancels = self._cancels
        try:
            while cancels:
                await self._inner.send(cancels[0])
                cancels.popleft()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            cancels.clear()  # the transport is gone

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _SseWriteStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@asynccontextmanager
async def open_transport(
    name: str,
    config: ServerConfig,
    headers: dict[str, str],
    lost: trio.Event,
    auth: httpx2.Auth | None = None,
    closing: list[Callable[[], None]] | None = None,
) -> AsyncIterator[tuple[_WatchedReadStream, WriteStream[SessionMessage]]]:
    """Open the transport ``config`` describes; it sets ``lost`` when it stops delivering.

    ``auth`` authorizes an HTTP transport's requests (see ``_auth``). The transport may
    add to ``closing`` functions for the session to call when it begins to close.
    """
    install_log_redaction()  # again: SDK loggers may have been created since import
    async with _build(name, config, headers, lost, auth, closing) as (read_stream, write_stream):
        watched = _WatchedReadStream(
            read_stream, lost.set, name, posts=isinstance(config, StreamableHttpServer)
        )
        if not isinstance(config, SseServer):
            yield watched, write_stream
            return
        async with trio.open_nursery() as nursery:
            yield watched, _SseWriteStream(write_stream, nursery)
            nursery.cancel_scope.cancel()


def client_target(
    name: str,
    config: ServerConfig,
    rendered: dict[str, str],
    lost: trio.Event,
    auth: httpx2.Auth | None = None,
    closing: list[Callable[[], None]] | None = None,
) -> Any:
    """What ``mcp.Client`` connects to for ``config``: an in-process server object as
    it is (the SDK connects those in memory), any other a transport (see ``_build``,
    the one place that tells the server types apart)."""
    if isinstance(config, InProcessServer):
        return config.server
    return open_transport(name, config, rendered, lost, auth, closing)
