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
from ._handlers import Handlers, ProgressFunction, RootsFunction, check_progress_options, is_async_function
from ._info import ServerInfo
from ._pool import MCPPool, ToolCall, coerce_batch, open_mcp_pool
from ._server import ServerStatistics
from ._skills import Skill, SkillEntry
from ._subscriptions import BlockingResourceSubscription
from ._toolset import Message, ToolConfig, Toolset, final_message, next_loop_step

__all__ = ["BlockingToolset", "Portal", "close_portals", "shutdown_all", "start_portal"]

logger = logging.getLogger("trio_mcp")

T = TypeVar("T")

_live_portals: weakref.WeakSet[Portal] = weakref.WeakSet()
# How often a main-thread caller checks for KeyboardInterrupt while it waits.
_SIGNAL_POLL_SECONDS = 0.05
# Put on a call's progress queue when the call is over.
_CALL_OVER = object()


class _Job:
    """One blocking call: what to run, and the lock its caller waits on."""

    __slots__ = ("args", "cancelled", "done", "error", "fn", "result", "scope", "timeout")

    def __init__(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], timeout: float | None):
        self.fn = fn
        self.args = args
        self.timeout = timeout
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.scope: trio.CancelScope | None = None
        self.cancelled = False

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
        self._dead: str | None = None  # why no call can be served any more
        self._pid = os.getpid()
        self._ready = threading.Event()
        # Set as the portal thread's last act. Closing waits on this rather than on
        # Thread.join: on Python 3.11 a Ctrl-C during join() marks a thread that is
        # still running as stopped (bpo-45274), after which join() returns at once.
        self._finished = threading.Event()
        self._startup_error: BaseException | None = None
        self._servers: tuple[str, ...] = ()

    def __repr__(self) -> str:
        state = self._dead or "open"
        return f"<Portal servers={list(self._servers)!r} state={state!r}>"

    @property
    def servers(self) -> tuple[str, ...]:
        """The names of the configured servers."""
        return self._servers

    @property
    def closed(self) -> bool:
        return self._dead is not None

    # -- the trio side ---------------------------------------------------------------

    async def _main(self, pool_kwargs: dict[str, Any]) -> None:
        try:
            async with open_mcp_pool(**pool_kwargs) as pool:
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
            with trio.CancelScope() as scope:
                job.scope = scope
                if job.cancelled:
                    scope.cancel()
                if job.timeout is not None:
                    scope.deadline = trio.current_time() + job.timeout
                job.result = await job.fn(*job.args)
            if scope.cancelled_caught:
                job.error = _cancelled_error(job)
        except MCPPoolError as pool_error:
            job.error = pool_error
        except Exception as exc:
            internal = MCPPoolError(f"internal error in the portal: {type(exc).__name__}")
            internal.__cause__ = exc
            job.error = internal
        except BaseException:
            job.error = PoolClosedError("the portal closed while the call was in flight")
            raise
        finally:
            self._finish(job, None)

    def _thread_main(self, pool_kwargs: dict[str, Any]) -> None:
        try:
            trio.run(self._main, pool_kwargs)
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
    ) -> T:
        _check_timeout(timeout)
        if self._pid != os.getpid():
            raise PoolClosedError(
                "this portal was started in another process (before a fork); its thread "
                "does not exist here: start a new portal in this process"
            )
        if self._thread is not None and threading.get_ident() == self._thread.ident:
            raise RuntimeError(
                "a portal method was called from the portal's own trio thread, which would "
                "deadlock; inside trio, await the pool's methods instead"
            )
        job = _Job(fn, args, timeout)
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

    def _running_pool(self) -> MCPPool:
        pool, dead = self._pool, self._dead
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

    def toolset(self, config: ToolConfig | str) -> BlockingToolset:
        """The LLM tool layer for one :class:`ToolConfig` (or a registered alias), blocking."""
        return BlockingToolset(self, self._running_pool().toolset(config))

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
    server = job.args[0] if job.args and isinstance(job.args[0], str) else None
    name = getattr(job.fn, "__name__", "the call")
    return ToolCallTimeout(
        f"{name} on server {server!r} did not finish within {job.timeout:g}s", server=server
    )


