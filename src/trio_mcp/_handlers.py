"""Client-side handlers: how a server's own requests and notifications are answered.

A server may ask its client for an LLM completion (``sampling/createMessage``), ask
the user a question (``elicitation/create``), ask for the client's roots
(``roots/list``), send log messages and report progress. :class:`Handlers` says who
answers; :class:`ServerHandlers` adapts one server's handlers to the SDK's callbacks.

Each handler may be a plain function, run in a worker thread (so blocking code — a
prompt on a terminal, a dialog in a GUI toolkit — works, and a cancelled request
abandons the thread rather than waiting for it), or an async function, run in trio.
Whatever a handler does — raise, hang past the server's ``call_timeout``, return the
wrong type — the server receives a JSON-RPC error naming the failure, the caller of
the request that triggered it (where the pool can tell) a :class:`HandlerError`, and
the session lives on. Capabilities are declared only for the handlers given.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeAlias, TypeVar, cast, get_args

import attrs
import mcp.types as types
import trio
from mcp.client.session import ClientRequestContext
from pydantic import ValidationError

from ._errors import ConfigError, HandlerError

__all__ = [
    "ElicitationHandler",
    "Handlers",
    "LoggingHandler",
    "ProgressFunction",
    "ProgressWatch",
    "RootsFunction",
    "SamplingHandler",
    "ServerHandlers",
    "accept_with_defaults",
    "check_handlers",
    "check_progress_options",
    "is_async_function",
    "to_roots",
    "watch_handlers",
]

logger = logging.getLogger("trio_mcp")

T = TypeVar("T")

SamplingAnswer: TypeAlias = types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData
ElicitationAnswer: TypeAlias = types.ElicitResult | types.ErrorData
RootsList: TypeAlias = Iterable[types.Root | str]

#: ``(server, params) -> CreateMessageResult | CreateMessageResultWithTools | ErrorData``
SamplingHandler: TypeAlias = Callable[
    [str, types.CreateMessageRequestParams], SamplingAnswer | Awaitable[SamplingAnswer]
]
#: ``(server, params) -> ElicitResult | ErrorData``; ``params`` is form or URL mode.
ElicitationHandler: TypeAlias = Callable[
    [str, types.ElicitRequestParams], ElicitationAnswer | Awaitable[ElicitationAnswer]
]
#: ``(server) -> list of Root or URI strings``
RootsFunction: TypeAlias = Callable[[str], RootsList | Awaitable[RootsList]]
#: ``(server, params) -> None``
LoggingHandler: TypeAlias = Callable[[str, types.LoggingMessageNotificationParams], Awaitable[None] | None]
#: ``(progress, total, message) -> None``
ProgressFunction: TypeAlias = Callable[[float, float | None, str | None], Awaitable[None] | None]

_LOG_LEVELS: tuple[str, ...] = get_args(types.LoggingLevel)
# MCP's syslog levels onto Python's (Python has no notice, alert or emergency).
_PYTHON_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


def is_async_function(fn: object) -> bool:
    """Whether calling ``fn`` gives a coroutine (async functions, partials of them, async ``__call__``)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or (callable(fn) and inspect.iscoroutinefunction(fn.__call__))


