"""DataDesigner's MCP I/O layer design.

One background daemon thread running an asyncio loop for all providers; one session
per provider, created lazily and kept for the program's duration; ``list_tools``
coalesced with an ``asyncio.Lock`` per provider and cached; parallel calls with
``asyncio.gather``; synchronous entry points via ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import mcp.types as types
from mcp import Client


class DataDesignerStyleIO:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="datadesigner-loop", daemon=True)
        self._thread.start()
        self._sessions: dict[Hashable, Any] = {}
        self._closers: dict[Hashable, tuple[asyncio.Event, asyncio.Future[None]]] = {}
        self._session_locks: dict[Hashable, asyncio.Lock] = {}
        self._list_locks: dict[Hashable, asyncio.Lock] = {}
        self._tools: dict[Hashable, list[types.Tool]] = {}

    def _run(self, coroutine: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _hold(
        self, make_client: Callable[[], Client], ready: asyncio.Future[Any], close: asyncio.Event
    ) -> None:
        # One task enters and exits the session (anyio task groups demand it).
        try:
            async with make_client() as client:
                ready.set_result(client)
                await close.wait()
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)

    async def _session(self, key: Hashable, make_client: Callable[[], Client]) -> Client:
        session = self._sessions.get(key)
        if session is not None:
            return session  # type: ignore[no-any-return]
        lock = self._session_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._sessions:
                ready: asyncio.Future[Client] = self._loop.create_future()
                close = asyncio.Event()
                task = asyncio.ensure_future(self._hold(make_client, ready, close))
                self._sessions[key] = await ready
                self._closers[key] = (close, task)
        return self._sessions[key]  # type: ignore[no-any-return]

    async def _list_tools(self, key: Hashable, make_client: Callable[[], Client]) -> list[types.Tool]:
        if key in self._tools:
            return self._tools[key]
        lock = self._list_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._tools:
                session = await self._session(key, make_client)
                self._tools[key] = list((await session.list_tools()).tools)
        return self._tools[key]

    async def _call_tool(
        self, key: Hashable, make_client: Callable[[], Client], name: str, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        session = await self._session(key, make_client)
        return await session.call_tool(name, arguments)

    def list_tools(
        self, key: Hashable, make_client: Callable[[], Client], timeout: float = 30
    ) -> list[types.Tool]:
        return self._run(self._list_tools(key, make_client), timeout)  # type: ignore[no-any-return]

    def call_tool(
        self,
        key: Hashable,
        make_client: Callable[[], Client],
        name: str,
        arguments: dict[str, Any],
        timeout: float = 30,
    ) -> types.CallToolResult:
        return self._run(self._call_tool(key, make_client, name, arguments), timeout)  # type: ignore[no-any-return]

    def call_tools_parallel(
        self, calls: Sequence[tuple[Hashable, Callable[[], Client], str, dict[str, Any]]], timeout: float = 30
    ) -> list[types.CallToolResult]:
        async def gather() -> list[types.CallToolResult]:
            return list(await asyncio.gather(*(self._call_tool(*call) for call in calls)))

        return self._run(gather(), timeout)  # type: ignore[no-any-return]

    def close(self, timeout: float = 10) -> None:
        async def close_all() -> None:
            for close, _ in self._closers.values():
                close.set()
            await asyncio.gather(*(task for _, task in self._closers.values()), return_exceptions=True)

        self._run(close_all(), timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop.close()
