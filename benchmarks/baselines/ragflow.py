"""RAGFlow's ``MCPToolCallSession`` design.

An asyncio event loop in a dedicated thread; one coroutine owns the MCP session and
consumes a queue of ``list_tools`` / ``tool_call`` tasks, *one after another*, handing
each result back through a per-task result queue; synchronous wrappers submit with
``asyncio.run_coroutine_threadsafe`` and wait with a timeout.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import mcp.types as types
from mcp import Client

from trio_mcp import result_text


class RagflowStyleSession:
    def __init__(self, make_client: Callable[[], Client], timeout: float = 30) -> None:
        self._make_client = make_client
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ragflow-loop", daemon=True)
        self._thread.start()
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Queue[tuple[bool, Any]]]] | None = None
        self._main: asyncio.Future[None] | None = None
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout)

    async def _start(self) -> None:
        self._queue = asyncio.Queue()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._main = asyncio.ensure_future(self._mcp_server_loop(ready))
        await ready

    async def _mcp_server_loop(self, ready: asyncio.Future[None]) -> None:
        try:
            async with self._make_client() as client:
                ready.set_result(None)
                await self._process_mcp_tasks(client)
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)

    async def _process_mcp_tasks(self, client: Client) -> None:
        assert self._queue is not None
        while True:
            task_type, kwargs, results = await self._queue.get()
            if task_type == "stop":
                return
            try:
                if task_type == "list_tools":
                    value: Any = (await client.list_tools()).tools
                else:
                    value = await client.call_tool(kwargs["name"], kwargs["arguments"])
                await results.put((True, value))
            except Exception as error:
                await results.put((False, error))

    # RAGFlow's own signature: the timeout travels with the task (asyncio.wait_for).
    async def _call_mcp_server(self, task_type: str, timeout: float, **kwargs: Any) -> Any:  # noqa: ASYNC109
        assert self._queue is not None
        results: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
        await self._queue.put((task_type, kwargs, results))
        ok, value = await asyncio.wait_for(results.get(), timeout)
        if not ok:
            raise value
        return value

    def get_tools(self, timeout: float = 10) -> list[types.Tool]:
        future = asyncio.run_coroutine_threadsafe(self._call_mcp_server("list_tools", timeout), self._loop)
        tools: list[types.Tool] = future.result(timeout)
        return tools

    def call(self, name: str, arguments: dict[str, Any], timeout: float = 10) -> types.CallToolResult:
        future = asyncio.run_coroutine_threadsafe(
            self._call_mcp_server("tool_call", timeout, name=name, arguments=arguments), self._loop
        )
        result: types.CallToolResult = future.result(timeout)
        return result

    def tool_call(self, name: str, arguments: dict[str, Any], timeout: float = 10) -> str:
        try:
            return result_text(self.call(name, arguments, timeout))
        except Exception as error:
            return f"MCP server error: {error}"

    def close_sync(self, timeout: float = 10) -> None:
        async def stop() -> None:
            assert self._queue is not None
            assert self._main is not None
            await self._queue.put(("stop", {}, asyncio.Queue()))
            await self._main

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop.close()
