"""One live MCP session: the SDK client, its tool cache, and how it reports its own death.

A :class:`LiveSession` is entered and exited by exactly one owner task (the SDK's
``ClientSession`` holds an anyio task group from enter to exit). Requests, however,
are made straight from the callers' own tasks: the SDK's session correlates
concurrent requests itself, so a call costs no hand-off to another task, and the
caller's cancel scope *is* the request's cancel scope — cancelling it sends
``notifications/cancelled`` to the server, as the SDK does for any abandoned request.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import httpx2
import mcp.types as types
import trio
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ._config import InProcessServer, ServerConfig
from ._errors import InvalidArgumentsError, ToolCallTimeout, UnknownToolError
from ._handlers import Handlers, ProgressFunction, ServerHandlers
from ._shared import SharedOutcome
from ._translate import translate_connect_error
from ._transport import open_transport, watch_http
from ._version import CLIENT_INFO

__all__ = ["LiveSession", "open_live_session"]

logger = logging.getLogger("trio_mcp")

# A server whose tools/list never ends cannot make us loop forever.
_MAX_TOOL_PAGES = 1000
# A dropped subscriptions/listen stream is opened again after this long (doubling).
_RELISTEN_INITIAL = 0.05
_RELISTEN_MAX = 5.0
# A listing fetched to re-check a miss is not re-checked again for this long.
_RECHECK_AFTER = 1.0


@attrs.define(eq=False)
class _ToolIndex:
    """One complete ``tools/list`` answer, indexed by name, with its argument validators.

    Everything derived from a listing lives here, so dropping the listing drops it all.
    """

    tools: tuple[types.Tool, ...]
    fetched_at: float
    #: True when this listing was fetched to re-check a miss in the one before it.
    from_recheck: bool = False
    by_name: dict[str, types.Tool] = attrs.field(init=False)
    validators: dict[str, Validator | None] = attrs.field(init=False, factory=dict)
    #: The one re-check a miss in this listing may trigger (shared by every missing caller).
    recheck: SharedOutcome[_ToolIndex] | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.by_name = {tool.name: tool for tool in self.tools}

    def may_recheck(self, now: float) -> bool:
        """Whether a miss here may ask the server again: once per listing, never in a burst."""
        if self.recheck is not None:
            return True  # join (or reuse) the one re-check already made
        return not self.from_recheck or now - self.fetched_at >= _RECHECK_AFTER


@attrs.define(eq=False)
class LiveSession:
    """A connected session to one server, with a coalescing tool-list cache."""

    server: str
    client: Client
    _nursery: trio.Nursery
    _request_timeout: float
    handlers: ServerHandlers
    lost: trio.Event = attrs.field(factory=trio.Event)
    #: Whether this session declared the roots capability (so roots changes are announced).
    roots_declared: bool = False
    #: The listing of the current generation, once fetched; None until then.
    _tools: _ToolIndex | None = None
    #: Bumped whenever the server says its tools changed: older walks are not cached.
    _generation: int = 0
    #: The walk in flight for the current generation, shared by every caller.
    _fetch: SharedOutcome[_ToolIndex] | None = None
    #: Number of tools/list walks actually sent to the server (for statistics).
    list_requests: int = 0

    # -- tools/list: cached, coalesced, invalidated by list_changed ---------------

    def invalidate_tools(self) -> None:
        """Forget the cached tool list; the next caller fetches a fresh one."""
        self._generation += 1
        self._tools = None
        self._fetch = None

    async def list_tools(self) -> list[types.Tool]:
        index, _fresh = await self._tool_index()
        return list(index.tools)

    async def _tool_index(self) -> tuple[_ToolIndex, bool]:
        """The current listing, and whether it was fetched for this very request.

        A walk that a ``list_changed`` overtook still answers the callers who asked
        before the change (it is a true answer to their request) but is not cached.
        """
        index = self._tools
        if index is not None:
            return index, False
        fetch = self._fetch
        if fetch is None:
            fetch = self._fetch = SharedOutcome()
            self._nursery.start_soon(self._walk_tool_pages, fetch, self._generation, False)
        return await fetch.wait(), True

    async def _walk_tool_pages(
        self, outcome: SharedOutcome[_ToolIndex], generation: int, from_recheck: bool
    ) -> None:
        """Fetch every page of tools/list, in the session's nursery, for all waiters."""
        self.list_requests += 1
        try:
            tools: list[types.Tool] = []
            cursor: str | None = None
            # Every page is a request, and so a checkpoint.
            with trio.move_on_after(self._request_timeout) as scope:  # noqa: ASYNC912
                for _ in range(_MAX_TOOL_PAGES):
                    page = await self.client.list_tools(cursor=cursor, cache_mode="bypass")
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
            if scope.cancelled_caught:
                raise TimeoutError("tools/list timed out")
            index = _ToolIndex(tuple(tools), trio.current_time(), from_recheck=from_recheck)
            if generation == self._generation:
                self._tools = index
            outcome.set(index)
        except Exception as exc:
            outcome.fail(exc)
        except BaseException:
            # The session is closing under us; waiters hear it as a lost session.
            outcome.fail(trio.ClosedResourceError("the session closed during tools/list"))
            raise
        finally:
            if self._fetch is outcome:
                self._fetch = None

    # -- tools/call ---------------------------------------------------------------

    async def _lookup_tool(self, name: str) -> tuple[types.Tool | None, _ToolIndex]:
        """The tool called ``name`` in the listing this lookup used.

        A miss in a listing fetched for this very call is final. A miss in a cached
        listing asks the server once more — at most once per listing, however many
        callers miss at the same time, and without dropping the listing for others.
        """
        index, fresh = await self._tool_index()
        tool = index.by_name.get(name)
        if tool is not None or fresh or not index.may_recheck(trio.current_time()):
            return tool, index
        recheck = index.recheck
        if recheck is None or recheck.error is not None:
            recheck = index.recheck = SharedOutcome()
            self._nursery.start_soon(self._walk_tool_pages, recheck, self._generation, True)
        index = await recheck.wait()
        return index.by_name.get(name), index

    def _validator(self, index: _ToolIndex, tool: types.Tool) -> Validator | None:
        try:
            return index.validators[tool.name]
        except KeyError:
            pass
        schema = tool.input_schema
        validator: Validator | None = None
        if schema:
            try:
                cls = validator_for(schema)
                cls.check_schema(schema)
                validator = cls(schema)
            except Exception:
                # A server with a broken schema still gets the call; it can judge.
                logger.debug("server %r: tool %r has an unusable input schema", self.server, tool.name)
        index.validators[tool.name] = validator
        return validator

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        validate: bool,
        progress: ProgressFunction | None = None,
        idle_timeout: float | None = None,
    ) -> types.CallToolResult:
        # One private copy: validated and sent as the same object the caller cannot mutate.
        args = dict(arguments) if arguments is not None else None
        # The listing is fetched (once per generation, shared) whatever ``validate`` says:
        # the SDK needs it for output schemas and 2026-era header mirroring, and would
        # otherwise list the tools on its own, once per concurrent first call.
        try:
            tool, index = await self._lookup_tool(name)
        except MCPError:
            tool = index = None  # a server that cannot list tools may still call them
        if validate and index is not None:
            if tool is None:
                raise UnknownToolError(
                    f"server {self.server!r} has no tool named {name!r}", server=self.server, tool=name
                )
            validator = self._validator(index, tool)
            if validator is not None and not validator.is_valid(args or {}):
                raise _arguments_error(self.server, name, validator, args or {})
        if progress is None and idle_timeout is None:
            return await self.client.call_tool(name, args)
        # Asking for progress also gives a long call a way to show it is alive.
        with self.handlers.watch(progress, idle_timeout) as watch:
            with watch.scope:
                result = await self.client.call_tool(name, args, progress_callback=watch.on_progress)
            if not watch.scope.cancelled_caught:
                # Progress reported before the answer reaches ``progress`` before the answer.
                await watch.settle()
                return result
        raise ToolCallTimeout(
            f"tools/call {name!r} on server {self.server!r} reported no progress for "
            f"{idle_timeout:g}s (idle_timeout)",
            server=self.server,
        )

    # -- roots ----------------------------------------------------------------------

    async def roots_changed(self) -> None:
        """Tell the server its roots changed, where the protocol has that notification.

        Only 2025-era sessions that declared roots have it; 2026-07-28 servers ask for
        the roots with each request that needs them, so they always get the current ones.
        """
        if not self.roots_declared or _modern(self.client) or self.lost.is_set():
            return
        try:
            with trio.move_on_after(self._request_timeout):
                await self.client.session.send_notification(types.RootsListChangedNotification())
        except Exception:
            logger.debug("server %r: could not send roots/list_changed", self.server, exc_info=True)

    # -- health ---------------------------------------------------------------------

    async def probe(self) -> None:
        """Ask the server something cheap that the negotiated protocol has.

        ``ping`` is gone from 2026-07-28 on; there ``server/discover`` at the session's
        own version is the stateless equivalent.
        """
        version = self.client.protocol_version
        if version in MODERN_PROTOCOL_VERSIONS:
            await self.client.session.send_discover(version)
        else:
            await self.client.session.send_ping()

    # -- list_changed ---------------------------------------------------------------

    async def on_message(self, message: Any) -> None:
        """The SDK's message handler: a legacy-era ``tools/list_changed`` drops the cache."""
        if isinstance(message, types.ToolListChangedNotification):
            self.invalidate_tools()

    async def listen_for_changes(self, task_status: trio.TaskStatus[None]) -> None:
        """On a 2026-era session, hold a ``subscriptions/listen`` stream for tool changes.

        The stream can drop while the session lives on (a stateless HTTP server
        restarts, a proxy cuts a long response): then the cached listing may miss a
        change, so it is dropped, and the stream is opened again, with backoff, for as
        long as the session lives. A server that refuses the first listen is not asked
        again.
        """
        delay = _RELISTEN_INITIAL
        started = False
        while True:
            try:
                with trio.fail_after(self._request_timeout):
                    subscription_cm = self.client.listen(tools_list_changed=True)
                    subscription = await subscription_cm.__aenter__()
            except Exception:
                if not started:
                    logger.debug("server %r: no tools list_changed subscription", self.server, exc_info=True)
                    task_status.started()
                    return
                logger.debug("server %r: could not listen again for list changes", self.server, exc_info=True)
            else:
                if started:
                    self.invalidate_tools()  # whatever changed while we were not listening
                else:
                    task_status.started()
                    started = True
                try:
                    async for _event in subscription:
                        delay = _RELISTEN_INITIAL
                        self.invalidate_tools()
                except Exception:
                    logger.debug("server %r: list_changed subscription ended", self.server, exc_info=True)
                finally:
                    with trio.CancelScope(shield=True):
                        await subscription_cm.__aexit__(None, None, None)
                self.invalidate_tools()
            await trio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _RELISTEN_MAX)


