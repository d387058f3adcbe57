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
from collections.abc import Callable, Mapping
from contextvars import Token
from statistics import quantiles
from types import TracebackType
from typing import Any

import attrs
import httpx2
import trio

from ._auth import build_auth, pausable_deadline, track_pauses, untrack_pauses
from ._config import ReconnectPolicy, ServerConfig
from ._errors import (
    AuthorizationError,
    CircuitOpenError,
    MCPPoolError,
    PoolClosedError,
    ServerOverloadedError,
    ServerRemovedError,
    ServerUnavailableError,
    ToolCallTimeout,
)
from ._handlers import Handlers, ServerHandlers
from ._headers import render_config
from ._redact import env_secret_values, hold_secrets, release_secrets, secret_values
from ._session import LiveSession, open_live_session
from ._shared import SharedOutcome
from ._telemetry import detached
from ._translate import translate_connect_error

__all__ = ["Reconnector", "Request", "ServerSlot", "ServerState", "ServerStatistics"]

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


@attrs.define
class Reconnector:
    """When the next connection attempt may be made: the pure core of supervision.

    After a failure the next attempt waits ``initial_backoff * multiplier**(n-1)``
    seconds (at most ``max_backoff``, spread by ``±jitter``); after
    ``failure_threshold`` consecutive failures the circuit opens for ``circuit_reset``
    seconds, then one probe may go (half-open). The clock and the randomness are
    injected, so the policy is tested without a server or a trio run.
    """

    policy: ReconnectPolicy
    clock: Callable[[], float] = trio.current_time
    random: Callable[[], float] = random.random
    failures: int = 0
    retry_at: float = -math.inf
    last_error: MCPPoolError | None = None

    @property
    def circuit_open(self) -> bool:
        """Open from the threshold-th consecutive failure until an attempt succeeds."""
        return self.failures >= self.policy.failure_threshold

    def remaining(self) -> float:
        """Seconds until the next attempt may be made (0 when it may be made now)."""
        return max(0.0, self.retry_at - self.clock())

    def failed(self, error: MCPPoolError) -> float:
        """Count a failed attempt; return the delay before the next one."""
        policy = self.policy
        self.failures += 1
        self.last_error = error
        if self.circuit_open:
            delay = policy.circuit_reset
        else:
            base = policy.initial_backoff * policy.multiplier ** (self.failures - 1)
            delay = min(policy.max_backoff, base) * (1 + policy.jitter * (2 * self.random() - 1))
        self.retry_at = self.clock() + delay
        return delay

    def refused(self, error: MCPPoolError) -> float:
        """Count a failed authorization: not transient, not the server's failure.

        It is the answer for ``circuit_reset`` seconds, without counting towards the
        circuit; then one attempt may go (one login, not a loop of them).
        """
        self.last_error = error
        self.retry_at = self.clock() + self.policy.circuit_reset
        return self.policy.circuit_reset

    def succeeded(self) -> None:
        self.failures = 0
        self.last_error = None
        self.retry_at = -math.inf


