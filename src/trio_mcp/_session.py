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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import mcp.types as types
import trio
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ._config import InProcessServer, ServerConfig
from ._errors import InvalidArgumentsError, MalformedResponseError, UnknownToolError
from ._transport import open_transport
from ._version import CLIENT_INFO

__all__ = ["LiveSession", "open_live_session", "walk_pages"]

logger = logging.getLogger("trio_mcp")

# A listing whose pages never end (each with a new cursor) cannot make us loop forever.
MAX_PAGES = 1000

_Page = TypeVar("_Page", types.ListToolsResult, types.ListResourcesResult, types.ListPromptsResult)


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


@attrs.define(eq=False)
class _Fetch:
    """One in-flight tools/list walk that any number of callers wait on."""

    generation: int
    done: trio.Event = attrs.field(factory=trio.Event)
    tools: list[types.Tool] | None = None
    error: BaseException | None = None


@attrs.define(eq=False)
class LiveSession:
    """A connected session to one server, with a coalescing tool-list cache."""

    server: str
    client: Client
    _nursery: trio.Nursery
    _request_timeout: float
    lost: trio.Event = attrs.field(factory=trio.Event)
    _tools: list[types.Tool] | None = None
    _by_name: dict[str, types.Tool] = attrs.field(factory=dict)
    _validators: dict[str, Validator | None] = attrs.field(factory=dict)
    _generation: int = 0
    _fetch: _Fetch | None = None
    #: Number of tools/list walks actually sent to the server (for statistics).
    list_requests: int = 0

    # -- tools/list: cached, coalesced, invalidated by list_changed ---------------

    def invalidate_tools(self) -> None:
        """Forget the cached tool list; the next caller fetches a fresh one."""
        self._generation += 1
        self._tools = None
        self._fetch = None

    async def list_tools(self) -> list[types.Tool]:
        tools = self._tools
        if tools is not None:
            return list(tools)
        fetch = self._fetch
        if fetch is None:
            fetch = self._fetch = _Fetch(self._generation)
            self._nursery.start_soon(self._walk_tool_pages, fetch)
        await fetch.done.wait()
        if fetch.error is not None:
            raise fetch.error
        assert fetch.tools is not None
        return list(fetch.tools)

    async def _walk_tool_pages(self, fetch: _Fetch) -> None:
        """Fetch every page of tools/list, in the session's nursery, for all waiters."""
        self.list_requests += 1
        try:
            with trio.move_on_after(self._request_timeout) as scope:
                pages = await walk_pages(self.server, "tools/list", self._tools_page)
            if scope.cancelled_caught:
                raise TimeoutError("tools/list timed out")
            tools = [tool for page in pages for tool in page.tools]
            fetch.tools = tools
            if fetch.generation == self._generation:
                self._tools = tools
                self._by_name = {tool.name: tool for tool in tools}
                self._validators = {}
        except Exception as exc:
            fetch.error = exc
        except BaseException:
            # The session is closing under us; waiters hear it as a lost session.
            fetch.error = trio.ClosedResourceError("the session closed during tools/list")
            raise
        finally:
            if self._fetch is fetch:
                self._fetch = None
            fetch.done.set()

    def _tools_page(self, cursor: str | None) -> Awaitable[types.ListToolsResult]:
        return self.client.list_tools(cursor=cursor, cache_mode="bypass")

    # -- tools/call ---------------------------------------------------------------

    async def _lookup_tool(self, name: str) -> types.Tool | None:
        """The tool called ``name``; a miss in a cached list is re-checked once, fresh."""
        if self._tools is None:
            await self.list_tools()
        tool = self._by_name.get(name)
        if tool is None and self._tools is not None:
            self.invalidate_tools()
            await self.list_tools()
            tool = self._by_name.get(name)
        return tool

    def _validator(self, tool: types.Tool) -> Validator | None:
        try:
            return self._validators[tool.name]
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
        self._validators[tool.name] = validator
        return validator

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, *, validate: bool
    ) -> types.CallToolResult:
        # One private copy: validated and sent as the same object the caller cannot mutate.
        args = dict(arguments) if arguments is not None else None
        if validate:
            try:
                tool = await self._lookup_tool(name)
            except (MCPError, MalformedResponseError):
                tool = None  # a server that cannot list tools may still call them
            else:
                if tool is None:
                    raise UnknownToolError(
                        f"server {self.server!r} has no tool named {name!r}", server=self.server, tool=name
                    )
            if tool is not None:
                validator = self._validator(tool)
                if validator is not None and not validator.is_valid(args or {}):
                    raise _arguments_error(self.server, name, validator, args or {})
        return await self.client.call_tool(name, args)

    # -- list_changed ---------------------------------------------------------------

    async def on_message(self, message: Any) -> None:
        """The SDK's message handler: a legacy-era ``tools/list_changed`` drops the cache."""
        if isinstance(message, types.ToolListChangedNotification):
            self.invalidate_tools()

    async def listen_for_changes(self, task_status: trio.TaskStatus[None]) -> None:
        """On a 2026-era session, hold a ``subscriptions/listen`` stream for tool changes."""
        try:
            with trio.fail_after(self._request_timeout):
                subscription_cm = self.client.listen(tools_list_changed=True)
                subscription = await subscription_cm.__aenter__()
        except Exception:
            logger.debug("server %r: no tools list_changed subscription", self.server, exc_info=True)
            task_status.started()
            return
        try:
            task_status.started()
            async for _event in subscription:
                self.invalidate_tools()
        except Exception:
            logger.debug("server %r: list_changed subscription ended", self.server, exc_info=True)
        finally:
            with trio.CancelScope(shield=True):
                await subscription_cm.__aexit__(None, None, None)


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


@asynccontextmanager
async def open_live_session(
    name: str, config: ServerConfig, headers: dict[str, str], request_timeout: float
) -> AsyncIterator[LiveSession]:
    """Connect, negotiate, subscribe to tool changes; close everything on exit.

    Must be entered and exited by the same task.
    """
    lost = trio.Event()
    handler: list[LiveSession] = []

    async def message_handler(message: Any) -> None:
        if handler:
            await handler[0].on_message(message)

    target: Any = (
        config.server
        if isinstance(config, InProcessServer)
        else open_transport(name, config, headers, lost.set)
    )
    client = Client(
        target,
        mode=config.mode,
        message_handler=message_handler,
        client_info=CLIENT_INFO,
        # The pool keeps its own coalesced tool cache, invalidated by list_changed.
        cache=None,
    )
    async with client, trio.open_nursery() as nursery:
        live = LiveSession(name, client, nursery, request_timeout, lost=lost)
        handler.append(live)
        capabilities = client.server_capabilities
        if _modern(client) and capabilities.tools is not None and capabilities.tools.list_changed:
            await nursery.start(live.listen_for_changes)
        try:
            yield live
        finally:
            nursery.cancel_scope.cancel()