def _arguments_error(
    server: str, tool: str, validator: Validator, arguments: dict[str, Any]
) -> InvalidArgumentsError:
    problems: list[str] = []
    for error in validator.iter_errors(arguments):
        where = "/".join(str(part) for part in error.absolute_path) or "<arguments>"
        if error.validator in ("required", "additionalProperties"):
            # These messages name properties, never argument values.
            problems.append(f"{where}: {error.message}")
        else:
            problems.append(f"{where}: must satisfy {error.validator}={error.validator_value!r}")
        if len(problems) == 5:
            break
    return InvalidArgumentsError(
        f"arguments for tool {tool!r} on server {server!r} do not match its input schema: "
        + "; ".join(problems),
        server=server,
    )


def _modern(client: Client) -> bool:
    return client.protocol_version in MODERN_PROTOCOL_VERSIONS


async def _set_log_level(client: Client, server: str, level: types.LoggingLevel) -> None:
    """Ask a 2025-era server for log messages from ``level`` up (``logging/setLevel``)."""
    try:
        await client.session.send_request(
            types.SetLevelRequest(params=types.SetLevelRequestParams(level=level)), types.EmptyResult
        )
    except Exception:
        logger.debug("server %r: logging/setLevel failed", server, exc_info=True)


@asynccontextmanager
async def open_live_session(
    name: str,
    config: ServerConfig,
    headers: dict[str, str],
    request_timeout: float,
    handlers: ServerHandlers | None = None,
    auth: httpx2.Auth | None = None,
) -> AsyncIterator[LiveSession]:
    """Connect, negotiate, subscribe to tool changes; close everything on exit.

    ``auth`` authorizes an HTTP server's requests. Must be entered and exited by the same task.
    """
    if handlers is None:
        handlers = ServerHandlers(name, Handlers(), request_timeout)
    options = handlers.client_options()
    lost = trio.Event()
    handler: list[LiveSession] = []

    async def message_handler(message: Any) -> None:
        if handler:
            await handler[0].on_message(message)

    target: Any = (
        config.server
        if isinstance(config, InProcessServer)
        else open_transport(name, config, headers, lost.set, auth)
    )
    client = Client(
        target,
        mode=config.mode,
        message_handler=message_handler,
        client_info=CLIENT_INFO,
        # The pool keeps its own coalesced tool cache, invalidated by list_changed.
        cache=None,
        **options,
    )
    async with AsyncExitStack() as stack:
        with watch_http() as handshake:
            try:
                await stack.enter_async_context(client)
            except Exception as exc:
                # The HTTP status of a failed handshake says more than the SDK's stand-in.
                error = translate_connect_error(exc, name, handshake)
                raise error from error.__cause__
        nursery = await stack.enter_async_context(trio.open_nursery())
        live = LiveSession(
            name,
            client,
            nursery,
            request_timeout,
            handlers,
            lost=lost,
            roots_declared="list_roots_callback" in options,
        )
        handler.append(live)
        capabilities = client.server_capabilities
        level = handlers.handlers.log_level
        if level is not None and not _modern(client) and capabilities.logging is not None:
            with trio.move_on_after(request_timeout):
                await _set_log_level(client, name, level)
        if _modern(client) and capabilities.tools is not None and capabilities.tools.list_changed:
            await nursery.start(live.listen_for_changes)
        try:
            yield live
        finally:
            nursery.cancel_scope.cancel()
