"""One server's place in the pool: a supervisor task that opens sessions on demand.

Each configured server gets a :class:`ServerSlot` whose supervisor task
(:meth:`ServerSlot.serve`) lives in the pool's nursery from the start. It sleeps on a
trio memory channel until a caller asks for a session, then starts the session's
owner task with ``nursery.start`` — which returns only when the owner calls
``task_status.started(live)``, i.e. once the MCP handshake is done and the session
is truly usable. Concurrent first callers share that one attempt.

The owner task enters and exits the SDK session itself (anyio task groups must be
exited by the task that entered them) and holds it until the transport ends, the
session is reported lost, a health check fails, or the pool closes. The next caller
after a loss asks again and the supervisor reconnects.

Failed attempts are spaced by exponential backoff with jitter; after
``failure_threshold`` consecutive failures the circuit opens and callers fail fast
until one half-open probe succeeds (see :class:`ReconnectPolicy`). While a backoff
or an open circuit holds, callers get the error at once instead of queueing.
"""

from __future__ import annotations

import collections
import enum
import logging
import math
import random
from collections.abc import Mapping

import attrs
import httpx2
import trio

from ._auth import build_auth, pausable_deadline
from ._config import ServerConfig, StdioServer
from ._errors import (
    AuthorizationError,
    CircuitOpenError,
    MCPPoolError,
    PoolClosedError,
    ServerOverloadedError,
    ServerUnavailableError,
)
from ._handlers import Handlers, ServerHandlers
from ._headers import render_templates
from ._session import LiveSession, open_live_session
from ._translate import translate_connect_error

__all__ = ["ServerSlot", "ServerState", "ServerStatistics"]

logger = logging.getLogger("trio_mcp")

# How many recent call latencies statistics() summarises.
_LATENCY_WINDOW = 1024


class ServerState(enum.Enum):
    """Where a server's supervisor stands."""

    IDLE = "idle"  # no session; one opens on the next call
    CONNECTING = "connecting"
    READY = "ready"
    BACKING_OFF = "backing off"  # the last attempt failed; the next waits a little
    CIRCUIT_OPEN = "circuit open"  # failing fast after repeated failures
    UNAUTHORIZED = "unauthorized"  # the last attempt's authorization failed; not retried for a while
    CLOSED = "closed"


@attrs.frozen
class ServerStatistics:
    """A snapshot of one server's state and counters (see :meth:`MCPPool.statistics`)."""

    server: str
    state: ServerState
    in_flight: int
    waiting: int
    completed: int
    failed: int
    #: Requests whose deadline passed: the server's ``call_timeout``, or a deadline of
    #: the caller's own (``trio.fail_after``, the portal's ``timeout=``).
    timed_out: int
    #: Requests the caller abandoned without a deadline: an explicit ``cancel()``, a
    #: failing sibling task, Ctrl-C.
    cancelled: int
    connects: int
    reconnects: int
    consecutive_failures: int
    #: Seconds, over the most recent calls; None before the first call completes.
    latency_p50: float | None
    latency_p99: float | None


@attrs.define(eq=False)
class _Attempt:
    """One connection attempt that every caller arriving meanwhile waits on."""

    #: The headers (or a stdio server's environment) with the variables filled in:
    #: secrets, so kept out of the repr.
    rendered: dict[str, str] = attrs.field(repr=False)
    done: trio.Event = attrs.field(factory=trio.Event)
    live: LiveSession | None = None
    error: MCPPoolError | None = None


def _fresh(error: MCPPoolError) -> MCPPoolError:
    """A copy of ``error`` to raise in one more task (tracebacks are per raise)."""
    cls = type(error)
    clone = cls.__new__(cls, *error.args)
    clone.args = error.args
    clone.__dict__.update(error.__dict__)
    clone.__cause__ = error.__cause__
    clone.__traceback__ = None
    return clone


