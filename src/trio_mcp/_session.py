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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar, cast

import attrs
import httpx2
import jsonschema
import mcp.types as types
import trio
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from referencing import Registry
from referencing.exceptions import Unresolvable

from ._config import ServerConfig
from ._errors import (
    InvalidArgumentsError,
    InvalidResultError,
    MalformedResponseError,
    MCPPoolError,
    ToolCallTimeout,
    UnknownToolError,
)
from ._handlers import Handlers, ProgressFunction, ServerHandlers
from ._shared import SharedOutcome
from ._subscriptions import SubscriptionHub
from ._translate import translate_connect_error
from ._transport import client_target, watch_http
from ._version import __version__

__all__ = ["LiveSession", "open_live_session", "walk_pages"]

logger = logging.getLogger("trio_mcp")
#: How this client introduces itself to servers.
CLIENT_INFO = types.Implementation(name="trio-mcp", version=__version__)

# A listing whose pages never end (each with a new cursor) cannot make us loop forever.
MAX_PAGES = 1000

_Page = TypeVar("_Page", bound=types.PaginatedResult)


async def walk_pages(server: str, what: str, fetch: Callable[[str | None], Awaitable[_Page]]) -> list[_Page]:
    """Every page of a paginated listing, refusing a cursor seen before or too many pages."""
    pages: list[_Page] = []
    seen: set[str] = set()
    cursor: str | None = None
    while len(pages) < MAX_PAGES:
        page = await fetch(cursor)
        pages.append(page)
        cursor = page.next_cursor
        if not cursor:
            return pages
        if cursor in seen:
            raise MalformedResponseError(
                f"server {server!r} answered {what} with a cursor it had already sent: "
                "the listing would never end",
                server=server,
            )
        seen.add(cursor)
    raise MalformedResponseError(
        f"server {server!r} answered {what} with more than {MAX_PAGES} pages", server=server
    )


# A dropped subscriptions/listen stream is opened again after this long (doubling).
_RELISTEN_INITIAL = 0.05
_RELISTEN_MAX = 5.0
# A listing fetched to re-check a miss is not re-checked again for this long.
_RECHECK_AFTER = 1.0


