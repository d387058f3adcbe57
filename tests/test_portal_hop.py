"""The portal's hop (issue 15): long-lived workers, one cancel scope per worker, lock-free
job tracking, shared wake-ups, and plain functions run right in the wake-up callback.

Each test pins down a guarantee the cheaper hop must keep: a job sees neither the
context, the deadline nor the cancellation of the job that ran before it on the same
worker; any number of threads get their own answers; and a portal that dies fails every
call pending or arriving, whichever step it had reached.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
import trio

import trio_mcp
from trio_mcp import result_text
from trio_mcp._portal import _IDLE_WORKERS, _Job

from .conftest import stdio_server

_seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="fresh")


@pytest.fixture
def portal() -> Iterator[trio_mcp.Portal]:
    with trio_mcp.start_portal({}) as portal:
        yield portal


def spy_jobs(portal: trio_mcp.Portal) -> list[_Job]:
    """Record every job the trio thread starts, in order."""
    jobs: list[_Job] = []
    spawn = portal._spawn

    def spy(job: _Job) -> None:
        jobs.append(job)
        spawn(job)

    portal._spawn = spy  # type: ignore[method-assign]
    return jobs


async def whoami() -> trio.lowlevel.Task:
    await trio.lowlevel.checkpoint()
    return trio.lowlevel.current_task()


def test_a_job_starts_from_a_fresh_context_on_a_reused_worker(portal: trio_mcp.Portal) -> None:
    async def leave_a_mark() -> tuple[trio.lowlevel.Task, str]:
        before = _seen.get()
        _seen.set("dirty")
        return trio.lowlevel.current_task(), before

    first = portal.call(leave_a_mark)
    second = portal.call(leave_a_mark)
    # The same worker ran both (one caller at a time), yet the second saw a clean context.
    assert second[0] is first[0]
    assert (first[1], second[1]) == ("fresh", "fresh")


class _Big:
    """Stands for a large answer or argument."""


def test_an_idle_worker_holds_no_answer_nor_argument(portal: trio_mcp.Portal) -> None:
    async def answer(argument: _Big) -> _Big:
        await trio.lowlevel.checkpoint()
        return _Big()

    for _ in range(2):  # the first job of a new worker, then one handed to it while idle
        argument = _Big()
        gone = [weakref.ref(argument), weakref.ref(portal.call(answer, argument))]
        del argument
        # Freed as soon as the caller drops them (no garbage collection needed).
        assert [ref() for ref in gone] == [None, None]

    async def fail(argument: _Big) -> None:
        raise ValueError("no answer")

    async def stall(argument: _Big) -> None:
        await trio.sleep_forever()

    for call in (lambda arg: portal.call(fail, arg), lambda arg: portal.call(stall, arg, timeout=0.05)):
        argument = _Big()
        gone = [weakref.ref(argument)]
        with pytest.raises((ValueError, trio_mcp.ToolCallTimeout)):
            call(argument)
        del argument
        assert gone[0]() is None


def test_a_timeout_ends_with_its_call(portal: trio_mcp.Portal) -> None:
    async def quick() -> trio.lowlevel.Task:
        return trio.lowlevel.current_task()

    async def nap() -> trio.lowlevel.Task:
        await trio.sleep(0.5)
        return trio.lowlevel.current_task()

    worker = portal.call(quick, timeout=0.1)
    # The worker's scope had a 0.1 s deadline for the quick job; the nap outlives it.
    assert portal.call(nap) is worker
    with pytest.raises(trio_mcp.ToolCallTimeout, match=r"did not finish within 0\.1s"):
        portal.call(trio.sleep_forever, timeout=0.1)
    # A spent scope is replaced: the next job on that worker runs normally.
    assert portal.call(nap) is worker


def test_a_late_cancel_leaves_the_next_job_on_the_worker_alone(portal: trio_mcp.Portal) -> None:
    jobs = spy_jobs(portal)
    worker = portal.call(whoami)

    async def cancel_the_previous_job() -> trio.lowlevel.Task:
        # What the trio thread does when an interrupted caller abandons its call,
        # arriving after that call had finished, while another job runs.
        jobs[0].cancel()
        return await whoami()

    assert portal.call(cancel_the_previous_job) is worker

    async def cancelled_while_shielded() -> str:
        with trio.CancelScope(shield=True):
            jobs[-1].cancel()  # this very job: its worker's scope is cancelled
            await trio.lowlevel.checkpoint()
        return "finished anyway"

    # The job returns without another checkpoint, so its answer stands; the worker
    # then takes a fresh scope, and its next job is not cancelled.
    assert portal.call(cancelled_while_shielded) == "finished anyway"
    assert portal.call(whoami) is worker


def test_a_plain_function_runs_in_the_wake_up_and_its_error_comes_back(portal: trio_mcp.Portal) -> None:
    assert portal._call_sync(threading.get_ident) == portal._thread.ident  # type: ignore[union-attr]

    def broken() -> None:
        raise KeyError("from the trio thread")

    # Raised out of a run_sync_soon callback, it would crash the trio run.
    with pytest.raises(KeyError, match="from the trio thread"):
        portal._call_sync(broken)
    assert portal.statistics() == {}
    assert not portal.closed


def test_many_threads_many_calls_each_get_their_own_answers() -> None:
    fds = psutil.Process().num_fds()
    threads, rounds = 16, 60
    with trio_mcp.start_portal({"s": stdio_server()}) as portal:

        async def echo(value: tuple[int, int]) -> tuple[int, int]:
            await trio.lowlevel.checkpoint()
            return value

        def caller(index: int) -> list[str]:
            wrong = []
            for i in range(rounds):
                if portal.call(echo, (index, i)) != (index, i):
                    wrong.append(f"call {index}/{i}")
                if portal.statistics()["s"].state not in set(trio_mcp.ServerState):
                    wrong.append(f"statistics {index}/{i}")
                if i % 10 == 0:
                    text = f"{index}-{i}"
                    if result_text(portal.tool_call("s", "echo", {"text": text})) != text:
                        wrong.append(f"tool_call {text}")
            return wrong

        results: list[list[str]] = [[] for _ in range(threads)]
        workers = [
            threading.Thread(target=lambda i=i: results.__setitem__(i, caller(i))) for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        main_wrong = caller(threads)  # the main thread calls meanwhile (its own wake-ups)
        for worker in workers:
            worker.join(60)
        assert not any(worker.is_alive() for worker in workers)
        assert results == [[]] * threads and main_wrong == []
        assert not portal._pending and not portal._inbox
        assert 1 <= len(portal._idle) <= _IDLE_WORKERS
    assert psutil.Process().num_fds() == fds


class _Injected(BaseException):
    """An asynchronous exception raised in a caller thread (PyThreadState_SetAsyncExc)."""


def test_a_wake_up_that_failed_to_queue_is_queued_by_the_next_caller(portal: trio_mcp.Portal) -> None:
    token = portal._token
    assert token is not None

    class Flaky:
        """Raises once, in place of queueing the first wake-up."""

        failed = False

        def run_sync_soon(self, fn: Callable[..., object], *args: Any) -> None:
            if not self.failed and fn == portal._drain:
                self.failed = True
                raise _Injected
            token.run_sync_soon(fn, *args)

    portal._token = Flaky()  # type: ignore[assignment]
    outcomes: list[object] = []

    async def answer() -> str:
        return "answered"

    def call() -> None:
        try:
            outcomes.append(portal.call(answer))
        except _Injected as error:
            outcomes.append(error)

    for _ in range(2):  # threads other than the main one share wake-ups
        thread = threading.Thread(target=call)
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), "the second call waited for a wake-up nobody queued"
    assert isinstance(outcomes[0], _Injected) and outcomes[1] == "answered"
    portal._token = token


def test_a_dying_portal_fails_every_pending_and_arriving_call(caplog: pytest.LogCaptureFixture) -> None:
    portal = trio_mcp.start_portal({"s": stdio_server()})
    portal.tool_call("s", "echo", {"text": "warm"})
    outcomes: list[BaseException | object] = []
    record = threading.Lock()
    stop_arriving = threading.Event()

    def outcome_of(call: Callable[[], object]) -> None:
        try:
            got: object = call()
        except BaseException as error:
            got = error
        with record:
            outcomes.append(got)

    async def anoop() -> None:
        pass

    def keep_arriving() -> None:
        # Calls that arrive while the run ends: some reach the trio thread, some find
        # the wake-up refused, some find the portal dead; every one must come back.
        while not stop_arriving.is_set():
            try:
                portal.call(anoop)
            except trio_mcp.PoolClosedError as error:
                with record:
                    outcomes.append(error)
                return

    pending: list[Callable[[], Any]] = [lambda: portal.tool_call("s", "slow", {"seconds": 60})] * 10
    pending += [lambda: portal.call(trio.sleep_forever)] * 10
    callers = [threading.Thread(target=outcome_of, args=(call,)) for call in pending]
    callers += [threading.Thread(target=keep_arriving) for _ in range(4)]
    for caller in callers:
        caller.start()
    while len(portal._pending) < len(pending):  # all submitted (the arriving ones come and go)
        time.sleep(0.01)

    def boom() -> None:
        raise RuntimeError("the trio thread breaks")

    assert portal._token is not None
    with caplog.at_level(logging.ERROR, logger="trio_mcp"):
        portal._token.run_sync_soon(boom)  # a callback that raises crashes the whole run
        assert portal._finished.wait(30)
    stop_arriving.set()
    for caller in callers:
        caller.join(30)
    assert not any(caller.is_alive() for caller in callers)
    assert len(outcomes) == len(pending) + 4
    assert all(isinstance(o, trio_mcp.PoolClosedError) for o in outcomes), outcomes
    assert "crashed" in caplog.text
    assert portal.closed and not portal._pending
    with pytest.raises(trio_mcp.PoolClosedError):
        portal.call(anoop)
    with pytest.raises(trio_mcp.PoolClosedError):
        portal.statistics()
    portal.close()