async def _run_user(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a user's handler: async ones in trio, plain ones in a worker thread.

    A cancelled call abandons the worker thread (it finishes on its own, unobserved).
    """
    if is_async_function(fn):
        result = await fn(*args)
    else:
        result = await trio.to_thread.run_sync(functools.partial(fn, *args), abandon_on_cancel=True)
    if inspect.isawaitable(result):  # a plain function that handed back a coroutine
        result = await result
    return result


# -- configuration ---------------------------------------------------------------------


def _to_root(item: object) -> types.Root:
    if isinstance(item, types.Root):
        return item
    try:
        if isinstance(item, str):
            return types.Root.model_validate({"uri": item})
        if isinstance(item, Mapping):
            return types.Root.model_validate(item)
    except ValidationError:
        raise ConfigError(f"root {item!r} is not valid: a root is a file:// URI") from None
    raise ConfigError(f"a root must be a file:// URI string or an mcp.types.Root, not {type(item).__name__}")


def to_roots(value: object) -> tuple[types.Root, ...] | RootsFunction:
    """A roots value checked and normalised: a tuple of :class:`~mcp.types.Root`, or the function."""
    if callable(value):
        return value
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(
            "roots must be a list of file:// URIs or mcp.types.Root values, or a function (server) -> list"
        )
    return tuple(_to_root(item) for item in value)


def _optional_roots(value: object) -> tuple[types.Root, ...] | RootsFunction | None:
    return None if value is None else to_roots(value)


def _check_function(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"the {attribute.name} handler must be a function (plain or async) or None")


def _check_log_level(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in _LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {_LOG_LEVELS} or None, got {value!r}")


def _check_optional_bool(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{attribute.name} must be a bool or None")


@attrs.frozen
class Handlers:
    """Who answers a server's own requests and notifications (all optional).

    Give it pool-wide (``open_mcp_pool(servers, handlers=...)``, ``start_portal``) and
    per server (``StdioServer(..., handlers=...)``); a server's fields that are not
    None override the pool's.

    Each handler may be a plain function (run in a worker thread, so blocking UI code
    works) or an async function (run in trio). The server learns only of the
    handlers given: a server sees the ``sampling`` capability only with a sampling
    handler, and so on.
    """

    #: ``(server, CreateMessageRequestParams) -> CreateMessageResult | ErrorData`` (an LLM call).
    sampling: SamplingHandler | None = attrs.field(default=None, validator=_check_function)
    #: ``(server, ElicitRequestParams) -> ElicitResult | ErrorData``: form mode (a schema to fill)
    #: or URL mode (a link for the user to open; nothing is ever fetched by trio-mcp).
    elicitation: ElicitationHandler | None = attrs.field(default=None, validator=_check_function)
    #: A list of ``file://`` URIs or :class:`~mcp.types.Root` values, or a function
    #: ``(server) -> list``. Changed at run time with :meth:`MCPPool.set_roots`.
    roots: tuple[types.Root, ...] | RootsFunction | None = attrs.field(
        default=None, converter=_optional_roots
    )
    #: ``(server, LoggingMessageNotificationParams) -> None``. Without one, server log
    #: messages go to Python logging under ``trio_mcp.server.<name>``.
    logging: LoggingHandler | None = attrs.field(default=None, validator=_check_function)
    #: The lowest server log level asked for. Default: ``"debug"`` with a logging
    #: handler, else the level the ``trio_mcp.server.<name>`` logger lets through.
    #: On 2026-07-28 sessions it is sent with every request (logs are opt-in there); on
    #: 2025 sessions an explicit level is sent once as ``logging/setLevel``.
    log_level: types.LoggingLevel | None = attrs.field(default=None, validator=_check_log_level)
    #: Declare that the sampling handler accepts ``tools`` (sampling with tools).
    sampling_tools: bool | None = attrs.field(default=None, validator=_check_optional_bool)

    def over(self, base: Handlers) -> Handlers:
        """These handlers, with ``base``'s filling every field left None."""
        return Handlers(
            **{
                field.name: getattr(self, field.name)
                if getattr(self, field.name) is not None
                else getattr(base, field.name)
                for field in attrs.fields(Handlers)
            }
        )


def check_handlers(value: object) -> None:
    """Raise ConfigError unless ``value`` is a :class:`Handlers` or None."""
    if value is not None and not isinstance(value, Handlers):
        raise ConfigError(f"handlers must be a trio_mcp.Handlers or None, not {type(value).__name__}")


def check_progress_options(progress: object, idle_timeout: object) -> None:
    """Validate ``tool_call``'s ``progress=`` and ``idle_timeout=`` (raises ConfigError)."""
    if progress is not None and not callable(progress):
        raise ConfigError("progress must be a function (progress, total, message) or None")
    if idle_timeout is not None and (
        isinstance(idle_timeout, bool)
        or not isinstance(idle_timeout, int | float)
        or not (idle_timeout > 0 and math.isfinite(idle_timeout))
    ):
        raise ConfigError("idle_timeout must be a positive, finite number of seconds or None")


# -- ready answers -----------------------------------------------------------------------


def _content_value(value: object) -> bool:
    """Whether ``value`` fits an elicitation answer (a primitive, or a list of strings)."""
    if value is None or isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def accept_with_defaults(params: types.ElicitRequestParams) -> types.ElicitResult:
    """Accept a form elicitation, filling in every default its schema declares (SEP-1034).

    A ready answer for unattended programs:
    ``Handlers(elicitation=lambda server, params: accept_with_defaults(params))``.
    Fields without a default are left out (a server that requires them may then
    refuse the answer). A URL-mode elicitation is *declined*: accepting it would claim
    that a user opened the link, which an unattended program cannot do.
    """
    if not isinstance(params, types.ElicitRequestFormParams):
        return types.ElicitResult(action="decline")
    properties = (params.requested_schema or {}).get("properties")
    content: dict[str, Any] = {}
    if isinstance(properties, Mapping):
        for name, schema in properties.items():
            if isinstance(schema, Mapping) and "default" in schema and _content_value(schema["default"]):
                content[name] = schema["default"]
    return types.ElicitResult(action="accept", content=content)


# -- one server's handlers at run time ----------------------------------------------------

# Set around each pool request (in the caller's task): handler failures met while
# answering it are recorded here, so the caller hears of them.
_FAILURES: contextvars.ContextVar[list[HandlerError] | None] = contextvars.ContextVar(
    "trio_mcp_handler_failures", default=None
)


class watch_handlers:  # a class, not a generator: it is entered around every request
    """Record the handler failures met while answering this task's request."""

    __slots__ = ("_token",)

    def __enter__(self) -> list[HandlerError]:
        record: list[HandlerError] = []
        self._token = _FAILURES.set(record)
        return record

    def __exit__(self, *exc_info: object) -> None:
        _FAILURES.reset(self._token)


class _BadAnswer(Exception):
    """A handler answered with something that is not the expected result."""


def _checked(value: object, models: tuple[type[T], ...], expected: str) -> T | types.ErrorData:
    if isinstance(value, (types.ErrorData, *models)):
        return cast("T | types.ErrorData", value)
    if isinstance(value, Mapping):
        for model in models:
            try:
                return model.model_validate(value)  # type: ignore[attr-defined, no-any-return]
            except ValidationError:
                continue
        raise _BadAnswer(f"a mapping that is not a valid {expected}")
    raise _BadAnswer(f"{type(value).__name__}, not {expected} or ErrorData")


def _sampling_answer(value: object) -> SamplingAnswer:
    return _checked(
        value, (types.CreateMessageResult, types.CreateMessageResultWithTools), "CreateMessageResult"
    )


def _elicitation_answer(value: object) -> ElicitationAnswer:
    return _checked(value, (types.ElicitResult,), "ElicitResult")


def _roots_answer(value: object) -> types.ListRootsResult:
    if callable(value):
        raise _BadAnswer("a function, not a list of roots")
    try:
        roots = to_roots(value)
    except ConfigError as error:
        raise _BadAnswer(str(error)) from None
    assert isinstance(roots, tuple)
    return types.ListRootsResult(roots=list(roots))


def _python_level(level: int) -> types.LoggingLevel:
    """The MCP log level that lets through what a Python logger at ``level`` prints."""
    for name in ("debug", "info", "warning", "error"):
        if level <= _PYTHON_LEVELS[name]:
            return name
    return "critical"


@attrs.define(eq=False)
class ProgressWatch:
    """One call's progress: delivers notifications in order and keeps its idle deadline.

    ``scope`` is the idle deadline: each progress notification pushes it
    ``idle_timeout`` seconds on; while a handler of this server is answering a
    request it is suspended (waiting for your own handler is not the server idling).
    """

    _owner: ServerHandlers
    _progress: ProgressFunction | None
    idle_timeout: float | None
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _last: float | None = None
    done: bool = False
    #: Deliveries under way, and the event that says they are over (see :meth:`settle`).
    _delivering: int = 0
    _settled: trio.Event | None = None
    #: Async progress functions are called one at a time, in order.
    _turn: trio.Lock = attrs.field(factory=trio.Lock)

    def touch(self) -> None:
        if self.idle_timeout is None:
            return
        if self._owner.busy:
            self.scope.deadline = math.inf
        else:
            self.scope.deadline = trio.current_time() + self.idle_timeout

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        """The SDK's progress callback for this call."""
        self.touch()
        function = self._progress
        if function is None or self.done:
            return
        # The SDK runs each notification in its own task, which trio may reorder;
        # progress only ever increases, so an older value arriving late is dropped.
        if self._last is not None and progress < self._last:
            return
        self._last = progress
        self._delivering += 1
        try:
            if is_async_function(function):
                async with self._turn:
                    await function(progress, total, message)  # type: ignore[misc]
            else:
                function(progress, total, message)
        except Exception as exc:
            logger.warning(
                "server %r: the progress function raised %s (ignored)", self._owner.server, type(exc).__name__
            )
        finally:
            self._delivering -= 1
            if not self._delivering and self._settled is not None:
                self._settled.set()

    async def settle(self) -> None:
        """Wait until every progress update that arrived before the answer has been delivered.

        The SDK hands each notification to a task of its own, started in arrival order
        but possibly run after the call's answer wakes the caller: one checkpoint lets
        those already started run, then this waits for deliveries under way.
        """
        await trio.lowlevel.checkpoint()
        while self._delivering:
            self._settled = trio.Event()
            await self._settled.wait()


@attrs.define(eq=False)
class ServerHandlers:
    """One server's effective handlers, adapted to the SDK's callbacks, for the pool's life.

    Lives as long as the server's slot, across reconnections; the roots may be
    changed at run time (:meth:`set_roots`).
    """

    server: str
    handlers: Handlers
    #: Each handler's deadline, in seconds (the server's ``call_timeout``).
    timeout: float
    _roots: tuple[types.Root, ...] | RootsFunction | None = attrs.field(init=False)
    #: How many handlers are answering a request of this server right now.
    busy: int = attrs.field(init=False, default=0)
    _watches: set[ProgressWatch] = attrs.field(init=False, factory=set)

    def __attrs_post_init__(self) -> None:
        self._roots = self.handlers.roots

    # -- configuration of a new session -----------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``mcp.Client``: callbacks only for the handlers given."""
        handlers = self.handlers
        options: dict[str, Any] = {"logging_callback": self._on_log, "log_level": self.log_level()}
        if handlers.sampling is not None:
            options["sampling_callback"] = self._sample
            if handlers.sampling_tools:
                options["sampling_capabilities"] = types.SamplingCapability(
                    tools=types.SamplingToolsCapability()
                )
        if handlers.elicitation is not None:
            options["elicitation_callback"] = self._elicit
        if self._roots is not None:
            options["list_roots_callback"] = self._list_roots
        return options

    def log_level(self) -> types.LoggingLevel:
        if self.handlers.log_level is not None:
            return self.handlers.log_level
        if self.handlers.logging is not None:
            return "debug"
        return _python_level(self.python_logger().getEffectiveLevel())

    def python_logger(self) -> logging.Logger:
        return logging.getLogger(f"trio_mcp.server.{self.server}")

    def set_roots(self, roots: tuple[types.Root, ...] | RootsFunction) -> None:
        """Answer later ``roots/list`` requests with ``roots`` (already checked by :func:`to_roots`)."""
        self._roots = roots

    # -- progress and idle deadlines --------------------------------------------------------

    @contextmanager
    def watch(self, progress: ProgressFunction | None, idle_timeout: float | None) -> Iterator[ProgressWatch]:
        """A :class:`ProgressWatch` for one call, live for the ``with`` block."""
        watch = ProgressWatch(self, progress, idle_timeout)
        watch.touch()
        self._watches.add(watch)
        try:
            yield watch
        finally:
            watch.done = True
            self._watches.discard(watch)

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """Suspend idle deadlines while a handler answers (the server is waiting on us)."""
        self.busy += 1
        if self.busy == 1:
            for watch in self._watches:
                watch.touch()
        try:
            yield
        finally:
            self.busy -= 1
            if self.busy == 0:
                for watch in self._watches:
                    watch.touch()

    # -- the SDK's callbacks ------------------------------------------------------------------

    async def _answer(
        self, kind: str, call: Callable[[], Awaitable[Any]], check: Callable[[Any], T]
    ) -> T | types.ErrorData:
        """Run one handler under its deadline; any failure becomes ErrorData and is recorded."""
        what = f"server {self.server!r} asked for {kind}, and the client's {kind} handler"
        failure: HandlerError | None = None
        code = types.INTERNAL_ERROR
        with self._answering():
            # A plain handler always checkpoints (in a worker thread); an async one may not.
            with trio.move_on_after(self.timeout) as scope:  # noqa: ASYNC912
                try:
                    answer = await call()
                except Exception as exc:
                    failure = HandlerError(
                        f"{what} raised {type(exc).__name__}", server=self.server, handler=kind
                    )
                    failure.__cause__ = exc
            if scope.cancelled_caught:
                code = types.REQUEST_TIMEOUT
                failure = HandlerError(
                    f"{what} did not answer within {self.timeout:g}s (call_timeout)",
                    server=self.server,
                    handler=kind,
                )
            elif failure is None:
                try:
                    checked = check(answer)
                except _BadAnswer as bad:
                    failure = HandlerError(f"{what} returned {bad}", server=self.server, handler=kind)
                else:
                    if not isinstance(checked, types.ErrorData):
                        return checked
                    # A deliberate refusal goes to the server as it is; the caller hears of it too.
                    self._record(
                        HandlerError(f"{what} refused: {checked.message}", server=self.server, handler=kind)
                    )
                    return checked
        assert failure is not None
        logger.warning("%s", failure)
        self._record(failure)
        return types.ErrorData(code=code, message=f"trio-mcp client: {failure}")

    @staticmethod
    def _record(failure: HandlerError) -> None:
        record = _FAILURES.get()
        if record is not None and not record:
            record.append(failure)

    async def _sample(
        self, _context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> SamplingAnswer:
        handler = self.handlers.sampling
        assert handler is not None
        return await self._answer(
            "sampling", lambda: _run_user(handler, self.server, params), _sampling_answer
        )

    async def _elicit(
        self, _context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> ElicitationAnswer:
        handler = self.handlers.elicitation
        assert handler is not None
        return await self._answer(
            "elicitation", lambda: _run_user(handler, self.server, params), _elicitation_answer
        )

    async def _list_roots(self, _context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        roots = self._roots
        if roots is None:
            return types.ListRootsResult(roots=[])
        if isinstance(roots, tuple):
            return types.ListRootsResult(roots=list(roots))
        return await self._answer("roots", lambda: _run_user(roots, self.server), _roots_answer)

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        handler = self.handlers.logging
        if handler is None:
            self._to_python_logging(params)
            return
        try:
            # The handler may not checkpoint; a plain one always does (in a worker thread).
            with trio.move_on_after(self.timeout):  # noqa: ASYNC912
                await _run_user(handler, self.server, params)
        except Exception as exc:
            logger.warning(
                "server %r: the logging handler raised %s (ignored)", self.server, type(exc).__name__
            )

    def _to_python_logging(self, params: types.LoggingMessageNotificationParams) -> None:
        target = self.python_logger()
        level = _PYTHON_LEVELS.get(params.level, logging.INFO)
        if not target.isEnabledFor(level):
            return
        data = params.data
        if not isinstance(data, str):
            data = json.dumps(data, default=str)
        extra = {"mcp_level": params.level, "mcp_logger": params.logger}
        if params.logger:
            target.log(level, "[%s] %s", params.logger, data, extra=extra)
        else:
            target.log(level, "%s", data, extra=extra)