@attrs.define(eq=False)
class ServerSlot:
    """The supervisor, the current session and the counters of one configured server."""

    name: str
    config: ServerConfig
    _variables: Mapping[str, str]
    connect_timeout: float
    call_timeout: float
    #: The pool's handlers; this server's own (in its config) override them.
    pool_handlers: Handlers = attrs.field(factory=Handlers, kw_only=True)
    handlers: ServerHandlers = attrs.field(init=False)
    limiter: trio.CapacityLimiter = attrs.field(init=False)
    _nursery: trio.Nursery | None = None
    live: LiveSession | None = None
    closing: bool = False
    state: ServerState = ServerState.IDLE
    _attempt: _Attempt | None = None
    #: The authorization flow of an HTTP server's sessions, built once (it holds tokens).
    _auth: httpx2.Auth | None = attrs.field(default=None, repr=False)
    _auth_built: bool = False
    _wake_send: trio.MemorySendChannel[None] = attrs.field(init=False)
    _wake_receive: trio.MemoryReceiveChannel[None] = attrs.field(init=False)
    # failure bookkeeping
    consecutive_failures: int = 0
    _retry_at: float = -math.inf
    _last_error: MCPPoolError | None = None
    # counters
    connects: int = 0
    completed: int = 0
    failed: int = 0
    timed_out: int = 0
    cancelled: int = 0
    _latencies: collections.deque[float] = attrs.field(
        factory=lambda: collections.deque(maxlen=_LATENCY_WINDOW)
    )

    def __attrs_post_init__(self) -> None:
        self._wake_send, self._wake_receive = trio.open_memory_channel[None](1)
        self.limiter = trio.CapacityLimiter(self.config.limits.max_concurrent)
        own = self.config.handlers or Handlers()
        self.handlers = ServerHandlers(self.name, own.over(self.pool_handlers), self.call_timeout)

    # -- caller side --------------------------------------------------------------

    def check_capacity(self) -> None:
        """Fail at once if too many callers already wait for this server."""
        if (
            self.limiter.available_tokens == 0
            and self.limiter.statistics().tasks_waiting >= self.config.limits.max_waiting
        ):
            raise ServerOverloadedError(
                f"server {self.name!r} is overloaded: {self.config.limits.max_waiting} callers "
                "are already waiting; try again later",
                server=self.name,
            )

    async def session(self) -> LiveSession:
        """The live session, connecting first if there is none (callers coalesce)."""
        live = self.live
        if live is not None and not live.lost.is_set():
            return live
        if self.closing:
            raise PoolClosedError(f"the pool is closed; server {self.name!r} is not served", server=self.name)
        attempt = self._attempt
        if attempt is None:
            # A missing variable is a configuration error, not a transient failure: it
            # is raised to every caller, before the backoff or circuit is consulted, and
            # never counts against them.
            rendered = self._render()
            if not self._auth_built:
                self._auth = build_auth(self.name, self.config, self._variables)
                self._auth_built = True
            self._fail_fast_if_waiting()
            attempt = self._attempt = _Attempt(rendered)
            try:
                self._wake_send.send_nowait(None)
            except trio.WouldBlock:
                pass  # the supervisor has a wake-up pending already
        await attempt.done.wait()
        if attempt.error is not None:
            raise _fresh(attempt.error)
        assert attempt.live is not None
        return attempt.live

    def _fail_fast_if_waiting(self) -> None:
        """During a backoff or an open circuit, answer with the last error now."""
        remaining = self._retry_at - trio.current_time()
        if remaining <= 0 or self._last_error is None:
            return
        last = self._last_error
        if isinstance(last, AuthorizationError):
            raise AuthorizationError(
                f"{last} (not tried again for {remaining:.1f}s)",
                server=self.name,
                status=last.status,
                challenge=last.challenge,
            ) from last.__cause__
        if self.state is ServerState.CIRCUIT_OPEN:
            error: MCPPoolError = CircuitOpenError(
                f"server {self.name!r} is unavailable: circuit open after "
                f"{self.consecutive_failures} failed attempts; next probe in {remaining:.1f}s",
                server=self.name,
            )
        else:
            error = ServerUnavailableError(
                f"{self._last_error} (next attempt in {remaining:.1f}s)", server=self.name
            )
        error.__cause__ = self._last_error.__cause__
        raise error

    def record(self, seconds: float, *, ok: bool, timed_out: bool = False, cancelled: bool = False) -> None:
        """Count one finished request (called by the pool)."""
        if ok:
            self.completed += 1
            self._latencies.append(seconds)
        elif timed_out:
            self.timed_out += 1
        elif cancelled:
            self.cancelled += 1
        else:
            self.failed += 1

    def statistics(self) -> ServerStatistics:
        latencies = sorted(self._latencies)
        limiter = self.limiter.statistics()
        return ServerStatistics(
            server=self.name,
            state=self.state,
            in_flight=limiter.borrowed_tokens,
            waiting=limiter.tasks_waiting,
            completed=self.completed,
            failed=self.failed,
            timed_out=self.timed_out,
            cancelled=self.cancelled,
            connects=self.connects,
            reconnects=max(0, self.connects - 1),
            consecutive_failures=self.consecutive_failures,
            latency_p50=latencies[len(latencies) // 2] if latencies else None,
            latency_p99=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None,
        )

    # -- supervisor side ----------------------------------------------------------

    async def serve(self, nursery: trio.Nursery, *, task_status: trio.TaskStatus[None]) -> None:
        """Open a session whenever one is wanted; hold it until it ends; repeat."""
        self._nursery = nursery
        task_status.started()
        try:
            async for _ in self._wake_receive:
                attempt = self._attempt
                if attempt is None:
                    continue
                self.state = ServerState.CONNECTING
                finished = trio.Event()
                try:
                    live = await self._connect(attempt.rendered, finished)
                except MCPPoolError as error:
                    self._attempt = None
                    attempt.error = error
                    attempt.done.set()
                    self._after_failure(error)
                    continue
                self.connects += 1
                if self.connects > 1:
                    logger.info(
                        "server %r: reconnected (protocol %s)", self.name, live.client.protocol_version
                    )
                else:
                    logger.info("server %r: connected (protocol %s)", self.name, live.client.protocol_version)
                if self.consecutive_failures >= self._threshold:
                    logger.warning("server %r: circuit closed", self.name)
                self.consecutive_failures = 0
                self._last_error = None
                self._retry_at = -math.inf
                self.live = attempt.live = live
                self._attempt = None
                self.state = ServerState.READY
                attempt.done.set()
                await finished.wait()
                if not self.closing and self.state is ServerState.READY:
                    self.state = ServerState.IDLE
        finally:
            self.closing = True
            self.state = ServerState.CLOSED
            attempt = self._attempt
            if attempt is not None and not attempt.done.is_set():
                attempt.error = PoolClosedError(
                    f"the pool closed while connecting to server {self.name!r}", server=self.name
                )
                attempt.done.set()

    @property
    def _threshold(self) -> int:
        return self.config.reconnect.failure_threshold

    def _after_failure(self, error: MCPPoolError) -> None:
        """Schedule the next attempt: a backoff, or an open circuit.

        A failed authorization is neither: it is not transient (the same credentials
        are refused again) nor the server's failure, and its next attempt may mean a
        person logging in again. It is the answer to every caller for
        ``circuit_reset`` seconds, without counting towards the circuit; then one
        caller's call tries again (one login, not a loop of them).
        """
        policy = self.config.reconnect
        if isinstance(error, AuthorizationError):
            self._last_error = error
            self._retry_at = trio.current_time() + policy.circuit_reset
            self.state = ServerState.UNAUTHORIZED
            logger.warning("%s; next attempt in %.1fs", error, policy.circuit_reset)
            return
        self.consecutive_failures += 1
        self._last_error = error
        if self.consecutive_failures >= policy.failure_threshold:
            delay = policy.circuit_reset
            if self.state is not ServerState.CIRCUIT_OPEN:
                logger.warning(
                    "server %r: circuit open after %d failed attempts; next probe in %.1fs",
                    self.name,
                    self.consecutive_failures,
                    delay,
                )
            self.state = ServerState.CIRCUIT_OPEN
        else:
            base = policy.initial_backoff * policy.multiplier ** (self.consecutive_failures - 1)
            delay = min(policy.max_backoff, base) * (1 + policy.jitter * (2 * random.random() - 1))
            logger.info("server %r: connection failed (%s); next attempt in %.2fs", self.name, error, delay)
            self.state = ServerState.BACKING_OFF
        self._retry_at = trio.current_time() + delay

    def refused(self, live: LiveSession, error: AuthorizationError) -> None:
        """A request on ``live`` found its credentials refused: drop it, and hold as after a failed connect."""
        live.lost.set()
        self._after_failure(error)

    def _render(self) -> dict[str, str]:
        """The config's templates filled in; :class:`TemplateError` names a missing variable."""
        if isinstance(self.config, StdioServer):
            # For a stdio server the templates are its environment values.
            return render_templates(self.name, "environment variable", self.config.env or {}, self._variables)
        return render_templates(self.name, "header", getattr(self.config, "headers", {}), self._variables)

    async def _connect(self, rendered: dict[str, str], finished: trio.Event) -> LiveSession:
        assert self._nursery is not None
        # The connect timeout measures the server: it stops while a person logs in.
        with pausable_deadline(self.connect_timeout) as deadline:
            try:
                live: LiveSession = await self._nursery.start(self._hold, rendered, finished)
            except Exception as exc:  # includes ExceptionGroups of Exceptions, never Cancelled
                error = translate_connect_error(exc, self.name)
                raise error from error.__cause__
            return live
        assert deadline.cancelled_caught
        raise ServerUnavailableError(
            f"server {self.name!r} is unavailable: no MCP session within "
            f"{self.connect_timeout:g}s (connect timeout)",
            server=self.name,
        )

    async def _hold(
        self,
        rendered: dict[str, str],
        finished: trio.Event,
        *,
        task_status: trio.TaskStatus[LiveSession],
    ) -> None:
        """The owner task: enter the session, report ready, hold it, close it."""
        started = False
        try:
            async with open_live_session(
                self.name, self.config, rendered, self.call_timeout, self.handlers, self._auth
            ) as live:
                task_status.started(live)
                started = True
                interval = self.config.health_check_interval
                if interval is None:
                    await live.lost.wait()
                else:
                    await self._watch_health(live, interval)
                if not self.closing:
                    logger.warning("server %r: session lost; the next call reconnects", self.name)
        except Exception:
            if not started:
                raise
            # After start, a failure while closing must not take the pool down.
            logger.debug("server %r: error while closing the session", self.name, exc_info=True)
        finally:
            if started:
                self.live = None
            finished.set()

    async def _watch_health(self, live: LiveSession, interval: float) -> None:
        """Probe the session whenever it has been idle for ``interval``; a failed probe loses it."""
        while not live.lost.is_set():
            with trio.move_on_after(interval):
                await live.lost.wait()
            if live.lost.is_set():
                return
            if self.limiter.borrowed_tokens:
                continue  # calls are flowing: they are the health check
            try:
                with trio.fail_after(min(interval, self.call_timeout)):
                    await live.probe()
            except Exception as exc:
                logger.warning("server %r: health check failed (%s)", self.name, type(exc).__name__)
                live.lost.set()
