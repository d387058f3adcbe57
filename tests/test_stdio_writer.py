"""The stdio transport's write path: messages go to the pipe from the sender's own task
when it takes them whole; longer ones are finished, in order, by the writer task."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_mcp
from trio_mcp import result_text

from .conftest import calls_timing_out_behind_a_freeze, stdio_server

MiB = 1 << 20


async def test_messages_longer_than_the_pipe_keep_their_order() -> None:
    """Big arguments are written in pieces; small messages sent meanwhile wait their turn,
    so no line is interleaved with another (each call gets its own text back)."""
    texts = [("x" if i % 2 else "y") * (2 * MiB if i % 3 == 0 else 10 + i) for i in range(12)]
    results: dict[int, str] = {}
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}, call_timeout=60) as pool:

        async def call(i: int) -> None:
            results[i] = result_text(await pool.tool_call("s", "echo", {"text": texts[i]}))

        async with trio.open_nursery() as nursery:
            for i in range(len(texts)):
                nursery.start_soon(call, i)
        assert results == dict(enumerate(texts))
        assert pool.statistics()["s"].connects == 1


async def test_a_caller_cancelled_mid_write_leaves_the_session_usable() -> None:
    """However far a long message got when its caller gave up, the rest of it is
    written, so the next message starts on a line of its own."""
    big = "z" * (4 * MiB)
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}, call_timeout=60) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})
        for _ in range(3):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pool.tool_call, "s", "echo", {"text": big})
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
            assert result_text(await pool.tool_call("s", "echo", {"text": "after"})) == "after"
        assert pool.statistics()["s"].connects == 1


@pytest.mark.parametrize("how", ["remove_server", "close"])
async def test_ending_a_server_that_stopped_reading_does_not_wait_for_its_pipe(how: str) -> None:
    """Calls queued behind a full pipe fail at once when their server is removed or the
    pool closes (their unsent messages are dropped, not left for the SDK's shielded
    writes to wait on)."""
    big = "x" * 300_000  # several times the pipe's buffer
    failed_at: list[float] = []
    async with trio_mcp.open_mcp_pool({"s": stdio_server(stderr="discard")}, call_timeout=60) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})

        async def call(name: str, arguments: dict[str, object]) -> None:
            with pytest.raises(trio_mcp.PoolClosedError):  # ServerRemovedError is one
                await pool.tool_call("s", name, arguments)
            failed_at.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "freeze", {"seconds": 30})
            await trio.sleep(0.3)  # the server is frozen; what follows fills its stdin
            for _ in range(4):
                nursery.start_soon(call, "echo", {"text": big})
            await trio.testing.wait_all_tasks_blocked(0.05)
            ending = trio.current_time()
            if how == "close":
                pool.close()
            else:
                with trio.fail_after(15):  # the frozen child is ended after its exit grace
                    await pool.remove_server("s")
    assert len(failed_at) == 5
    # Before the fix the callers waited ~4.5 s (the SDK's 5 s limit on its shielded writes).
    assert max(failed_at) - ending < 2.0


async def test_calls_time_out_on_time_behind_a_full_pipe() -> None:
    """A call that times out while its server reads nothing ends at its call_timeout:
    the courtesy cancel the SDK then sends (shielded, for up to 5 s) is queued behind the
    full pipe, not waited for."""
    big = "x" * 300_000  # several times the pipe's buffer
    async with trio_mcp.open_mcp_pool({"s": stdio_server(stderr="discard")}, call_timeout=1) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})
        # The echoes fill its stdin.
        took = await calls_timing_out_behind_a_freeze(pool, "s", 30, [big] * 4)
        with trio.fail_after(15):  # the frozen child is ended after its exit grace
            await pool.remove_server("s")
    assert len(took) == 5
    # Before the fix each call took 6 s: its deadline, then the SDK's 5 s for the cancel.
    assert max(took) < 4.0