@attrs.define(eq=False)
class _ToolIndex:
    """One complete ``tools/list`` answer, indexed by name, with its argument checks.

    Everything derived from a listing lives here, so dropping the listing drops it all.
    """

    tools: tuple[types.Tool, ...]
    fetched_at: float
    #: True when this listing was fetched to re-check a miss in the one before it.
    from_recheck: bool = False
    by_name: dict[str, types.Tool] = attrs.field(init=False)
    checks: dict[str, _ArgumentCheck | None] = attrs.field(init=False, factory=dict)
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
    call_timeout: float
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
    #: The 2025-era resource subscriptions, fed from ``notifications/resources/updated``.
    subscriptions: SubscriptionHub = attrs.field(factory=SubscriptionHub)

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
        try:
            with trio.move_on_after(self.call_timeout) as scope:
                pages = await walk_pages(self.server, "tools/list", self._tools_page)
            if scope.cancelled_caught:
                raise TimeoutError("tools/list timed out")
            tools = tuple(tool for page in pages for tool in page.tools)
            index = _ToolIndex(tools, trio.current_time(), from_recheck=from_recheck)
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

    def _tools_page(self, cursor: str | None) -> Awaitable[types.ListToolsResult]:
        return self.client.list_tools(cursor=cursor, cache_mode="bypass")

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

    def _argument_check(self, index: _ToolIndex, tool: types.Tool) -> _ArgumentCheck | None:
        try:
            return index.checks[tool.name]
        except KeyError:
            pass
        schema = tool.input_schema
        check: _ArgumentCheck | None = None
        if schema:
            try:
                cls = validator_for(schema)
                check = _ArgumentCheck(schema, cls, _plain_object_check(schema, cls))
                if check.quick is None:
                    check.validator()  # a schema jsonschema cannot use is found out now
            except Exception:
                # A server with a broken schema still gets the call; it can judge.
                logger.debug("server %r: tool %r has an unusable input schema", self.server, tool.name)
                check = None
        index.checks[tool.name] = check
        return check

    async def tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        validate: bool,
        progress: ProgressFunction | None = None,
        idle_timeout: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> types.CallToolResult:
        # One private copy: validated and sent as the same object the caller cannot mutate.
        args = dict(arguments) if arguments is not None else None
        # The listing is fetched (once per generation, shared) whatever ``validate`` says:
        # the SDK needs it for output schemas and 2026-era header mirroring, and would
        # otherwise list the tools on its own, once per concurrent first call.
        try:
            tool, index = await self._lookup_tool(name)
        except (MCPError, MalformedResponseError):
            tool = index = None  # a server that cannot list tools may still call them
        if validate and index is not None:
            if tool is None:
                raise UnknownToolError(
                    f"server {self.server!r} has no tool named {name!r}", server=self.server, tool=name
                )
            check = self._argument_check(index, tool)
            if check is not None and not check.fits(args or {}):
                raise _arguments_error(self.server, name, check.validator(), args or {})
        if progress is None and idle_timeout is None:
            try:
                return await self.client.call_tool(name, args, meta=_request_meta(meta))
            except RuntimeError as exc:
                if (error := _output_error(exc, self.server, name, tool, self.lost)) is None:
                    raise
                raise error from error.__cause__
        # Asking for progress also gives a long call a way to show it is alive.
        with self.handlers.watch(progress, idle_timeout) as watch:
            with watch.scope:
                try:
                    result = await self.client.call_tool(
                        name, args, progress_callback=watch.on_progress, meta=_request_meta(meta)
                    )
                except RuntimeError as exc:
                    if (error := _output_error(exc, self.server, name, tool, self.lost)) is None:
                        raise
                    raise error from error.__cause__
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
            with trio.move_on_after(self.call_timeout):
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
        elif isinstance(message, types.ResourceUpdatedNotification) and not _modern(self.client):
            # 2026 updates arrive on each subscription's own listen stream instead.
            self.subscriptions.deliver(message.params.uri)

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
                with trio.fail_after(self.call_timeout):
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

    # -- tasks that live as long as the session -------------------------------------------

    async def start_background(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``nursery.start(fn, *args)`` in this session's nursery: the task ends with the session.

        ``fn`` must never raise after ``task_status.started()`` (that would end the session).
        """
        return await self._nursery.start(fn, *args)


def _arguments_error(
    server: str, tool: str, validator: Validator, arguments: dict[str, Any]
) -> InvalidArgumentsError:
    problems: list[str] = []
    try:
        for error in validator.iter_errors(arguments):
            problems.append(_schema_problem(error, "<arguments>"))
            if len(problems) == 5:
                break
    except Exception:
        pass  # a later rule could not be applied (see _ArgumentCheck.fits); what was found stands
    return InvalidArgumentsError(
        f"arguments for tool {tool!r} on server {server!r} do not match its input schema: "
        + "; ".join(problems),
        server=server,
    )


def _request_meta(meta: dict[str, Any] | None) -> types.RequestParamsMeta | None:
    # RequestParamsMeta is an open TypedDict: any JSON object is one.
    return cast("types.RequestParamsMeta | None", meta)


def _schema_problem(error: jsonschema.ValidationError, root: str) -> str:
    """Where a value departs from its schema, and which rule it breaks: never the value."""
    where = "/".join(str(part) for part in error.absolute_path) or root
    if error.validator in ("required", "additionalProperties"):
        # These messages name properties, never values.
        return f"{where}: {error.message}"
    return f"{where}: must satisfy {error.validator}={error.validator_value!r}"


@attrs.define(eq=False)
class _ArgumentCheck:
    """A tool's input schema, ready to judge arguments.

    ``quick``, when the schema is a plain one, proves most valid arguments valid in
    a fraction of jsonschema's time; whatever it cannot prove goes to jsonschema,
    whose validator is built (and the schema checked against its metaschema, which
    takes a millisecond) the first time it is needed.
    """

    schema: dict[str, Any]
    cls: type[Validator]
    quick: Callable[[dict[str, Any]], bool] | None
    _validator: Validator | None = None
    _unusable: bool = False

    def validator(self) -> Validator:
        if self._validator is None:
            self.cls.check_schema(self.schema)
            # An empty registry: a $ref resolves within the schema (and the bundled
            # metaschemas), never by fetching a URL the server chose.
            self._validator = self.cls(self.schema, registry=Registry())
        return self._validator

    def fits(self, arguments: dict[str, Any]) -> bool:
        """Whether ``arguments`` fit; a ``$ref`` that cannot be resolved locally judges nothing,
        and neither does a schema jsonschema cannot use, nor a rule it fails to apply (the
        server gets the call: it can judge)."""
        if self.quick is not None and self.quick(arguments):
            return True
        if self._unusable:
            return True
        try:
            validator = self.validator()
        except Exception:
            self._unusable = True
            logger.debug("an input schema is unusable; arguments go unchecked")
            return True
        try:
            return validator.is_valid(arguments)
        except Exception:
            # jsonschema could not judge: an unresolvable ``$ref``, a ``$ref`` cycle that
            # never reaches a rule (RecursionError), a huge int against a float
            # ``multipleOf`` (OverflowError).
            return True


# What a plain object schema may say: keywords that constrain nothing (annotations,
# and ``format``, which jsonschema does not assert without a format checker) and the
# few that ``_plain_object_check`` checks itself. Anything else goes to jsonschema.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "format"}
    | {"readOnly", "writeOnly"}
)
_PLAIN_OBJECT_KEYS = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties"}
_PLAIN_PROPERTY_KEYS = _ANNOTATIONS | {"type"}
# Exact Python types that certainly are each JSON type (subclasses, and floats for
# "integer", are left to jsonschema: the drafts differ on them).
_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list,),
}


def _plain_object_check(
    schema: Mapping[str, Any], cls: type[Validator]
) -> Callable[[dict[str, Any]], bool] | None:
    """A fast, sound test for arguments against a plain object schema, or None.

    Plain: ``type: object`` with ``properties`` whose schemas at most name their
    types, ``required`` names and a boolean ``additionalProperties``, under draft 4 or
    later — what nearly every tool declares. The test returning True means the
    schema accepts the arguments; False means "ask jsonschema", never "invalid".
    """
    if (
        cls is jsonschema.Draft3Validator
        or schema.get("type") != "object"
        or schema.keys() - _PLAIN_OBJECT_KEYS
    ):
        return None
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    if (
        not isinstance(properties, Mapping)
        or not isinstance(required, list)
        or not all(isinstance(name, str) for name in required)
        or not isinstance(additional, bool)
    ):
        return None
    kinds: dict[str, tuple[type, ...] | None] = {}
    for name, sub in properties.items():
        if not isinstance(sub, Mapping) or sub.keys() - _PLAIN_PROPERTY_KEYS:
            return None
        named = sub.get("type")
        if named is None:
            kinds[name] = None  # anything goes
            continue
        names = [named] if isinstance(named, str) else named
        if not isinstance(names, list) or not all(isinstance(n, str) and n in _PLAIN_TYPES for n in names):
            return None
        kinds[name] = tuple(t for n in names for t in _PLAIN_TYPES[n])
    needed = tuple(required)

    def quick(arguments: dict[str, Any]) -> bool:
        for key, value in arguments.items():
            try:
                types_ = kinds[key]
            except KeyError:
                if additional:
                    continue
                return False
            if types_ is not None and type(value) not in types_:
                return False
        return all(name in arguments for name in needed)

    return quick


def _output_error(
    exc: RuntimeError, server: str, name: str, tool: types.Tool | None, lost: trio.Event
) -> InvalidResultError | None:
    """The :class:`InvalidResultError` a ``RuntimeError`` out of ``tools/call`` stands
    for when it is the SDK's output-schema check; None for any other (raise it as is).

    The SDK checks ``structuredContent`` against the listed ``outputSchema`` and raises
    a bare ``RuntimeError``. That it is this check is told by where it was raised (the
    SDK's output-schema check, not, say, a client closed under the call); which failure
    by what it chained (a schema validation error, an unusable schema, or nothing:
    content missing) — never by its words.
    """
    if (
        type(exc) is not RuntimeError
        or tool is None
        or tool.output_schema is None
        or lost.is_set()
        or _raised_in(exc) not in _OUTPUT_CHECKS
    ):
        return None
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, jsonschema.ValidationError):
        problem = _schema_problem(cause, "<structuredContent>")
        message = f"the structured content of tool {name!r} does not match its output schema ({problem})"
    elif isinstance(cause, jsonschema.SchemaError | Unresolvable):
        message = f"tool {name!r} declares an output schema that cannot be used ({type(cause).__name__})"
    elif cause is None:
        message = f"tool {name!r} declares an output schema but returned no structured content"
    else:
        return None
    error = InvalidResultError(f"server {server!r}: {message}", server=server)
    error.__cause__ = cause
    return error


# The SDK's functions that check a tool result against its output schema.
_OUTPUT_CHECKS = frozenset({"validate_tool_result", "_output_schema_validator"})


def _raised_in(exc: BaseException) -> str | None:
    """The name of the function that raised ``exc`` (its innermost traceback frame)."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_name


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

    # What the transport asks to be told when the session begins to close.
    closing: list[Callable[[], None]] = []
    target = client_target(name, config, headers, lost, auth, closing)
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
        failure: MCPPoolError | None = None
        with watch_http() as handshake:
            try:
                await stack.enter_async_context(client)
            except Exception as exc:
                # The HTTP status of a failed handshake says more than the SDK's stand-in.
                failure = translate_connect_error(exc, name, handshake, url=config.endpoint())
        if failure is not None:
            # Raised outside the handler: the SDK's exception is reachable only as the
            # translation chose (its __cause__), never as an implicit __context__.
            raise failure from failure.__cause__
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
            for hook in closing:
                hook()
            nursery.cancel_scope.cancel()
