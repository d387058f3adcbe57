"""The portal: a thread that runs trio and a pool, for callers in plain threads.

:func:`start_portal` starts one daemon thread that runs ``trio.run``, opens the pool
in it and returns once the pool is ready (or raises the startup error in the
caller). Each blocking call crosses into that thread exactly once: the caller
queues a job with ``TrioToken.run_sync_soon`` (the cheapest hand-off trio has — no
memory-channel round trip, no ``Future``), the trio thread hands it to a worker task
of the portal's job nursery, and the worker hands the answer back by releasing a lock
the caller is blocked on. Calls from many threads therefore run concurrently inside
the nursery.

A hop costs little beyond trio's own cross-thread wake-up: workers are long-lived
(an idle one is woken with ``reschedule``, no task is started per call), a worker runs
its jobs inside one cancel scope that is replaced only after it was cancelled (a
timeout sets its deadline), and neither side takes a lock to track jobs. Each job
still starts from a fresh copy of the nursery's context, as a new task would. A job
that is plain synchronous work (:meth:`Portal.statistics`) runs right in the
``run_sync_soon`` callback.

No call can wait forever: every submitted job is tracked, and if the trio thread
ends for any reason the jobs still pending are failed with :class:`PoolClosedError`.
"""

from __future__ import annotations

import atexit
import collections
import contextvars
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
# How many idle worker tasks the trio thread keeps for the next calls; a worker that
# finishes a job when this many are idle ends.
_IDLE_WORKERS = 32
# Why a portal serves no calls in a forked child.
_FORKED = (
    "this portal was started in another process (before a fork); its thread "
    "does not exist here: start a new portal in this process"
)
# Put on a call's progress queue when the call is over.
_CALL_OVER = object()


class _Unset:
    """The type of :data:`_UNSET`: an argument not given."""


_UNSET = _Unset()