@attrs.define(eq=False)
class ServerSlot:
    """The supervisor, the current session and the counters of one configured server."""

    name: str
    config: ServerConfig
    _variables: Mapping[str, str]
    connect_timeout: float
    call_timeout: float
    #: Set when the pool begins closing (the pool's own event, shared by every slot).
    pool_closing: trio.Event = attrs.field(factory=trio.Event, kw_only=True)
    #: The pool's handlers; this server's own (in its config) override them.
    pool_handlers: Handlers = attrs.field(factory=Handlers, kw_only=True)
    handlers: ServerHandlers = attrs.field(init=False)
    limiter: trio.CapacityLimiter = attrs.field(init=False)
    reconnector: Reconnector = attrs.field(init=False)
    _nursery: trio.Nursery | None = None
    #: The session callers use; None while there is none (or it is closing).
    live: LiveSession | None = None
    #: The connection attempt that callers wait on, and what it was asked to use.
    _attempt: SharedOutcome[LiveSession] | None = None
    #: The config with its placeholders filled, and its rendered headers (or env).
    _rendered: tuple[ServerConfig, dict[str, str]] | None = attrs.field(default=None, repr=False)  # secrets
    #: The secret values of its rendered configs, redacted everywhere while it is served.
    _secrets: set[str] = attrs.field(factory=set, repr=False)
    _connecting: bool = False
    _served: bool = False
    #: The authorization flow of an HTTP server's sessions, built once (it holds tokens).
    _auth: httpx2.Auth | None = attrs.field(default=None, repr=False)
    _auth_built: bool = False
    _wake_send: trio.MemorySendChannel[None] = attrs.field(init=False)
    _wake_receive: trio.MemoryReceiveChannel[None] = attrs.field(init=False)
    # counters
    connects: int = 0
    completed: int = 0
    failed: int = 0
    timed_out: int = 0
    cancelled: int = 0
    _latencies: collections.deque[float] = attrs.field(
        factory=lambda: collections.deque(maxlen=_LATENCY_WINDOW)
    )
    # run-time removal (see retire)
    _removed: bool = False
    _requests: set[Request] = attrs.field(factory=set)
    #: The watchdog's wait, while it waits: its deadline is the earliest request's.
    _watch_wait: trio.CancelScope | None = None
    _supervisor: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _finished: trio.Event | None = None

    def __attrs_post_init__(self) -> None:
        self._wake_send, self._wake_receive = trio.open_memory_channel[None](1)
        self.limiter = trio.CapacityLimiter(self.config.limits.max_concurrent)
        self.reconnector = Reconnector(self.config.reconnect)
        own = self.config.handlers or Handlers()
        self.handlers = ServerHandlers(self.name, own.over(self.pool_handlers), self.call_timeout)

    @property
    def closing(self) -> bool:
        """True once the pool began closing or this supervisor stopped."""
        return self._served or self._removed or self.pool_closing.is_set()

    @property
    def state(self) -> ServerState:
        """Where the supervisor stands now (derived, never stored)."""
        if self.closing:
            return ServerState.CLOSED
        if self._connecting:
            return ServerState.CONNECTING
        live = self.live
        if live is not None and not live.lost.is_set():
            return ServerState.READY
        if isinstance(self.reconnector.last_error, AuthorizationError) and self.reconnector.remaining() > 0:
            return ServerState.UNAUTHORIZED
        if self.reconnector.circuit_open:
            return ServerState.CIRCUIT_OPEN  # until a (half-open) probe succeeds
        if self.reconnector.remaining() > 0:
            return ServerState.BACKING_OFF
        return ServerState.IDLE

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

    async def connected(self) -> LiveSession:
        """The live session, connecting first if there is none (callers coalesce)."""
        live = self.live
        if live is not None and not live.lost.is_set():
            return live
        if self.closing:
            raise self._closed_error("is not served")
        attempt = self._attempt
        if attempt is None:
            # A missing variable is a configuration error, not a transient failure: it
            # is raised to every caller, before the backoff or circuit is consulted, and
            # never counts against them.
            rendered = self._render()
            self._hold_secrets(rendered)
            if not self._auth_built:
                self._auth = build_auth(self.name, rendered[0], self._variables)
                self._auth_built = True
            self._fail_fast_if_waiting()
            attempt = self._attempt = SharedOutcome()
            self._rendered = rendered
            try:
                self._wake_send.send_nowait(None)
            except trio.WouldBlock:
                pass  # the supervisor has a wake-up pending already
        return await attempt.wait()

    def _fail_fast_if_waiting(self) -> None:
        """During a backoff or an open circuit, answer with the last error now."""
        reconnector = self.reconnector
        remaining = reconnector.remaining()
        last_error = reconnector.last_error
        if remaining <= 0 or last_error is None:
            return
        if isinstance(last_error, AuthorizationError):
            raise AuthorizationError(
                f"{last_error} (not tried again for {remaining:.1f}s)",
                server=self.name,
                status=last_error.status,
                challenge=last_error.challenge,
            ) from last_error.__cause__
        if reconnector.circuit_open:
            error: MCPPoolError = CircuitOpenError(
                f"server {self.name!r} is unavailable: circuit open after "
                f"{reconnector.failures} failed attempts; next probe in {remaining:.1f}s",
                server=self.name,
            )
        else:
            error = ServerUnavailableError(
                f"{last_error} (next attempt in {remaining:.1f}s)", server=self.name
            )
        error.__cause__ = last_error.__cause__
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
        latencies = list(self._latencies)
        p50 = p99 = None
        if len(latencies) == 1:
            p50 = p99 = latencies[0]
        elif latencies:
            cuts = quantiles(latencies, n=100, method="inclusive")
            p50, p99 = cuts[49], cuts[98]
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
            consecutive_failures=self.reconnector.failures,
            latency_p50=p50,
            latency_p99=p99,
        )

    # -- supervisor side ----------------------------------------------------------

    async def serve(self, nursery: trio.Nursery, *, task_status: trio.TaskStatus[None]) -> None:
        """Open a session whenever one is wanted; hold it until it ends; repeat."""
        self._nursery = nursery
        task_status.started()
        # Its sessions outlive whoever started it: their spans join no caller's trace.
        try:
            with detached(), self._supervisor:  # cancelled by retire()
                async with trio.open_nursery() as watchdog:
                    watchdog.start_soon(self._watchdog)
                    await self._supervise()
                    watchdog.cancel_scope.cancel()
        finally:
            release_secrets(self._secrets)
            self._secrets.clear()

    def _hold_secrets(self, rendered: tuple[ServerConfig, dict[str, str]]) -> None:
        """Have what a remote server's requests carry, or the environment a stdio server
        is given, redacted wherever it shows up (a server may send it back in an error),
        for as long as the server is served."""
        config, headers_or_env = rendered
        url = config.endpoint()
        found = secret_values(url, headers_or_env) if url is not None else env_secret_values(headers_or_env)
        new = found - self._secrets
        if new:
            hold_secrets(new)
            self._secrets |= new

    def watch(self, deadline: float) -> None:
        """Make sure the watchdog looks at the requests by ``deadline``."""
        wait = self._watch_wait
        if wait is not None and deadline < wait.deadline:
            wait.deadline = deadline

    async def _watchdog(self) -> None:
        """End each request whose deadline passed; sleep until the earliest one."""
        while True:
            now = trio.current_time()
            earliest = math.inf
            for request in list(self._requests):
                if request.deadline <= now:
                    request.expire()
                elif request.deadline < earliest:
                    earliest = request.deadline
            with trio.CancelScope(deadline=earliest) as self._watch_wait:
                await trio.sleep_forever()
            self._watch_wait = None

    async def _supervise(self) -> None:
        try:
            async for _ in self._wake_receive:
                attempt, rendered = self._attempt, self._rendered
                if attempt is None or rendered is None:
                    continue
                finished = self._finished = trio.Event()
                self._connecting = True
                try:
                    live = await self._connect(rendered, finished)
                except MCPPoolError as error:
                    self._attempt = self._rendered = None
                    self._after_failure(error)
                    attempt.fail(error)
                    continue
                finally:
                    self._connecting = False
                self.connects += 1
                verb = "reconnected" if self.connects > 1 else "connected"
                logger.info("server %r: %s (protocol %s)", self.name, verb, live.client.protocol_version)
                if self.reconnector.circuit_open:
                    logger.warning("server %r: circuit closed", self.name)
                self.reconnector.succeeded()
                self.live = live
                self._attempt = self._rendered = None
                attempt.set(live)
                await finished.wait()
        finally:
            self._served = True
            attempt = self._attempt
            if attempt is not None:
                attempt.fail(self._closed_error("closed while connecting"))

    def _after_failure(self, error: MCPPoolError) -> None:
        """Schedule the next attempt: a backoff, or an open circuit."""
        if isinstance(error, AuthorizationError):
            delay = self.reconnector.refused(error)
            logger.warning("%s; next attempt in %.1fs", error, delay)
            return
        was_open = self.reconnector.circuit_open
        delay = self.reconnector.failed(error)
        if self.reconnector.circuit_open:
            if not was_open:
                logger.warning(
                    "server %r: circuit open after %d failed attempts; next probe in %.1fs",
                    self.name,
                    self.reconnector.failures,
                    delay,
                )
        else:
            logger.info("server %r: connection failed (%s); next attempt in %.2fs", self.name, error, delay)

    def refused(self, live: LiveSession, error: AuthorizationError) -> None:
        """A request on ``live`` found its credentials refused: drop it, and hold as after a failed connect."""
        live.lost.set()
        self._after_failure(error)

    def _render(self) -> tuple[ServerConfig, dict[str, str]]:
        """The config's placeholders filled in; :class:`TemplateError` names a missing variable."""
        return render_config(self.name, self.config, self._variables)

    async def _connect(
        self, rendered: tuple[ServerConfig, dict[str, str]], finished: trio.Event
    ) -> LiveSession:
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
        rendered: tuple[ServerConfig, dict[str, str]],
        finished: trio.Event,
        *,
        task_status: trio.TaskStatus[LiveSession],
    ) -> None:
        """The owner task: enter the session, report ready, hold it, close it."""
        started = False
        held: LiveSession | None = None
        try:
            config, headers = rendered
            async with open_live_session(
                self.name, config, headers, self.call_timeout, self.handlers, self._auth
            ) as live:
                task_status.started(live)
                started, held = True, live
                interval = self.config.health_check_interval
                if interval is None:
                    await live.lost.wait()
                else:
                    await self._watch_health(live, interval)
                if self.live is live:
                    self.live = None  # no caller gets it while it closes
                if not self.closing:
                    logger.warning("server %r: session lost; the next call reconnects", self.name)
        except BaseExceptionGroup as group:
            # Closing while the pool closes: the session's own failures (say, a dead HTTP
            # server) arrive grouped with the Cancelled of the close.
            errors, cancelled = group.split(Exception)
            if not started or errors is None:
                raise
            logger.debug("server %r: error while closing the session", self.name, exc_info=errors)
            if cancelled is not None:
                raise cancelled from None
        except Exception:
            if not started:
                raise
            # After start, a failure while closing must not take the pool down.
            logger.debug("server %r: error while closing the session", self.name, exc_info=True)
        finally:
            if held is not None and self.live is held:
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

    # -- run-time removal (MCPPool.remove_server) -----------------------------------

    def _closed_error(self, what: str) -> PoolClosedError:
        """The error of a request this slot will never answer: removed, or the pool closed."""
        if self._removed:
            return ServerRemovedError(f"server {self.name!r} was removed from the pool", server=self.name)
        return PoolClosedError(f"the pool is closed; server {self.name!r} {what}", server=self.name)

    def request(self, what: str) -> Request:
        """The scope of one request on this server (see :class:`Request`)."""
        if self._removed:
            raise self._closed_error("is not served")
        return Request(self, what)

    async def retire(self) -> None:
        """Stop serving this server for good (the pool already forgot its name).

        Every waiting and in-flight request is cancelled with :class:`ServerRemovedError`,
        the session is closed by its owner task, the supervisor stops; returns once the
        session (and a stdio child) is gone. Nothing else in the pool is touched.
        """
        self._removed = True
        for request in list(self._requests):
            request.cancel()
        live = self.live
        if live is not None:
            live.lost.set()  # its owner task sees it and closes the session
        self._supervisor.cancel()  # a connection attempt in progress is abandoned
        finished = self._finished
        if finished is not None:
            await finished.wait()
        logger.info("server %r: removed from the pool", self.name)