class BlockingToolset:
    """A :class:`Toolset` for threaded code: the same methods, blocking, through a portal."""

    def __init__(self, portal: Portal, toolset: Toolset) -> None:
        self._portal = portal
        self._toolset = toolset

    def __repr__(self) -> str:
        return f"<BlockingToolset alias={self.alias!r}>"

    @property
    def alias(self) -> str:
        return self._toolset.alias

    @property
    def config(self) -> ToolConfig:
        return self._toolset.config

    def tool_schemas(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """The tools this config offers, as OpenAI function tools."""
        return self._portal._call(self._toolset.tool_schemas, (), timeout)

    has_tool_calls = staticmethod(Toolset.has_tool_calls)
    tool_call_count = staticmethod(Toolset.tool_call_count)

    def process_completion_response(self, response: Any, *, timeout: float | None = None) -> list[Message]:
        """Run the response's tool calls in parallel (in the portal); return the messages."""
        return self._portal._call(self._toolset.process_completion_response, (response,), timeout)

    def refuse_completion_response(self, response: Any) -> list[Message]:
        """Answer every tool call with a budget-exhausted refusal; nothing is run."""
        return self._toolset.refuse_completion_response(response)

    def run_tool_loop(
        self, call_model: Callable[[list[Message], list[dict[str, Any]]], Any], messages: Iterable[Message]
    ) -> list[Message]:
        """The blocking form of :func:`run_tool_loop`: ``call_model`` runs in your thread."""
        conversation = list(messages)
        tools = self.tool_schemas()
        turns, refused = 0, False
        while True:
            response = call_model(conversation, tools)
            step = next_loop_step(
                self.config.max_tool_call_turns, turns, refused, self.has_tool_calls(response)
            )
            if step == "answer":
                conversation.append(final_message(response))
                return conversation
            if step == "run":
                conversation.extend(self.process_completion_response(response))
                turns += 1
                continue
            conversation.extend(self.refuse_completion_response(response))
            if step == "stop":
                return conversation
            refused = True


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
    servers: Mapping[str, ServerConfig],
    *,
    variables: Mapping[str, str] | None = None,
    connect_timeout: float = 10.0,
    call_timeout: float = 60.0,
    validate_arguments: bool = True,
    tool_configs: Iterable[ToolConfig] = (),
    handlers: Handlers | None = None,
) -> Portal:
    """Start a portal thread running a pool of ``servers``; return once it is ready.

    Takes the same arguments as :func:`open_mcp_pool`; a configuration error is
    raised here, in the caller's thread.
    """
    portal = Portal()
    kwargs: dict[str, Any] = {
        "servers": servers,
        "variables": variables,
        "connect_timeout": connect_timeout,
        "call_timeout": call_timeout,
        "validate_arguments": validate_arguments,
        "tool_configs": tuple(tool_configs),
        "handlers": handlers,
    }
    thread = threading.Thread(target=portal._thread_main, args=(kwargs,), name="trio-mcp-portal", daemon=True)
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


def close_portals(portals: Iterable[Portal], timeout: float = 10.0) -> None:
    """Close several portals concurrently, waiting at most ``timeout`` seconds in all."""
    portals = list(portals)
    for portal in portals:
        portal._request_stop()
    deadline = time.monotonic() + timeout
    for portal in portals:
        portal.close(timeout=max(0.0, deadline - time.monotonic()))


def shutdown_all(timeout: float = 10.0) -> None:
    """Close every live portal in this process (also run at interpreter exit)."""
    close_portals(list(_live_portals), timeout=timeout)


def _after_fork_in_child() -> None:
    # The portal threads do not exist in a forked child; make every call say so.
    for portal in list(_live_portals):
        portal._dead = "this portal belongs to the parent process (fork)"
    _live_portals.clear()


atexit.register(shutdown_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
