"""The portal: a thread that runs trio and a pool, for callers in plain threads.

:func:`start_portal` starts one daemon thread that runs ``trio.run``, opens the pool
in it and returns once the pool is ready (or raises the startup error in the
caller). Each blocking call crosses into that thread exactly once: the caller
queues a job with ``TrioToken.run_sync_soon`` (the cheapest hand-off trio has — no
memory-channel round trip, no ``Future``), the trio thread starts one task for it in
the portal's job nursery, and the task hands the answer back by releasing a lock the
caller is blocked on. Calls from many threads therefore run concurrently inside the
nursery.

No call can wait forever: every submitted job is tracked, and if the trio thread
ends for any reason the jobs still pending are failed with :class:`PoolClosedError`.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import mcp.types as types
import trio

from ._config import ServerConfig
from ._errors import MCPPoolError, PoolClosedError, ToolCallTimeout
from ._handlers import ProgressFunction, RootsFunction, check_progress_options, is_async_function
from ._info import ServerInfo
from ._options import PoolOptions
from ._pool import MCPPool, ToolCall, coerce_batch, open_mcp_pool
from ._server import ServerStatistics
from ._skills import Skill, SkillEntry
from ._subscriptions import BlockingResourceSubscription
from ._telemetry import caller_context, carried

__all__ = ["Portal", "shutdown_all", "start_portal"]

logger = logging.getLogger("trio_mcp")

T = TypeVar("T")

_live_portals: weakref.WeakSet[Portal] = weakref.WeakSet()
# How often a main-thread caller checks for KeyboardInterrupt while it waits.
_SIGNAL_POLL_SECONDS = 0.05
# Put on a call's progress queue when the call is over.
_CALL_OVER = object()


class _Unset:
    """The type of :data:`_UNSET`: an argument not given."""


_UNSET = _Unset()


class _Job:
    """One blocking call: what to run, and the lock its caller waits on."""

    __slots__ = (
        "args",
        "cancelled",
        "context",
        "done",
        "error",
        "fn",
        "result",
        "scope",
        "server",
        "timeout",
    )

    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        timeout: float | None,
        server: str | None,
    ):
        self.fn = fn
        self.server = server
        self.args = args
        self.timeout = timeout
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.scope: trio.CancelScope | None = None
        self.cancelled = False
        #: The caller's OpenTelemetry context: its current span parents the call's spans.
        self.context = caller_context()

    def cancel(self) -> None:
        """Run in the trio thread: abandon the call (its caller was interrupted)."""
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class Portal:
    """Blocking access to a pool from any thread; made by :func:`start_portal`.

    Every method may be called from any number of threads at once. ``timeout=``
    (seconds) bounds one call; when it passes, the request is cancelled on the server
    and :class:`ToolCallTimeout` is raised.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._pool: MCPPool | None = None
        self._jobs: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._pending: set[_Job] = set()
        self._lock = threading.Lock()
        self._dead: str | None = None  # why this process's thread serves no more calls
        self._pid = os.getpid()  # the process whose thread this is (see _unusable)
        self._ready = threading.Event()
        # Set as the portal thread's last act. Closing waits on this rather than on
        # Thread.join: on Python 3.11 a Ctrl-C during join() marks a thread that is
        # still running as stopped (bpo-45274), after which join() returns at once.
        self._finished = threading.Event()
        self._startup_error: BaseException | None = None
        self._servers: tuple[str, ...] = ()

    def __repr__(self) -> str:
        state = self._unusable() or "open"
        return f"<Portal servers={list(self._servers)!r} state={state!r}>"

    def _unusable(self) -> str | None:
        """Why no call can be served (closed, or started in another process); None if open.

        The one place that decides it: a forked child inherits the object but not the
        thread, which the process id tells.
        """
        if self._pid != os.getpid():
            return (
                "this portal was started in another process (before a fork); its thread "
                "does not exist here: start a new portal in this process"
            )
        return self._dead

    @property
    def servers(self) -> tuple[str, ...]:
        """The names of the configured servers."""
        return self._servers

    @property
    def closed(self) -> bool:
        """True once no call can be served any more."""
        return self._unusable() is not None

    # -- the trio side ---------------------------------------------------------------

    async def _main(self, servers: Mapping[str, ServerConfig], options: PoolOptions) -> None:
        try:
            async with open_mcp_pool(servers, options) as pool:
                try:
                    async with trio.open_nursery() as jobs:
                        self._pool, self._jobs = pool, jobs
                        self._servers = pool.servers
                        self._stop = trio.Event()
                        self._token = trio.lowlevel.current_trio_token()
                        self._ready.set()
                        await self._stop.wait()
                        pool.close()
                        # Every request now fails fast with PoolClosedError; a job that
                        # does not finish within a few seconds anyway is cancelled.
                        jobs.cancel_scope.deadline = trio.current_time() + 5
                finally:
                    # Closed to new jobs; the pool may take a while yet to close.
                    self._jobs = None
        except Exception as exc:
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                logger.exception("the portal's trio thread failed")

    def _spawn(self, job: _Job) -> None:
        """Run in the trio thread (a ``run_sync_soon`` callback): it must never raise,
        or the whole trio run crashes; a job that cannot start fails itself."""
        jobs = self._jobs
        try:
            if jobs is None:
                raise RuntimeError("the jobs nursery is closed")
            jobs.start_soon(self._run_job, job)
        except RuntimeError:
            self._finish(job, PoolClosedError("the portal closed before the call could start"))

    def _finish(self, job: _Job, error: BaseException | None) -> None:
        """Hand ``job``'s outcome to its caller (at most once)."""
        with self._lock:
            if job not in self._pending:
                return  # already answered (by _mark_dead)
            self._pending.discard(job)
        if error is not None:
            job.error = error
        job.done.release()

    async def _run_job(self, job: _Job) -> None:
        try:
            with trio.CancelScope() as scope, carried(job.context):
                job.scope = scope
                if job.cancelled:
                    scope.cancel()
                if job.timeout is not None:
                    scope.deadline = trio.current_time() + job.timeout
                job.result = await job.fn(*job.args)
            if scope.cancelled_caught:
                job.error = _cancelled_error(job)
        except Exception as exc:
            # The pool's own methods raise only MCPPoolError; a function given to
            # Portal.call may raise anything, and its caller gets it as it is.
            job.error = exc
        except BaseException:
            job.error = PoolClosedError("the portal closed while the call was in flight")
            raise
        finally:
            self._finish(job, None)

    def _thread_main(self, servers: Mapping[str, ServerConfig], options: PoolOptions) -> None:
        try:
            trio.run(self._main, servers, options)
        # Not inside trio any more (the run is over): nothing to re-raise for it.
        except BaseException as exc:  # noqa: ASYNC103
            if self._startup_error is None and not self._ready.is_set():
                self._startup_error = exc
            else:
                logger.error("the portal's trio thread crashed", exc_info=exc)
        finally:
            self._mark_dead("the portal is closed")
            self._ready.set()
            self._finished.set()

    def _mark_dead(self, why: str) -> None:
        """No call can be served from now on: fail every call still waiting."""
        with self._lock:
            if self._dead is None:
                self._dead = why
            stranded, self._pending = self._pending, set()
        # Taking a job out of _pending (under the lock) is what entitles one to answer it.
        for job in stranded:
            if job.error is None:
                job.error = PoolClosedError(f"{why}; the call was not answered")
            job.done.release()

    # -- the calling side -----------------------------------------------------------

    def _call(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        timeout: float | None,
        *,
        wait: Callable[[_Job], None] | None = None,
        server: str | _Unset | None = _UNSET,
    ) -> T:
        """Run ``fn(*args)`` in the trio thread. ``server`` names the server concerned
        (for a timeout's message); by default it is the first argument, if a string."""
        _check_timeout(timeout)
        if isinstance(server, _Unset):
            server = args[0] if args and isinstance(args[0], str) else None
        unusable = self._unusable()
        if unusable is not None and self._pid != os.getpid():
            raise PoolClosedError(unusable)
        if self._thread is not None and threading.get_ident() == self._thread.ident:
            raise RuntimeError(
                "a portal method was called from the portal's own trio thread, which would "
                "deadlock; inside trio, await the pool's methods instead"
            )
        job = _Job(fn, args, timeout, server)
        with self._lock:
            if self._dead is not None:
                raise PoolClosedError(self._dead)
            self._pending.add(job)
        token = self._token
        assert token is not None
        try:
            token.run_sync_soon(self._spawn, job)
        except trio.RunFinishedError:
            self._mark_dead("the portal is closed")
        try:
            if wait is not None:
                wait(job)
            elif threading.current_thread() is threading.main_thread():
                # Wake now and then so a Ctrl-C is seen even when the signal landed
                # on another thread; a released lock still returns at once.
                while not job.done.acquire(timeout=_SIGNAL_POLL_SECONDS):
                    pass
            else:
                job.done.acquire()
        except BaseException:
            # Interrupted (KeyboardInterrupt): abandon the call on the trio side too.
            try:
                token.run_sync_soon(job.cancel)
            except trio.RunFinishedError:
                pass
            raise
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def call(self, async_fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None) -> T:
        """Run ``await async_fn(*args)`` in the portal's trio thread; block until it is done.

        The portal's own methods are built on this; use it for anything else you want
        done in trio — typically several pool calls in one hop::

            async def both(pool_a, pool_b): ...
            portal.call(lambda: some_async_function(portal.pool, ...), timeout=5)

        ``timeout`` (seconds) cancels ``async_fn`` when it passes and raises
        :class:`ToolCallTimeout`. Any number of threads may call at once; the calls
        run concurrently in the portal's nursery. Whatever ``async_fn`` raises is
        raised here, as it is.
        """
        if not callable(async_fn):
            raise TypeError(f"portal.call needs an async function, not {type(async_fn).__name__}")
        return self._call(async_fn, args, timeout, server=None)

    @property
    def pool(self) -> MCPPool:
        """The portal's pool. Its methods are awaited in the portal's trio thread only —
        inside a function given to :meth:`call`; other threads use the portal's methods."""
        return self._running_pool()

    def _running_pool(self) -> MCPPool:
        pool, dead = self._pool, self._unusable()
        if pool is None or dead is not None:
            raise PoolClosedError(dead or "the portal is not running")
        return pool

    def list_tools(self, server: str, *, timeout: float | None = None) -> list[types.Tool]:
        """Every tool ``server`` offers (cached and coalesced like the pool's)."""
        return self._call(self._running_pool().list_tools, (server,), timeout)

    def tool_call(
        self,
        server: str,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        progress: ProgressFunction | None = None,
        idle_timeout: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> types.CallToolResult:
        """Call tool ``name`` on ``server`` and block until the result arrives.

        ``progress(progress, total, message)`` is called for each progress notification
        of this call, in order: a plain function in *this* thread (the one waiting for
        the call, so thread-bound UI code may use it), an async function in the portal's
        trio thread. ``idle_timeout`` and ``meta`` are the pool's (see :meth:`MCPPool.tool_call`).
        """
        check_progress_options(progress, idle_timeout)
        pool = self._running_pool()
        if progress is None or is_async_function(progress):
            on_progress = progress
            updates: queue.SimpleQueue[Any] | None = None
        else:
            updates = queue.SimpleQueue()
            on_progress = _enqueue(updates)

        async def tool_call(
            server: str, name: str, arguments: Mapping[str, Any] | None
        ) -> types.CallToolResult:
            try:
                return await pool.tool_call(
                    server, name, arguments, progress=on_progress, idle_timeout=idle_timeout, meta=meta
                )
            finally:
                if updates is not None:
                    updates.put(_CALL_OVER)

        wait = None
        if updates is not None:
            assert progress is not None
            wait = functools.partial(_deliver_progress, updates, progress)
        return self._call(tool_call, (server, name, arguments), timeout, wait=wait)

    def set_roots(
        self,
        roots: Iterable[Any] | RootsFunction,
        *,
        server: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Change the roots offered to ``server`` (every server if None); see :meth:`MCPPool.set_roots`."""
        pool = self._running_pool()

        async def set_roots(server: str | None, roots: Iterable[Any] | RootsFunction) -> None:
            await pool.set_roots(roots, server=server)

        self._call(set_roots, (server, roots), timeout)

    def tool_calls(
        self, calls: Iterable[ToolCall | tuple[Any, ...]], *, timeout: float | None = None
    ) -> list[types.CallToolResult | MCPPoolError]:
        """Run a batch in parallel; each entry a result or that call's error, in input order.

        With ``timeout``, a call still running when it passes is cancelled on its
        server and its entry is a :class:`ToolCallTimeout` naming that server; the
        calls that finished keep their results. A malformed entry raises
        :class:`InvalidArgumentsError` before any call starts.
        """
        _check_timeout(timeout)
        batch = coerce_batch(calls)
        seconds = math.inf if timeout is None else timeout
        return self._call(self._running_pool()._run_batch, (batch, seconds), None)

    def list_resources(self, server: str, *, timeout: float | None = None) -> list[types.Resource]:
        """Every resource ``server`` offers."""
        return self._call(self._running_pool().list_resources, (server,), timeout)

    def read_resource(
        self, server: str, uri: str, *, timeout: float | None = None
    ) -> types.ReadResourceResult:
        """Read the resource at ``uri`` from ``server``."""
        return self._call(self._running_pool().read_resource, (server, uri), timeout)

    def list_prompts(self, server: str, *, timeout: float | None = None) -> list[types.Prompt]:
        """Every prompt ``server`` offers."""
        return self._call(self._running_pool().list_prompts, (server,), timeout)

    def get_prompt(
        self,
        server: str,
        name: str,
        arguments: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> types.GetPromptResult:
        """Render prompt ``name`` from ``server``."""
        return self._call(self._running_pool().get_prompt, (server, name, arguments), timeout)

    def statistics(self) -> dict[str, ServerStatistics]:
        """The pool's per-server snapshot, taken in the trio thread (one hop)."""
        pool = self._running_pool()

        async def snapshot() -> dict[str, ServerStatistics]:  # noqa: ASYNC124 - the portal runs coroutines
            return pool.statistics()

        return self._call(snapshot, (), None)

    # -- resource templates, completions, subscriptions, server info, skills -------------
    # Thin: each is one crossing to the pool method of the same name.

    def list_resource_templates(
        self, server: str, *, timeout: float | None = None
    ) -> list[types.ResourceTemplate]:
        """Every resource template ``server`` offers."""
        return self._call(self._running_pool().list_resource_templates, (server,), timeout)

    def complete(
        self,
        server: str,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: str,
        value: str,
        *,
        context: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> types.Completion:
        """Completion suggestions; see :meth:`MCPPool.complete`."""
        pool = self._running_pool()

        async def complete(server: str) -> types.Completion:
            return await pool.complete(server, ref, argument, value, context=context)

        return self._call(complete, (server,), timeout)

    def subscribe_resource(
        self, server: str, uri: str, *, timeout: float | None = None
    ) -> BlockingResourceSubscription:
        """Follow changes of ``uri``: ``with`` it, then iterate (each step blocks); see
        :meth:`MCPPool.subscribe_resource`. ``timeout`` bounds subscribing."""
        return BlockingResourceSubscription(
            self._call, self._running_pool().subscribe_resource(server, uri), timeout
        )

    def server_info(self, server: str, *, timeout: float | None = None) -> ServerInfo:
        """What ``server`` said about itself; see :meth:`MCPPool.server_info`."""
        return self._call(self._running_pool().server_info, (server,), timeout)

    def list_skills(self, server: str, *, timeout: float | None = None) -> list[SkillEntry]:
        """The skills ``server`` offers; see :meth:`MCPPool.list_skills`."""
        return self._call(self._running_pool().list_skills, (server,), timeout)

    def read_skill(self, server: str, skill: str | SkillEntry, *, timeout: float | None = None) -> Skill:
        """One skill's verified ``SKILL.md``; see :meth:`MCPPool.read_skill`."""
        return self._call(self._running_pool().read_skill, (server, skill), timeout)

    def read_skill_file(
        self, server: str, skill: str | SkillEntry | Skill, path: str, *, timeout: float | None = None
    ) -> bytes:
        """One verified file of a skill; see :meth:`MCPPool.read_skill_file`."""
        return self._call(self._running_pool().read_skill_file, (server, skill, path), timeout)

    # -- closing ----------------------------------------------------------------------

    def _request_stop(self) -> None:
        """Ask the trio thread to close the pool (non-blocking, idempotent)."""
        with self._lock:
            if self._dead is None:
                self._dead = "the portal is closed"
        token, stop = self._token, self._stop
        if token is not None and stop is not None:
            try:
                token.run_sync_soon(stop.set)
            except trio.RunFinishedError:
                pass

    def close(self, timeout: float = 10.0) -> None:
        """Close the pool and end the thread; in-flight calls get :class:`PoolClosedError`.

        Returns once every session is closed and every stdio child is gone, or after
        ``timeout`` seconds (then a warning is logged, and :func:`shutdown_all` — run at
        interpreter exit — waits for the rest). Closing twice is fine.
        """
        if self._pid != os.getpid():
            return  # a forked child has no thread to stop
        thread = self._thread
        if thread is not None and threading.get_ident() == thread.ident:
            raise RuntimeError("a portal cannot be closed from its own trio thread")
        self._request_stop()
        if thread is not None:
            if not _wait(self._finished, timeout):
                # Still closing: stay in _live_portals so that shutdown_all() (and so
                # interpreter exit) waits for the sessions and children once more.
                logger.warning("the portal thread did not stop within %.1fs", timeout)
                return
            thread.join()  # returns at once: the thread's last act was setting _finished
        _live_portals.discard(self)

    def __enter__(self) -> Portal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- pre-warming and servers that come and go ----------------------------------------

    def connect(self, *servers: str, timeout: float | None = None) -> dict[str, MCPPoolError | None]:
        """Open the sessions of ``servers`` (every server when none is named) concurrently;
        ``{server: None or the error}``, never raising for a server that failed (see
        :meth:`MCPPool.connect`)."""
        pool = self._running_pool()
        return self.call(pool.connect, *servers, timeout=timeout)

    def add_server(self, name: str, config: ServerConfig, *, timeout: float | None = None) -> None:
        """Serve one more server from now on (see :meth:`MCPPool.add_server`)."""
        pool = self._running_pool()

        async def add() -> None:
            await pool.add_server(name, config)
            self._servers = pool.servers

        self.call(add, timeout=timeout)

    def remove_server(self, name: str, *, timeout: float | None = None) -> None:
        """Stop serving ``name``; its calls in flight, from any thread, fail with
        :class:`ServerRemovedError` (see :meth:`MCPPool.remove_server`)."""
        pool = self._running_pool()

        async def remove() -> None:
            try:
                await pool.remove_server(name)
            finally:
                self._servers = pool.servers

        self.call(remove, timeout=timeout)


def _wait(event: threading.Event, timeout: float) -> bool:
    """``event.wait(timeout)``; in the main thread it wakes now and then to see a Ctrl-C
    whose signal landed on another thread."""
    if threading.current_thread() is not threading.main_thread():
        return event.wait(timeout)
    deadline = time.monotonic() + timeout
    while not event.wait(max(0.0, min(_SIGNAL_POLL_SECONDS, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            return False
    return True


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError("timeout must be a positive number of seconds or None")


def _cancelled_error(job: _Job) -> MCPPoolError:
    """The error of a job whose scope was cancelled: interrupted, or out of time."""
    if job.cancelled:
        # Its caller was interrupted (Ctrl-C) and has gone; this is for the record.
        return PoolClosedError("the call was abandoned: its caller was interrupted")
    name = getattr(job.fn, "__name__", "the call")
    where = f" on server {job.server!r}" if job.server is not None else ""
    return ToolCallTimeout(f"{name}{where} did not finish within {job.timeout:g}s", server=job.server)


def _enqueue(updates: queue.SimpleQueue[Any]) -> ProgressFunction:
    def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.put((progress, total, message))

    return on_progress


def _deliver_progress(updates: queue.SimpleQueue[Any], progress: Callable[..., Any], job: _Job) -> None:
    """Wait for ``job`` in the caller's thread, calling ``progress`` for each update meanwhile."""
    while True:
        try:
            update = updates.get(timeout=_SIGNAL_POLL_SECONDS)
        except queue.Empty:
            # Also wakes now and then for a Ctrl-C, and for a portal that died under us.
            if job.done.acquire(blocking=False):
                return
            continue
        if update is _CALL_OVER:
            job.done.acquire()
            return
        try:
            progress(*update)
        except Exception as exc:
            logger.warning("the progress function raised %s (ignored)", type(exc).__name__)


def start_portal(
    servers: Mapping[str, ServerConfig], options: PoolOptions | None = None, /, **settings: Any
) -> Portal:
    """Start a portal thread running a pool of ``servers``; return once it is ready.

    Takes what :func:`open_mcp_pool` takes (a :class:`PoolOptions`, or its fields as
    keyword arguments); a configuration error is raised here, in the caller's thread.
    """
    options = PoolOptions.of(options, settings)
    portal = Portal()
    thread = threading.Thread(
        target=portal._thread_main, args=(servers, options), name="trio-mcp-portal", daemon=True
    )
    portal._thread = thread
    thread.start()
    portal._ready.wait()
    if portal._startup_error is not None:
        thread.join()
        error = portal._startup_error
        portal._startup_error = None
        raise error
    _live_portals.add(portal)
    return portal


def shutdown_all(portals: Iterable[Portal] | None = None, timeout: float = 10.0) -> None:
    """Close ``portals`` concurrently — every live portal of this process by default —
    waiting at most ``timeout`` seconds in all. Also runs at interpreter exit."""
    chosen = list(_live_portals if portals is None else portals)
    for portal in chosen:
        portal._request_stop()
    deadline = time.monotonic() + timeout
    for portal in chosen:
        portal.close(timeout=max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    # The portal threads do not exist in a forked child (each portal knows it by its
    # process id); the child's exit must not wait for them.
    _live_portals.clear()


atexit.register(shutdown_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