class Request:
    """One request's stay on a server: the one cancel scope that ends it early.

    Entered around everything the request does (waiting for capacity, connecting,
    the exchange). Once :meth:`ServerSlot.retire` is called the request fails with
    :class:`ServerRemovedError`, waiting or in flight (so the server is told to cancel
    it), and an error it raised because its session closed under it is reported as
    the removal it was. While armed, the server's ``call_timeout`` bounds it: the
    clock measures the server, so it starts once a session is at hand and stops
    while a person logs in.

    The deadline is not the scope's own: the slot's watchdog (see
    :meth:`ServerSlot.watch`) cancels requests whose deadline passed. A trio deadline
    per request would be registered and dropped with every call, which costs more than
    the rest of the pool's work on a call; the watchdog's one deadline moves only
    when the earliest of them does.
    """

    __slots__ = ("_deadline", "_pauses", "_scope", "_slot", "_what", "expired")

    def __init__(self, slot: ServerSlot, what: str) -> None:
        self._slot = slot
        self._what = what
        self._scope = trio.CancelScope()
        self._deadline = math.inf
        self._pauses: Token[Any] | None = None
        #: Set by the watchdog when it ended the request for its deadline.
        self.expired = False

    @property
    def deadline(self) -> float:
        """When the watchdog ends this request (``inf``: not armed, or paused)."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = value
        self._slot.watch(value)

    def __enter__(self) -> Request:
        self._scope.__enter__()
        self._slot._requests.add(self)
        return self

    def arm(self) -> None:
        """Start the call deadline (a session is at hand)."""
        slot = self._slot
        self.deadline = trio.current_time() + slot.call_timeout
        if slot._auth is not None and self._pauses is None:
            self._pauses = track_pauses(self)

    def disarm(self) -> None:
        """Stop the call deadline (before waiting for another session)."""
        self._deadline = math.inf

    def expire(self) -> None:
        """End the request for its deadline (the watchdog's call)."""
        self.expired = True
        self._scope.cancel()

    def cancel(self) -> None:
        """End the request (its server is being removed)."""
        self._scope.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        slot = self._slot
        slot._requests.discard(self)
        if self._pauses is not None:
            untrack_pauses(self._pauses)
        self._scope.__exit__(exc_type, exc, tb)  # raises what it does not swallow
        if not self._scope.cancelled_caught:
            if isinstance(exc, MCPPoolError) and slot._removed:
                raise slot._closed_error("is not served") from exc
            return
        # Our own scope ended the request: removal, the pool closing, or the deadline.
        if slot._removed:
            raise slot._closed_error("is not served") from None
        if slot.pool_closing.is_set():
            raise PoolClosedError(
                f"the pool closed while {self._what} on server {slot.name!r} was in flight", server=slot.name
            ) from None
        assert self.expired
        raise ToolCallTimeout(
            f"{self._what} on server {slot.name!r} did not finish within {slot.call_timeout:g}s (call_timeout)",
            server=slot.name,
        ) from None
