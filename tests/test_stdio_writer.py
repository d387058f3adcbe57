"""The stdio transport's write path: messages go to the pipe from the sender's own task
when it takes them whole; longer ones are finished, in order, by the writer task."""

from __future__ import annotations

import trio
import trio.testing

import trio_mcp
from trio_mcp import result_text

from .conftest import stdio_server

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
