"""The systems measured side by side, each behind the same small interface.

A trio system (``raw``, ``pool``) is opened with ``async with`` inside ``trio.run`` and
its handle has async ``call`` / ``list_tools``; a threaded system (``portal`` and the
two seeds) is opened with ``with`` and its handle is called from plain threads.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import mcp.types as types
import trio
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

import trio_mcp

from .baselines.datadesigner import DataDesignerStyleIO
from .baselines.ragflow import RagflowStyleSession
from .server import make_server

SERVER = str(Path(__file__).resolve().parent / "server.py")
MINI_SERVER = str(Path(__file__).resolve().parent / "mini_server.py")


class HttpBenchServer:
    """The benchmark server in a subprocess: Streamable HTTP and SSE on one port."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, SERVER, "http"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline().split()[1])

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


class Target:
    """How to reach one benchmark server over one transport, for every system."""

    def __init__(self, transport: str, http: HttpBenchServer | None) -> None:
        self.transport = transport
        self.http = http

    def _url(self, path: str) -> str:
        assert self.http is not None
        return f"http://127.0.0.1:{self.http.port}{path}"

    def client(self) -> Client:
        """A fresh ``mcp.Client`` (SDK defaults) for this target."""
        if self.transport == "mini-stdio":
            return Client(StdioServerParameters(command=sys.executable, args=["-I", "-S", MINI_SERVER]))
        if self.transport == "stdio":
            return Client(StdioServerParameters(command=sys.executable, args=[SERVER, "stdio"]))
        if self.transport == "http":
            return Client(self._url("/mcp"))
        if self.transport == "sse":
            return Client(sse_client(self._url("/sse")))
        return Client(make_server())

    def config(self) -> trio_mcp.ServerConfig:
        if self.transport == "mini-stdio":
            return trio_mcp.StdioServer(sys.executable, ["-I", "-S", MINI_SERVER])
        if self.transport == "stdio":
            return trio_mcp.StdioServer(sys.executable, [SERVER, "stdio"])
        if self.transport == "http":
            return trio_mcp.StreamableHttpServer(self._url("/mcp"))
        if self.transport == "sse":
            return trio_mcp.SseServer(self._url("/sse"))
        return trio_mcp.InProcessServer(make_server())


Targets = dict[str, Target]


# -- trio systems -------------------------------------------------------------------


class RawHandle:
    def __init__(self, clients: dict[str, Client]) -> None:
        self.clients = clients

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return await self.clients[server].call_tool(tool, arguments)

    async def list_tools(self, server: str) -> list[types.Tool]:
        return (await self.clients[server].list_tools()).tools


@asynccontextmanager
async def open_raw(targets: Targets) -> AsyncIterator[RawHandle]:
    """``mcp.Client`` used directly: one client per server, each held by its own task."""
    clients: dict[str, Client] = {}
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def hold(name: str, target: Target, *, task_status: trio.TaskStatus[None]) -> None:
            async with target.client() as client:
                clients[name] = client
                task_status.started()
                await done.wait()

        async def start(name: str, target: Target) -> None:
            await nursery.start(hold, name, target)

        async with trio.open_nursery() as starters:
            for name, target in targets.items():
                starters.start_soon(start, name, target)
        try:
            yield RawHandle(clients)
        finally:
            done.set()


class PoolHandle:
    def __init__(self, pool: trio_mcp.MCPPool) -> None:
        self.pool = pool

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return await self.pool.tool_call(server, tool, arguments)

    async def list_tools(self, server: str) -> list[types.Tool]:
        return await self.pool.list_tools(server)


@asynccontextmanager
async def open_pool(targets: Targets) -> AsyncIterator[PoolHandle]:
    servers = {name: target.config() for name, target in targets.items()}
    async with trio_mcp.open_mcp_pool(servers) as pool:
        yield PoolHandle(pool)


# -- threaded systems ------------------------------------------------------------------


class PortalHandle:
    def __init__(self, portal: trio_mcp.Portal) -> None:
        self.portal = portal
        self.call = portal.tool_call
        self.list_tools = portal.list_tools


@contextmanager
def open_portal(targets: Targets) -> Iterator[PortalHandle]:
    servers = {name: target.config() for name, target in targets.items()}
    with trio_mcp.start_portal(servers) as portal:
        yield PortalHandle(portal)


class RagflowHandle:
    def __init__(self, sessions: dict[str, RagflowStyleSession]) -> None:
        self.sessions = sessions

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return self.sessions[server].call(tool, arguments, timeout=60)

    def list_tools(self, server: str) -> list[types.Tool]:
        return self.sessions[server].get_tools(timeout=60)


@contextmanager
def open_ragflow(targets: Targets) -> Iterator[RagflowHandle]:
    """One RAGFlow-style session (its own loop thread) per server, as RAGFlow does."""
    sessions: dict[str, RagflowStyleSession] = {}
    try:
        for name, target in targets.items():
            sessions[name] = RagflowStyleSession(target.client)
        yield RagflowHandle(sessions)
    finally:
        for session in sessions.values():
            session.close_sync()


class DataDesignerHandle:
    def __init__(self, io: DataDesignerStyleIO, targets: Targets) -> None:
        self.io = io
        self.factories: dict[str, Callable[[], Client]] = {name: t.client for name, t in targets.items()}

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return self.io.call_tool(server, self.factories[server], tool, arguments)

    def list_tools(self, server: str) -> list[types.Tool]:
        return self.io.list_tools(server, self.factories[server])


@contextmanager
def open_datadesigner(targets: Targets) -> Iterator[DataDesignerHandle]:
    io = DataDesignerStyleIO()
    try:
        yield DataDesignerHandle(io, targets)
    finally:
        io.close()


TRIO_SYSTEMS: dict[str, Callable[[Targets], Any]] = {"raw": open_raw, "pool": open_pool}
THREAD_SYSTEMS: dict[str, Callable[[Targets], Any]] = {
    "portal": open_portal,
    "seed-ragflow": open_ragflow,
    "seed-datadesigner": open_datadesigner,
}
SYSTEMS = [*TRIO_SYSTEMS, *THREAD_SYSTEMS]
