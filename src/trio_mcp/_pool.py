"""The pool: many MCP servers behind one trio nursery.

``open_mcp_pool`` owns a nursery holding one supervisor task per server (see
``_server.py``); sessions open lazily, one per server, and are shared by every
caller. Requests go straight from the caller's task onto the shared session, so
the caller's cancel scopes apply to them directly; the pool adds its per-server
default deadline as one more cancel scope around each request.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import mcp.types as types
import trio

from ._config import SERVER_CONFIG_TYPES, ServerConfig
from ._errors import (
    ConfigError,
    InvalidArgumentsError,
    MCPPoolError,
    PoolClosedError,
    ServerDisconnectedError,
    ToolCallTimeout,
    UnknownServerError,
)
from ._server import ServerSlot, ServerStatistics
from ._session import LiveSession, walk_pages
from ._toolset import ToolConfig, Toolset
from ._translate import is_session_expired, translate_call_error

__all__ = ["MCPPool", "ToolCall", "open_mcp_pool", "serve_mcp_pool"]

logger = logging.getLogger("trio_mcp")

T = TypeVar("T")


def _check_default_timeout(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds (or math.inf)")
    return float(value)


def _check_arguments(arguments: Any) -> None:
    if arguments is not None and not isinstance(arguments, Mapping):
        raise InvalidArgumentsError(
            f"tool arguments must be a mapping (a JSON object) or None, not {type(arguments).__name__}"
        )


@attrs.frozen
class ToolCall:
    """One call in a :meth:`MCPPool.tool_calls` batch."""

    server: str
    name: str
    arguments: Mapping[str, Any] | None = None

    @classmethod
    def coerce(cls, value: ToolCall | tuple[Any, ...]) -> ToolCall:
        if isinstance(value, ToolCall):
            return value
        return cls(*value)


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
    _tool_configs: dict[str, ToolConfig] = attrs.field(factory=dict)
    _state: _State = _State.OPEN
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

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
            for slot in self._slots.values():
                slot.closing = True
            self._scope.cancel()

    async def _run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Host every server's supervisor and sessions until :meth:`close`."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                for slot in self._slots.values():
                    await nursery.start(slot.serve, nursery)
                task_status.started()
                await trio.sleep_forever()

    def toolset(self, config: ToolConfig | str) -> Toolset:
        """The LLM tool layer for one :class:`ToolConfig` (or the alias of a registered one)."""
        if isinstance(config, str):
            try:
                config = self._tool_configs[config]
            except KeyError:
                known = ", ".join(repr(alias) for alias in self._tool_configs) or "none"
                raise ConfigError(f"no tool config with alias {config!r} (registered: {known})") from None
        elif not isinstance(config, ToolConfig):
            raise ConfigError(f"expected a ToolConfig or an alias, got {type(config).__name__}")
        else:
            _check_tool_config(config, self._slots)
        return Toolset(self, config)

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

    async def _request(
        self,
        server: str,
        what: str,
        operation: Callable[[LiveSession], Awaitable[T]],
        *,
        tool: str | None = None,
    ) -> T:
        """Run ``operation`` on ``server``'s session under its limits and call deadline.

        Errors are translated to the pool's hierarchy at this one place. A request that
        the server rejected because its HTTP session expired (it restarted) was never
        run, so it is sent once more on a fresh session, transparently.
        """
        slot = self._slot(server)
        slot.check_capacity()
        started = time.perf_counter()
        try:
            async with slot.limiter:
                for first_try in (True, False):
                    live = slot.live
                    if live is None or live.lost.is_set():
                        live = await slot.session()
                    with trio.move_on_after(slot.call_timeout):
                        try:
                            result = await operation(live)
                        except MCPPoolError:
                            raise
                        except Exception as exc:
                            if first_try and is_session_expired(exc):
                                live.lost.set()
                                continue
                            error = translate_call_error(
                                exc,
                                server=server,
                                what=what,
                                closing=self.closed,
                                tool=tool,
                                # Whatever failed on a session already lost (the SDK raises
                                # RuntimeError on a client closed under us) is a lost session.
                                lost=live.lost.is_set(),
                            )
                            if isinstance(error, ServerDisconnectedError):
                                live.lost.set()
                            raise error from error.__cause__
                        slot.record(time.perf_counter() - started, ok=True)
                        return result
                    if self.closed:
                        raise PoolClosedError(
                            f"the pool closed while {what} on server {server!r} was in flight", server=server
                        )
                    raise ToolCallTimeout(
                        f"{what} on server {server!r} did not finish within {slot.call_timeout:g}s",
                        server=server,
                    )
                raise AssertionError("unreachable")  # pragma: no cover
        except MCPPoolError as error:
            slot.record(0.0, ok=False, timed_out=isinstance(error, ToolCallTimeout))
            raise

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
        self, server: str, name: str, arguments: Mapping[str, Any] | None = None
    ) -> types.CallToolResult:
        """Call tool ``name`` on ``server``.

        A tool that runs and fails returns a result with ``is_error`` set. An unknown
        tool raises :class:`UnknownToolError` and arguments that do not fit the tool's
        input schema raise :class:`InvalidArgumentsError`, both before anything is sent.
        The server's ``call_timeout`` applies; your own cancel scopes apply too, and
        either way the server is told to cancel the request.
        """
        _check_arguments(arguments)
        if not isinstance(name, str) or not name:
            raise InvalidArgumentsError("the tool name must be a non-empty string", server=server)
        validate = self._validate_arguments

        def call(live: LiveSession) -> Awaitable[types.CallToolResult]:
            return live.call_tool(name, arguments, validate=validate)

        return await self._request(server, f"tools/call {name!r}", call, tool=name)

    async def tool_calls(
        self, calls: Iterable[ToolCall | tuple[Any, ...]]
    ) -> list[types.CallToolResult | MCPPoolError]:
        """Run a batch of calls in parallel; results in input order.

        Each entry is the call's result or the :class:`MCPPoolError` it raised, so one
        failure never hides the others' answers.
        """
        batch = [ToolCall.coerce(call) for call in calls]
        results: list[types.CallToolResult | MCPPoolError | None] = [None] * len(batch)

        async def run(index: int, call: ToolCall) -> None:
            try:
                results[index] = await self.tool_call(call.server, call.name, call.arguments)
            except MCPPoolError as error:
                results[index] = error

        async with trio.open_nursery() as nursery:
            for index, call in enumerate(batch):
                nursery.start_soon(run, index, call)
        return [result for result in results if result is not None]

    # -- resources and prompts --------------------------------------------------------

    async def list_resources(self, server: str) -> list[types.Resource]:
        """Every resource ``server`` offers (all pages)."""

        async def walk(live: LiveSession) -> list[types.Resource]:
            def fetch(cursor: str | None) -> Awaitable[types.ListResourcesResult]:
                return live.client.list_resources(cursor=cursor, cache_mode="bypass")

            pages = await walk_pages(server, "resources/list", fetch)
            return [resource for page in pages for resource in page.resources]

        return await self._request(server, "resources/list", walk)

    async def read_resource(self, server: str, uri: str) -> types.ReadResourceResult:
        """Read the resource at ``uri`` from ``server``."""
        return await self._request(
            server, "resources/read", lambda live: live.client.read_resource(uri, cache_mode="bypass")
        )

    async def list_prompts(self, server: str) -> list[types.Prompt]:
        """Every prompt ``server`` offers (all pages)."""

        async def walk(live: LiveSession) -> list[types.Prompt]:
            def fetch(cursor: str | None) -> Awaitable[types.ListPromptsResult]:
                return live.client.list_prompts(cursor=cursor, cache_mode="bypass")

            pages = await walk_pages(server, "prompts/list", fetch)
            return [prompt for page in pages for prompt in page.prompts]

        return await self._request(server, "prompts/list", walk)

    async def get_prompt(
        self, server: str, name: str, arguments: Mapping[str, str] | None = None
    ) -> types.GetPromptResult:
        """Render prompt ``name`` from ``server`` with ``arguments``."""
        _check_arguments(arguments)
        args = dict(arguments) if arguments is not None else None
        return await self._request(
            server, f"prompts/get {name!r}", lambda live: live.client.get_prompt(name, args)
        )


def _build_slots(
    servers: Mapping[str, ServerConfig],
    variables: Mapping[str, str],
    connect_timeout: float,
    call_timeout: float,
) -> dict[str, ServerSlot]:
    if not isinstance(servers, Mapping):
        raise ConfigError("servers must be a mapping of names to server configurations")
    slots: dict[str, ServerSlot] = {}
    for name, config in servers.items():
        if not isinstance(name, str) or not name:
            raise ConfigError("server names must be non-empty strings")
        if not isinstance(config, SERVER_CONFIG_TYPES):
            raise ConfigError(
                f"server {name!r}: expected StdioServer, StreamableHttpServer, SseServer or InProcessServer, "
                f"got {type(config).__name__}"
            )
        slots[name] = ServerSlot(
            name,
            config,
            variables,
            connect_timeout=config.connect_timeout or connect_timeout,
            call_timeout=config.call_timeout or call_timeout,
        )
    return slots


def _check_tool_config(config: ToolConfig, servers: Mapping[str, object]) -> None:
    for server in config.servers:
        if server not in servers:
            raise ConfigError(
                f"tool config {config.alias!r} names server {server!r}, which is not in the pool"
            )


def _register_tool_configs(
    configs: Iterable[ToolConfig], servers: Mapping[str, object]
) -> dict[str, ToolConfig]:
    registered: dict[str, ToolConfig] = {}
    for config in configs:
        if not isinstance(config, ToolConfig):
            raise ConfigError(f"tool_configs must hold ToolConfig values, got {type(config).__name__}")
        _check_tool_config(config, servers)
        if config.alias in registered:
            raise ConfigError(f"two tool configs share the alias {config.alias!r}")
        registered[config.alias] = config
    return registered


def _check_variables(variables: Mapping[str, str] | None) -> dict[str, str]:
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise ConfigError("variables must be a mapping of names to strings")
    checked: dict[str, str] = {}
    for key, value in variables.items():
        if not isinstance(key, str) or not isinstance(value, str):
            # Never echo the value: variables usually hold secrets.
            raise ConfigError(f"variable {key!r} must map a string name to a string value")
        checked[key] = value
    return checked


@asynccontextmanager
async def open_mcp_pool(
    servers: Mapping[str, ServerConfig],
    *,
    variables: Mapping[str, str] | None = None,
    connect_timeout: float = 10.0,
    call_timeout: float = 60.0,
    validate_arguments: bool = True,
    tool_configs: Iterable[ToolConfig] = (),
) -> AsyncIterator[MCPPool]:
    """Open a pool of MCP servers; close every session and child process on exit.

    Args:
        servers: server name -> :class:`StdioServer`, :class:`StreamableHttpServer`
            or :class:`SseServer`.
        variables: values for the ``${name}`` placeholders in remote servers' headers.
        connect_timeout: seconds allowed to open a session (per server unless the
            server's config overrides it).
        call_timeout: the default deadline of each request, in seconds (``math.inf``
            for none).
        validate_arguments: check tool names and arguments against the server's tool
            list before sending (one cached ``tools/list`` per session).
        tool_configs: :class:`ToolConfig` values for :meth:`MCPPool.toolset`, checked
            against ``servers`` at once.

    Nothing connects until first use. A user exception raised in the body comes out
    unchanged; no ExceptionGroup of the pool's own leaks out.
    """
    connect_timeout = _check_default_timeout("connect_timeout", connect_timeout)
    call_timeout = _check_default_timeout("call_timeout", call_timeout)
    if not isinstance(validate_arguments, bool):
        raise ConfigError("validate_arguments must be a bool")
    slots = _build_slots(servers, _check_variables(variables), connect_timeout, call_timeout)
    registered = _register_tool_configs(tool_configs, slots)
    body_error: BaseException | None = None
    pool: MCPPool | None = None
    try:
        async with trio.open_nursery() as nursery:
            pool = MCPPool(slots, validate_arguments, registered)
            await nursery.start(pool._run)
            try:
                yield pool
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                pool.close()
    except BaseExceptionGroup as group:
        # Our own tasks never raise, so the group holds the body's exception (and
        # Cancelled). Re-raise that one exception, as if there were no nursery.
        leaves = _leaves(group)
        if body_error is not None and all(
            leaf is body_error or isinstance(leaf, trio.Cancelled) for leaf in leaves
        ):
            raise body_error from body_error.__cause__
        if all(isinstance(leaf, trio.Cancelled) for leaf in leaves):
            raise leaves[0] from None
        raise MCPPoolError("internal error while closing the pool") from group
    finally:
        if pool is not None:
            pool._state = _State.CLOSED


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves


async def serve_mcp_pool(
    servers: Mapping[str, ServerConfig],
    *,
    variables: Mapping[str, str] | None = None,
    connect_timeout: float = 10.0,
    call_timeout: float = 60.0,
    validate_arguments: bool = True,
    tool_configs: Iterable[ToolConfig] = (),
    task_status: trio.TaskStatus[MCPPool] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a pool in a nursery you own: ``pool = await nursery.start(serve_mcp_pool, servers)``.

    The pool serves until this task is cancelled (or ``pool.close()`` is called).
    """
    async with open_mcp_pool(
        servers,
        variables=variables,
        connect_timeout=connect_timeout,
        call_timeout=call_timeout,
        validate_arguments=validate_arguments,
        tool_configs=tool_configs,
    ) as pool:
        task_status.started(pool)
        await trio.sleep_forever()