class _Job:
    """One blocking call: what to run, and the lock its caller waits on.

    ``fn`` is an async function, or with ``sync`` a plain one run in the trio thread's
    ``run_sync_soon`` callback (it must not block). The job's answer (``result`` or
    ``error``) is handed over by whoever takes it out of :attr:`Portal._pending`.
    """

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
        "sync",
        "timeout",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float | None,
        server: str | None,
        sync: bool = False,
    ):
        self.fn = fn
        self.server = server
        self.args = args
        self.timeout = timeout
        self.sync = sync
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        # The cancel scope of the worker running this job, while it runs.
        self.scope: trio.CancelScope | None = None
        self.cancelled = False
        #: The caller's OpenTelemetry context: its current span parents the call's spans.
        self.context = caller_context()

    def cancel(self) -> None:
        """Run in the trio thread: abandon the call (its caller was interrupted)."""
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class _Worker:
    """A worker task of a portal's job nursery (trio thread only)."""

    __slots__ = ("idle", "job", "task")

    def __init__(self, task: trio.lowlevel.Task, idle: list[_Worker]):
        self.task = task
        self.idle = idle
        self.job: _Job | None = None  # handed over by Portal._spawn while idle

    def abort(self, _: Any) -> trio.lowlevel.Abort:
        """Cancelled while idle (the nursery is closing)."""
        self.idle.remove(self)
        return trio.lowlevel.Abort.SUCCEEDED


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
        # The jobs submitted and not yet answered. Neither side takes a lock for it: the
        # one whose set.remove()/pop() takes a job out (atomic under the GIL) answers it.
        self._pending: set[_Job] = set()
        self._lock = threading.Lock()  # only for setting _dead
        # The jobs on their way to the trio thread, and whether a _drain is queued
        # there that will still look at them (then a caller need not queue another).
        self._inbox: collections.deque[_Job] = collections.deque()
        self._drain_queued = False
        # Trio thread only: the idle workers (most recent last), and the context each
        # job starts from (a copy of it, as a task started in the job nursery would).
        self._idle: list[_Worker] = []
        self._context: contextvars.Context | None = None
        self._closing = False
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
            return _FORKED
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
                        self._context = trio.lowlevel.current_task().context.copy()
                        self._token = trio.lowlevel.current_trio_token()
                        self._ready.set()
                        await self._stop.wait()
                        pool.close()
                        # The idle workers end; a job still arriving starts a worker that
                        # runs it (it fails fast: the pool is closed) and ends.
                        self._closing = True
                        idle = list(self._idle)
                        self._idle.clear()
                        for worker in idle:
                            trio.lowlevel.reschedule(worker.task)  # its job is None: it ends
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

    def _drain(self) -> None:
        """Run in the trio thread (a ``run_sync_soon`` callback): start every job of the inbox."""
        # First, so that a job added from now on makes its caller queue another _drain.
        self._drain_queued = False
        inbox = self._inbox
        while inbox:
            self._spawn(inbox.popleft())

    def _spawn(self, job: _Job) -> None:
        """Run in the trio thread (a ``run_sync_soon`` callback): it must never raise,
        or the whole trio run crashes; a job that cannot start fails itself."""
        jobs = self._jobs
        if jobs is None:
            job.error = PoolClosedError("the portal closed before the call could start")
        elif job.sync:
            try:
                job.result = job.fn(*job.args)
            except BaseException as exc:  # noqa: ASYNC103 - a plain function: no Cancelled here
                job.error = exc
        elif self._idle:
            worker = self._idle.pop()
            worker.job = job
            trio.lowlevel.reschedule(worker.task)
            return
        else:
            try:
                jobs.start_soon(self._work, job)
                return
            except RuntimeError:  # the nursery is closed to new tasks
                job.error = PoolClosedError("the portal closed before the call could start")
        self._finish(job)

    def _finish(self, job: _Job) -> None:
        """Hand ``job``'s outcome to its caller (at most once)."""
        try:
            self._pending.remove(job)
        except KeyError:
            return  # already answered (by _mark_dead)
        job.done.release()

    async def _work(self, job: _Job) -> None:
        """A worker task of the job nursery: runs ``job``, then each job it is handed
        while idle, until the portal closes or enough other workers are idle."""
        worker = _Worker(trio.lowlevel.current_task(), self._idle)
        worker.job = job
        del job  # a worker holds a job only while it runs it: not its answer after
        while worker.job is not None:
            await self._serve(worker)

    async def _serve(self, worker: _Worker) -> None:
        """Run ``worker.job`` and the next ones inside one cancel scope, until it is
        spent (a job was cancelled, or timed out); leave the next job in ``worker.job``
        (None: the worker ends).

        One scope for many jobs (entering a ``CancelScope`` costs as much as the rest
        of a hop): a job's timeout is the scope's deadline while it runs, and
        :meth:`_Job.cancel` cancels the scope only while its job runs in it.
        """
        running: _Job | None = None
        error: BaseException | None = None
        try:
            with trio.CancelScope() as scope:  # noqa: ASYNC912 (the jobs and the idle wait await)
                while (job := worker.job) is not None:
                    worker.job = None
                    if job.cancelled:
                        job.error = _cancelled_error(job)  # abandoned before it started
                    else:
                        running = job
                        job.scope = scope
                        if job.timeout is not None:
                            scope.deadline = trio.current_time() + job.timeout
                        try:
                            with carried(job.context):
                                job.result = await job.fn(*job.args)
                        except Exception as exc:
                            # The pool's own methods raise only MCPPoolError; a function
                            # given to Portal.call may raise anything, and its caller
                            # gets it as it is.
                            job.error = exc
                        running = job.scope = None
                        if job.timeout is not None:
                            scope.deadline = math.inf
                    self._finish(job)
                    job = None  # the caller may be done with the answer: let it go
                    if scope.cancel_called:
                        break  # spent (a deadline passed as the job ended): take a new one
                    await self._next_job(worker)
                else:
                    return
        except Exception as exc:
            # An exception group out of the job, from which the scope took its Cancelled.
            if running is None:
                raise
            error = exc
        except BaseException:
            # Cancelled by the nursery (the portal is closing), or worse: the job ends
            # with the worker.
            if running is not None:
                running.error = PoolClosedError("the portal closed while the call was in flight")
                running.scope = None
                self._finish(running)
            raise
        if running is not None:
            # The scope caught the Cancelled meant for the running job.
            running.error = error if error is not None else _cancelled_error(running)
            running.scope = None
            self._finish(running)
        job = running = error = None  # hold no answer while idle
        await self._next_job(worker)

    async def _next_job(self, worker: _Worker) -> None:
        """Wait, idle, until :meth:`_spawn` hands ``worker`` a job (in ``worker.job``);
        return at once, with none, when the worker is to end."""
        if self._closing or len(self._idle) >= _IDLE_WORKERS:
            return
        # The next job starts from a fresh context, as it would in a task of its own.
        assert self._context is not None
        worker.task.context = self._context.copy()
        self._idle.append(worker)
        await trio.lowlevel.wait_task_rescheduled(worker.abort)

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
        """No call can be served from now on: fail every call still waiting.

        Called once the trio run is over (no worker runs any more), so every job still
        in :attr:`_pending` is one nobody else will answer.
        """
        with self._lock:
            if self._dead is None:
                self._dead = why
        self._inbox.clear()
        pending = self._pending
        while True:
            try:
                job = pending.pop()
            except KeyError:
                return
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
        result: T = self._submit(_Job(fn, args, timeout, server), wait)
        return result

    def _call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the plain function ``fn(*args)`` in the trio thread, right in the hop's
        ``run_sync_soon`` callback (no task): for quick work that neither blocks nor awaits."""
        result: T = self._submit(_Job(fn, args, None, None, sync=True), None)
        return result

    def _submit(self, job: _Job, wait: Callable[[_Job], None] | None) -> Any:
        """Hand ``job`` to the trio thread, wait for its answer and return (or raise) it."""
        if self._pid != os.getpid():
            raise PoolClosedError(_FORKED)
        thread = self._thread
        if thread is not None and threading.get_ident() == thread.ident:
            raise RuntimeError(
                "a portal method was called from the portal's own trio thread, which would "
                "deadlock; inside trio, await the pool's methods instead"
            )
        dead = self._dead
        if dead is not None:
            raise PoolClosedError(dead)
        main = threading.current_thread() is threading.main_thread()
        token = self._token
        assert token is not None
        # From here the job is answered, whatever happens: by the trio thread, or by
        # _mark_dead once the run is over (it takes every job still in _pending).
        self._pending.add(job)
        try:
            try:
                self._queue(job, token, main)
            except trio.RunFinishedError:
                self._mark_dead("the portal is closed")
            if wait is not None:
                wait(job)
            elif main:
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
        error = job.error
        if error is None:
            return job.result
        # Raised from a frame that holds neither the job nor the error: no reference
        # cycle (error -> traceback -> this frame -> error) keeps the call's arguments
        # and answer alive until the next garbage collection.
        del job
        try:
            raise error
        finally:
            del error

    def _queue(self, job: _Job, token: trio.lowlevel.TrioToken, main: bool) -> None:
        """Put ``job`` in the inbox and make sure a :meth:`_drain` will take it.

        A wake-up of the trio thread (``run_sync_soon``) is queued only when none is
        pending already: under load, most calls skip that system call. The main thread
        always queues one: a Ctrl-C there could land between claiming the wake-up and
        queueing it, and leave the other threads' jobs waiting for a wake-up that never
        comes. Raises ``trio.RunFinishedError`` once the trio run is over.
        """
        self._inbox.append(job)
        if main:
            token.run_sync_soon(self._drain)
        elif not self._drain_queued:
            self._drain_queued = True
            try:
                token.run_sync_soon(self._drain)
            except BaseException:
                # None was queued. If the run is over, _mark_dead (next) fails the jobs
                # of the callers that relied on this wake-up meanwhile; if this thread
                # was interrupted, the next caller queues one.
                self._drain_queued = False
                raise

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
        if progress is None and idle_timeout is None and meta is None:
            return self._call(pool.tool_call, (server, name, arguments), timeout)
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
        return self._call_sync(self._running_pool().statistics)

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
