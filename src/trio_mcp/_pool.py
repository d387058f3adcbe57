"""The pool: many MCP servers behind one trio nursery.

``open_mcp_pool`` owns a nursery holding one supervisor task per server (see
``_server.py``); sessions open lazily, one per server, and are shared by every
caller. Requests go straight from the caller's task onto the shared session, so
the caller's cancel scopes apply to them directly; the pool adds one more cancel
scope around each request, which its server's ``call_timeout`` (kept by the server's
watchdog, see ``_server.Request``) and ``remove_server`` end.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import mcp.types as types
import trio

from ._arguments import check_meta, check_prompt_arguments, check_string_map, check_text, check_tool_arguments
from ._config import SERVER_CONFIG_TYPES, ServerConfig
from ._errors import (
    AuthorizationError,
    ConfigError,
    InvalidArgumentsError,
    MCPPoolError,
    PoolClosedError,
    ServerDisconnectedError,
    ToolCallTimeout,
    UnknownServerError,
)
from ._handlers import (
    Handlers,
    ProgressFunction,
    RootsFunction,
    check_progress_options,
    to_roots,
    watch_handlers,
)
from ._info import ServerInfo, server_info_of
from ._options import PoolOptions
from ._server import ServerSlot, ServerStatistics
from ._session import LiveSession, walk_pages
from ._skills import Skill, SkillEntry, file_uri, find_skill, list_skill_entries, read_verified, skill_from
from ._subscriptions import ResourceSubscription, open_feed
from ._telemetry import RequestSpan, Tracing
from ._translate import first_leaf, only_the_answer_was_lost, translate_call_error
from ._transport import watch_http

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["MCPPool", "ToolCall", "coerce_batch", "open_mcp_pool", "serve_mcp_pool"]

logger = logging.getLogger("trio_mcp")

T = TypeVar("T")
PageT = TypeVar("PageT", bound=types.PaginatedResult)
ItemT = TypeVar("ItemT")


@attrs.frozen
class ToolCall:
    """One call in a :meth:`MCPPool.tool_calls` batch."""

    server: str
    name: str
    arguments: Mapping[str, Any] | None = None

    @classmethod
    def coerce(cls, value: ToolCall | tuple[Any, ...]) -> ToolCall:
        """``value`` itself, or a ``(server, name[, arguments])`` tuple as a ToolCall."""
        if isinstance(value, ToolCall):
            return value
        if isinstance(value, tuple | list) and 2 <= len(value) <= 3:
            return cls(*value)
        raise InvalidArgumentsError(
            f"expected a ToolCall or a (server, name[, arguments]) tuple, not {type(value).__name__}"
            + (f" of length {len(value)}" if isinstance(value, tuple | list) else "")
        )


def coerce_batch(calls: Iterable[ToolCall | tuple[Any, ...]]) -> list[ToolCall]:
    """The entries of a :meth:`MCPPool.tool_calls` batch; nothing runs if one is malformed."""
    if isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Iterable):
        raise InvalidArgumentsError(
            f"a batch of tool calls must be an iterable of ToolCall or tuples, not {type(calls).__name__}"
        )
    batch: list[ToolCall] = []
    for index, call in enumerate(calls):
        try:
            batch.append(ToolCall.coerce(call))
        except InvalidArgumentsError as error:
            raise InvalidArgumentsError(f"batch entry {index}: {error}") from None
    return batch


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@attrs.define(eq=False, repr=False)
class MCPPool:
    """A set of MCP servers, each with one shared, lazily opened session.

    Get one from :func:`open_mcp_pool` (or :func:`serve_mcp_pool`); every method is
    safe to call from any number of trio tasks at once.
    """

    _slots: dict[str, ServerSlot]
    _validate_arguments: bool
    _state: _State = _State.OPEN
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _closing: trio.Event = attrs.field(factory=trio.Event, kw_only=True)
    #: What add_server builds new slots from, and the nursery their supervisors run in.
    _options: PoolOptions = attrs.field(factory=PoolOptions, kw_only=True)
    _nursery: trio.Nursery | None = attrs.field(default=None, kw_only=True)
    _tracing: Tracing = attrs.field(
        init=False,
        default=attrs.Factory(lambda pool: Tracing(pool._options.tracer_provider), takes_self=True),
    )

    def __repr__(self) -> str:
        return f"<MCPPool servers={list(self._slots)!r} state={self._state.value}>"

    @property
    def servers(self) -> tuple[str, ...]:
        """The names of the configured servers, in configuration order."""
        return tuple(self._slots)

    @property
    def closed(self) -> bool:
        """True once the pool has begun closing; every request then fails."""
        return self._state is not _State.OPEN

    def config(self, server: str) -> ServerConfig:
        """The configuration of ``server``."""
        return self._slot(server).config

    def close(self) -> None:
        """Begin closing: in-flight and later requests fail with :class:`PoolClosedError`.

        Synchronous and idempotent; ``open_mcp_pool``'s exit waits for the sessions
        (and stdio children) to be gone.
        """
        if self._state is _State.OPEN:
            self._state = _State.CLOSING
            self._closing.set()  # every slot sees it: it is their pool_closing
            self._scope.cancel()

    async def _run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Host every server's supervisor and sessions until :meth:`close`."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for slot in self._slots.values():
                    await nursery.start(slot.serve, nursery)
                task_status.started()
                await trio.sleep_forever()

    # -- internals ------------------------------------------------------------------

    def _slot(self, server: str) -> ServerSlot:
        if self._state is not _State.OPEN:
            raise PoolClosedError("the pool is closed", server=server if isinstance(server, str) else None)
        try:
            return self._slots[server]
        except (KeyError, TypeError):
            known = ", ".join(repr(name) for name in self._slots) or "none"
            raise UnknownServerError(
                f"no server named {server!r} in this pool (servers: {known})",
                server=server if isinstance(server, str) else None,
            ) from None

    def _request(
        self,
        server: str,
        what: str,
        operation: Callable[[LiveSession], Awaitable[T]],
        *,
        tool: str | None = None,
        prompt: str | None = None,
    ) -> Awaitable[T]:
        """Run ``operation`` on ``server``'s session under its limits and call deadline.

        Errors are translated to the pool's hierarchy at this one place. A request that
        the server turned away because it no longer knows the HTTP session (it
        restarted) was never run, so it is sent once more on a fresh session,
        transparently. That is decided from the HTTP exchange (see ``watch_http``),
        never from the words of an error message. With a tracer provider configured,
        the whole of it is one OpenTelemetry span (see ``_telemetry``). (Not itself a
        coroutine: one frame less for every resumption of every untraced call.)
        """
        slot = self._slot(server)
        tracer = self._tracing.tracer()
        if tracer is None:
            return self._request_on(slot, server, what, operation, tool=tool)
        return self._traced(tracer, slot, server, what, operation, tool, prompt)

    async def _traced(
        self,
        tracer: Tracer,
        slot: ServerSlot,
        server: str,
        what: str,
        operation: Callable[[LiveSession], Awaitable[T]],
        tool: str | None,
        prompt: str | None,
    ) -> T:
        with RequestSpan(tracer, slot, what, tool, prompt) as span:
            return span.result(await self._request_on(slot, server, what, operation, tool=tool))

    async def _request_on(
        self,
        slot: ServerSlot,
        server: str,
        what: str,
        operation: Callable[[LiveSession], Awaitable[T]],
        *,
        tool: str | None = None,
    ) -> T:
        started = time.perf_counter()
        limiter = slot.limiter
        try:
            with slot.request(what) as request:
                try:
                    # A free slot is taken without a trip through the scheduler.
                    limiter.acquire_nowait()
                except trio.WouldBlock:
                    slot.check_capacity()
                    await limiter.acquire()
                try:
                    for first_try in (True, False):
                        live = slot.live
                        if live is None or live.lost.is_set():
                            live = await slot.connected()
                        request.arm()
                        with watch_http() as http, watch_handlers() as handler_failures:
                            failure: MCPPoolError | None = None
                            try:
                                result = await operation(live)
                            except MCPPoolError:
                                raise
                            except Exception as exc:
                                if handler_failures:
                                    # It failed because one of our own handlers did: say so.
                                    failure = handler_failures[0]
                                elif first_try and http.session_rejected:
                                    # The server no longer knows this session (it restarted):
                                    # the request was not run, so a new session sends it again.
                                    live.lost.set()
                                    request.disarm()
                                    continue
                                else:
                                    failure = translate_call_error(
                                        exc,
                                        server=server,
                                        what=what,
                                        closing=self.closed,
                                        tool=tool,
                                        # Whatever failed on a session already lost (the SDK raises
                                        # RuntimeError on a client closed under us) is a lost session.
                                        lost=live.lost.is_set(),
                                        http=http,
                                    )
                                    if http.session_rejected or (
                                        # Only the answer's own stream ended: the session lives on.
                                        isinstance(failure, ServerDisconnectedError)
                                        and not only_the_answer_was_lost(exc, http)
                                    ):
                                        live.lost.set()
                                    elif isinstance(failure, AuthorizationError) and failure.status == 401:
                                        # Its credentials are dead: drop it; the next call
                                        # reconnects (and logs in) after the server's hold.
                                        slot.refused(live, failure)
                            if failure is not None:
                                # Raised outside the handler: what failed is reachable only as the
                                # translation chose (its redacted __cause__), never as an implicit
                                # __context__ (whose text, a pydantic error's, may not be redactable).
                                raise failure from failure.__cause__
                        slot.record(time.perf_counter() - started, ok=True)
                        return result
                    raise AssertionError("unreachable")  # pragma: no cover
                finally:
                    limiter.release()
        except MCPPoolError as error:
            slot.record(0.0, ok=False, timed_out=isinstance(error, ToolCallTimeout))
            raise
        except trio.Cancelled as cancelled:
            # The caller's own scope ended the request: its deadline is a timeout too.
            deadline = cancelled.source == "deadline"
            slot.record(0.0, ok=False, timed_out=deadline, cancelled=not deadline)
            raise
        except BaseExceptionGroup as group:
            # A Ctrl-C (or SystemExit) raised in a handler the SDK ran in a task group of
            # its own, during this request: the caller gets it as itself, not in a group.
            stop = group.subgroup((KeyboardInterrupt, SystemExit))
            if stop is None:
                raise
            raise first_leaf(stop) from None

    def statistics(self) -> dict[str, ServerStatistics]:
        """A frozen snapshot per server: state, in flight, waiting, counters, latency."""
        return {name: slot.statistics() for name, slot in self._slots.items()}

    # -- tools ----------------------------------------------------------------------

    async def list_tools(self, server: str) -> list[types.Tool]:
        """Every tool ``server`` offers (all pages).

        Cached per session; concurrent callers share one ``tools/list`` walk; the
        cache is dropped when the server announces that its tools changed.
        """
        return await self._request(server, "tools/list", LiveSession.list_tools)

    async def tool_call(
        self,
        server: str,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        progress: ProgressFunction | None = None,
        idle_timeout: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> types.CallToolResult:
        """Call tool ``name`` on ``server``.

        A tool that runs and fails returns a result with ``is_error`` set. An unknown
        tool raises :class:`UnknownToolError` and arguments that do not fit the tool's
        input schema raise :class:`InvalidArgumentsError`, both before anything is sent.
        The server's ``call_timeout`` applies; your own cancel scopes apply too, and
        either way the server is told to cancel the request.

        ``progress(progress, total, message)`` is called for each progress notification
        the server sends for this call, in order (an async function is awaited; a plain
        one is called in the trio thread, so keep it quick). ``idle_timeout`` (seconds)
        ends the call with :class:`ToolCallTimeout` once the server has reported no
        progress for that long — each notification restarts it, time spent in your own
        handlers does not count, and ``call_timeout`` still bounds the whole call.

        ``meta`` is sent as the request's ``_meta`` (plain JSON; keys under
        ``io.modelcontextprotocol/`` are the protocol's own and are set by the session).
        A result whose ``structuredContent`` does not match the tool's ``outputSchema``
        raises :class:`InvalidResultError`.
        """
        if not isinstance(name, str) or not name:
            raise InvalidArgumentsError("the tool name must be a non-empty string", server=server)
        check_text(server, "the tool name", name)
        check_tool_arguments(server, name, arguments)
        check_progress_options(progress, idle_timeout)
        request_meta = check_meta(server, meta)
        validate = self._validate_arguments

        def call(live: LiveSession) -> Awaitable[types.CallToolResult]:
            return live.tool_call(
                name,
                arguments,
                validate=validate,
                progress=progress,
                idle_timeout=idle_timeout,
                meta=request_meta,
            )

        return await self._request(server, f"tools/call {name!r}", call, tool=name)

    async def tool_calls(
        self, calls: Iterable[ToolCall | tuple[Any, ...]]
    ) -> list[types.CallToolResult | MCPPoolError]:
        """Run a batch of calls in parallel; results in input order.

        Each entry is the call's result or the :class:`MCPPoolError` it raised, so one
        failure never hides the others' answers. A malformed entry raises
        :class:`InvalidArgumentsError` before any call starts.
        """
        return await self._run_batch(coerce_batch(calls), math.inf)

    async def _run_batch(
        self, batch: list[ToolCall], seconds: float
    ) -> list[types.CallToolResult | MCPPoolError]:
        """Run ``batch``; a call still running after ``seconds`` becomes a ToolCallTimeout."""
        results: list[types.CallToolResult | MCPPoolError | None] = [None] * len(batch)
        deadline = trio.current_time() + seconds

        async def run(index: int, call: ToolCall) -> None:
            # tool_call checkpoints, unless it fails before sending (then nothing waits).
            with trio.move_on_at(deadline) as scope:  # noqa: ASYNC912
                try:
                    results[index] = await self.tool_call(call.server, call.name, call.arguments)
                except MCPPoolError as error:
                    results[index] = error
            if scope.cancelled_caught:
                results[index] = ToolCallTimeout(
                    f"tools/call {call.name!r} on server {call.server!r} did not finish within {seconds:g}s",
                    server=call.server if isinstance(call.server, str) else None,
                )

        async with trio.open_nursery() as nursery:
            for index, call in enumerate(batch):
                nursery.start_soon(run, index, call)
        # Every run() set its entry (a result, an error or the timeout).
        return [result for result in results if result is not None]

    # -- client-side handlers ----------------------------------------------------------

    async def set_roots(self, roots: Iterable[Any] | RootsFunction, *, server: str | None = None) -> None:
        """Offer ``roots`` (``file://`` URIs, :class:`~mcp.types.Root` values, or a function
        ``(server) -> list``) to ``server``, or to every server when ``server`` is None.

        Live 2025-era sessions that declared roots are sent
        ``notifications/roots/list_changed``; 2026-07-28 servers ask for the roots with
        each request that needs them. A server whose session was opened without any
        roots handler declared no roots capability: it sees roots from its next session
        on (give ``roots=[]`` to declare the capability from the start).
        """
        checked = to_roots(roots)
        slots = [self._slot(server)] if server is not None else [self._slot(name) for name in self._slots]
        for slot in slots:
            slot.handlers.set_roots(checked)
        for slot in slots:
            live = slot.live
            if live is not None:
                await live.roots_changed()

    # -- resources and prompts --------------------------------------------------------

    async def list_resources(self, server: str) -> list[types.Resource]:
        """Every resource ``server`` offers (all pages)."""

        return await self._listing(
            server,
            "resources/list",
            lambda live, cursor: live.client.list_resources(cursor=cursor, cache_mode="bypass"),
            lambda page: page.resources,
        )

    async def read_resource(self, server: str, uri: str) -> types.ReadResourceResult:
        """Read the resource at ``uri`` from ``server``."""
        check_text(server, "the resource URI", uri)
        return await self._request(
            server, "resources/read", lambda live: live.client.read_resource(uri, cache_mode="bypass")
        )

    async def list_prompts(self, server: str) -> list[types.Prompt]:
        """Every prompt ``server`` offers (all pages)."""

        return await self._listing(
            server,
            "prompts/list",
            lambda live, cursor: live.client.list_prompts(cursor=cursor, cache_mode="bypass"),
            lambda page: page.prompts,
        )

    async def get_prompt(
        self, server: str, name: str, arguments: Mapping[str, str] | None = None
    ) -> types.GetPromptResult:
        """Render prompt ``name`` from ``server`` with ``arguments``."""
        check_text(server, "the prompt name", name)
        check_prompt_arguments(server, name, arguments)
        args = dict(arguments) if arguments is not None else None
        return await self._request(
            server, f"prompts/get {name!r}", lambda live: live.client.get_prompt(name, args), prompt=name
        )

    async def list_resource_templates(self, server: str) -> list[types.ResourceTemplate]:
        """Every resource template (``uriTemplate``) ``server`` offers (all pages)."""

        return await self._listing(
            server,
            "resources/templates/list",
            lambda live, cursor: live.client.list_resource_templates(cursor=cursor, cache_mode="bypass"),
            lambda page: page.resource_templates,
        )

    def _listing(
        self,
        server: str,
        what: str,
        fetch: Callable[[LiveSession, str | None], Awaitable[PageT]],
        items: Callable[[PageT], list[ItemT]],
    ) -> Awaitable[list[ItemT]]:
        """Every item of a paginated listing (see ``walk_pages``), as one request."""

        async def walk(live: LiveSession) -> list[ItemT]:
            pages = await walk_pages(server, what, lambda cursor: fetch(live, cursor))
            return [item for page in pages for item in items(page)]

        return self._request(server, what, walk)

    async def complete(
        self,
        server: str,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: str,
        value: str,
        *,
        context: Mapping[str, str] | None = None,
    ) -> types.Completion:
        """Suggestions for ``argument`` of a prompt or resource template, given its ``value`` so far.

        ``ref`` is ``types.PromptReference(type="ref/prompt", name=...)`` or
        ``types.ResourceTemplateReference(type="ref/resource", uri=<template>)``;
        ``context`` holds the arguments already chosen (``completion/complete``).
        """
        if not isinstance(ref, types.PromptReference | types.ResourceTemplateReference):
            raise InvalidArgumentsError(
                "ref must be an mcp.types.PromptReference or ResourceTemplateReference", server=server
            )
        check_text(server, "the argument name", argument)
        check_text(server, "the argument value", value)
        chosen = check_string_map(server, "the completion context", context)

        async def complete(live: LiveSession) -> types.Completion:
            result = await live.client.complete(ref, {"name": argument, "value": value}, chosen)
            return result.completion

        return await self._request(server, "completion/complete", complete)

    def subscribe_resource(self, server: str, uri: str) -> ResourceSubscription:
        """Follow changes of the resource at ``uri``: ``async with`` it, then iterate updates.

        ``resources/subscribe`` on 2025-era sessions, ``subscriptions/listen`` on
        2026-07-28 ones; see :class:`ResourceSubscription`. Nothing is sent until the
        ``async with`` block is entered.
        """
        check_text(server, "the resource URI", uri)

        async def opener() -> tuple[LiveSession, Any]:
            async def subscribe(live: LiveSession) -> tuple[LiveSession, Any]:
                return live, await open_feed(live, uri)

            return await self._request(server, "resources/subscribe", subscribe)

        return ResourceSubscription(server, uri, opener, lambda: self.closed)

    async def server_info(self, server: str) -> ServerInfo:
        """What ``server`` said about itself: name, version, instructions, capabilities and
        the negotiated protocol version (connecting first if there is no session)."""
        slot = self._slot(server)
        live = slot.live
        if live is None or live.lost.is_set():
            live = await slot.connected()
        return server_info_of(server, live.client)

    # -- skills (SEP-2640) --------------------------------------------------------------

    async def list_skills(self, server: str) -> list[SkillEntry]:
        """The skills ``server`` offers (``skills/list``, all pages); no file is read.

        Raises :class:`NotSupportedError` if the server did not declare the
        ``io.modelcontextprotocol/skills`` extension.
        """
        return await self._request(server, "skills/list", list_skill_entries)

    async def read_skill(self, server: str, skill: str | SkillEntry) -> Skill:
        """Read one skill's ``SKILL.md``, verified against the server's listing.

        ``skill`` is a name, the URI of its ``SKILL.md``, or an entry from
        :meth:`list_skills` (a name or URI lists the skills first). The file's size
        and SHA-256 digest must match the listing, and its YAML frontmatter must equal
        the listed one field by field; otherwise :class:`SkillVerificationError` is
        raised and the content is dropped. Supporting files are not read (see
        :meth:`read_skill_file`).
        """

        async def read(live: LiveSession) -> Skill:
            entry = await _skill_entry(live, skill)
            return skill_from(entry, await read_verified(live, entry, entry.uri))

        return await self._request(server, "skill read", read)

    async def read_skill_file(self, server: str, skill: str | SkillEntry | Skill, path: str) -> bytes:
        """The bytes of one file of a skill (``path`` relative to the skill, or its URI),
        verified against the skill's manifest like :meth:`read_skill`.

        Only files inside the skill's directory are read, and only listed ones when the
        skill has a manifest. A ``"dynamic"`` skill has none: its files are read as they
        are, unverified.
        """
        check_text(server, "the skill file path", path)

        async def read(live: LiveSession) -> bytes:
            entry = await _skill_entry(live, skill.entry if isinstance(skill, Skill) else skill)
            return await read_verified(live, entry, file_uri(entry, path))

        return await self._request(server, "skill file read", read)

    # -- pre-warming and servers that come and go ----------------------------------------

    async def connect(self, *servers: str) -> dict[str, MCPPoolError | None]:
        """Open the sessions of ``servers`` (every server when none is named) concurrently.

        Returns ``{server: None}`` for each server now connected and ``{server: error}``
        (the :class:`MCPPoolError` a call would have raised) for each that failed — it
        never raises for those. An unknown name raises :class:`UnknownServerError`
        before anything starts. A server already connected costs nothing; each attempt
        is bounded by its ``connect_timeout``, and a failure counts towards its backoff
        and circuit like any other.
        """
        names = servers or self.servers
        slots = [self._slot(name) for name in names]
        outcomes: dict[str, MCPPoolError | None] = dict.fromkeys(names)

        async def open_one(slot: ServerSlot) -> None:
            try:
                with slot.request("connect"):
                    await slot.connected()
            except MCPPoolError as error:
                outcomes[slot.name] = error

        async with trio.open_nursery() as nursery:
            for slot in slots:
                nursery.start_soon(open_one, slot)
        return outcomes

    async def add_server(self, name: str, config: ServerConfig) -> None:
        """Serve one more server from now on, with the pool's options (it connects lazily).

        Raises :class:`ConfigError` for a bad config or a name already in the pool.
        """
        if self._state is not _State.OPEN or self._nursery is None:
            raise PoolClosedError("the pool is closed", server=name if isinstance(name, str) else None)
        slot = _new_slot(name, config, self._options, self._closing)
        if name in self._slots:
            raise ConfigError(f"the pool already has a server named {name!r}", server=name)
        await self._nursery.start(slot.serve, self._nursery)
        if name in self._slots:  # added by a concurrent caller meanwhile
            await slot.retire()
            raise ConfigError(f"the pool already has a server named {name!r}", server=name)
        self._slots[name] = slot
        logger.info("server %r: added to the pool", name)

    async def remove_server(self, name: str) -> None:
        """Stop serving ``name``: its waiting and in-flight requests fail with
        :class:`ServerRemovedError` (a :class:`PoolClosedError`), its session is closed
        by the task that owns it, and later calls raise :class:`UnknownServerError`.
        Returns once the session (and a stdio child) is gone; other servers are not
        disturbed.
        """
        slot = self._slot(name)
        del self._slots[name]
        await slot.retire()


async def _skill_entry(live: LiveSession, skill: str | SkillEntry) -> SkillEntry:
    """``skill`` itself, or the entry its name or URI picks from a fresh listing."""
    if isinstance(skill, SkillEntry):
        if skill.server != live.server:
            raise InvalidArgumentsError(
                f"skill {skill.name!r} was listed by server {skill.server!r}, not {live.server!r}",
                server=live.server,
            )
        return skill
    check_text(live.server, "the skill name", skill)
    return find_skill(live.server, await list_skill_entries(live), skill)


def _build_slots(
    servers: Mapping[str, ServerConfig], options: PoolOptions, closing: trio.Event
) -> dict[str, ServerSlot]:
    if not isinstance(servers, Mapping):
        raise ConfigError("servers must be a mapping of names to server configurations")
    slots: dict[str, ServerSlot] = {}
    for name, config in servers.items():
        slots[name] = _new_slot(name, config, options, closing)
    return slots


def _new_slot(name: object, config: object, options: PoolOptions, closing: trio.Event) -> ServerSlot:
    if not isinstance(name, str) or not name:
        raise ConfigError("server names must be non-empty strings")
    if not isinstance(config, SERVER_CONFIG_TYPES):
        raise ConfigError(
            f"server {name!r}: expected StdioServer, StreamableHttpServer, SseServer or InProcessServer, "
            f"got {type(config).__name__}"
        )
    return ServerSlot(
        name,
        config,
        options.variables,
        connect_timeout=config.connect_timeout or options.connect_timeout,
        call_timeout=config.call_timeout or options.call_timeout,
        pool_handlers=options.handlers or Handlers(),
        pool_closing=closing,
    )


@asynccontextmanager
async def open_mcp_pool(
    servers: Mapping[str, ServerConfig], options: PoolOptions | None = None, /, **settings: Any
) -> AsyncIterator[MCPPool]:
    """Open a pool of MCP servers; close every session and child process on exit.

    Args:
        servers: server name -> :class:`StdioServer`, :class:`StreamableHttpServer`,
            :class:`SseServer` or :class:`InProcessServer`.
        options: the pool-wide :class:`PoolOptions`; its fields may also be given as
            keyword arguments (``call_timeout=5``), which apply on top of it.

    Nothing connects until first use. A user exception raised in the body comes out
    unchanged; no ExceptionGroup of the pool's own leaks out.
    """
    options = PoolOptions.of(options, settings)
    closing = trio.Event()
    slots = _build_slots(servers, options, closing)
    body_error: BaseException | None = None
    pool: MCPPool | None = None
    try:
        async with trio.open_nursery() as nursery:
            pool = MCPPool(slots, options.validate_arguments, closing=closing, options=options)
            await nursery.start(pool._run)
            if options.warm:
                for name, error in (await pool.connect()).items():
                    if error is not None:
                        logger.warning("server %r: not warmed up: %s", name, error)
            try:
                yield pool
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                pool.close()
    except BaseExceptionGroup as group:
        # Our own tasks never raise, so the group holds the body's exception (itself
        # perhaps a group, from a user nursery) and Cancelled. Re-raise the body's
        # exception as it went in, as if there were no nursery.
        if body_error is not None:
            # Compared leaf by leaf: trio's cancel scopes split groups on the way out,
            # and split() copies every group it passes, so the body's group may be
            # here only as a copy; its leaves are the very objects the body raised.
            body_leaves = _leaf_ids(body_error)
            _, internal = group.split(lambda exc: id(exc) in body_leaves or isinstance(exc, trio.Cancelled))
            stop = None if internal is None else internal.subgroup((KeyboardInterrupt, SystemExit))
            if stop is not None:
                # A Ctrl-C landed in one of our tasks (a handler, say) and the body failed
                # of it: the interrupt goes on, the body's error chained to it.
                raise first_leaf(stop) from body_error
            if internal is not None:
                # Never hide the user's exception behind ours; but say that we failed too.
                logger.error("internal error while closing the pool", exc_info=internal)
            raise body_error from body_error.__cause__
        # Interrupted or cancelled while opening or closing: one of those, as itself.
        interrupted, internal = group.split((KeyboardInterrupt, trio.Cancelled))
        if internal is None and interrupted is not None:
            raise first_leaf(interrupted) from None  # a KeyboardInterrupt before any Cancelled
        raise MCPPoolError("internal error while closing the pool") from group
    finally:
        if pool is not None:
            pool._state = _State.CLOSED


def _leaf_ids(exc: BaseException) -> set[int]:
    if isinstance(exc, BaseExceptionGroup):
        return set().union(*(_leaf_ids(inner) for inner in exc.exceptions))
    return {id(exc)}


async def serve_mcp_pool(
    servers: Mapping[str, ServerConfig],
    options: PoolOptions | None = None,
    /,
    *,
    task_status: trio.TaskStatus[MCPPool] = trio.TASK_STATUS_IGNORED,
    **settings: Any,
) -> None:
    """Run a pool in a nursery you own: ``pool = await nursery.start(serve_mcp_pool, servers)``.

    Takes what :func:`open_mcp_pool` takes. The pool serves until this task is
    cancelled or ``pool.close()`` is called.
    """
    async with open_mcp_pool(servers, options, **settings) as pool:
        task_status.started(pool)
        await pool._closing.wait()
