"""Shared fixtures: real MCP servers over real transports, and leak guards.

Every test has a deadline (see ``pytest_collection_modifyitems``), so a deadlock fails
fast instead of hanging the suite. ``TRIO_MCP_TEST_DEADLINE`` (seconds) scales them all.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import sys
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import psutil
import pytest
import trio

import trio_mcp

from .server_processes import SDK_SERVER, ServerProcess

SERVER = str(SDK_SERVER)
TEST_DEADLINE = float(os.environ.get("TRIO_MCP_TEST_DEADLINE", "60"))
TRANSPORTS = ("stdio", "http", "sse")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test a deadline.

    - Async tests run inside ``trio.fail_after(TEST_DEADLINE)``: a hang fails inside
      trio, which cancels the test and cleans up (servers closed, children reaped).
    - Every test, sync or async, setup and teardown included, also gets pytest-timeout's
      deadline, twice that (unless marked ``@pytest.mark.timeout(seconds)`` itself).
      Its ``signal`` method (pyproject.toml) raises in the main thread where the test
      blocks, so a sync test stuck in a portal call fails alone and its ``with`` blocks
      still close. It is the only deadline of a sync test, and a backstop for async ones.
    """
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(2 * TEST_DEADLINE))
        function = getattr(item, "obj", None)
        if function is None or not inspect.iscoroutinefunction(function):
            continue
        limit = TEST_DEADLINE
        if "autojump_clock" in getattr(item, "fixturenames", ()):
            # Virtual time races ahead; a deadlock still jumps straight to this deadline.
            limit = 100_000.0

        def guard(fn: Callable[..., Any], limit: float = limit) -> Callable[..., Any]:
            @functools.wraps(fn)
            async def guarded(*args: Any, **kwargs: Any) -> Any:
                with trio.fail_after(limit):
                    return await fn(*args, **kwargs)

            return guarded

        item.obj = guard(function)  # type: ignore[attr-defined]


def server_module() -> ModuleType:
    """The test server's module, imported into this process too (for in-process servers,
    and for the values it serves)."""
    spec = importlib.util.spec_from_file_location("trio_mcp_test_server", SERVER)
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def stdio_server(*extra: str, **kwargs: Any) -> trio_mcp.StdioServer:
    return trio_mcp.StdioServer(sys.executable, [SERVER, *extra], **kwargs)


class HttpServer(ServerProcess):
    """The test server in a subprocess, serving Streamable HTTP at /mcp and SSE at /sse.

    Started at once, on ``port`` if given (0: a free one), e.g. to restart it where it was.
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__([sys.executable, SERVER, "http"], port=port or None)
        self.start()

    @property
    def http_url(self) -> str:
        return self.url("/mcp")

    @property
    def sse_url(self) -> str:
        return self.url("/sse")


async def free_port() -> int:
    """A local TCP port nothing listens on (connecting to it is refused)."""
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope="session")
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.stop()


def config_for(transport: str, http_server: HttpServer, **kwargs: Any) -> trio_mcp.ServerConfig:
    if transport == "stdio":
        return stdio_server(**kwargs)
    if transport == "http":
        return trio_mcp.StreamableHttpServer(http_server.http_url, **kwargs)
    return trio_mcp.SseServer(http_server.sse_url, **kwargs)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_config(transport: str, http_server: HttpServer) -> Callable[..., trio_mcp.ServerConfig]:
    return functools.partial(config_for, transport, http_server)


async def calls_timing_out_behind_a_freeze(
    pool: trio_mcp.MCPPool, server: str, freeze: float, texts: list[str]
) -> list[float]:
    """Freeze ``server`` (its ``freeze`` tool), then echo each of ``texts``; every call
    must end in :class:`ToolCallTimeout`. Returns how long each call took."""
    took: list[float] = []

    async def call(name: str, arguments: dict[str, object]) -> None:
        start = trio.current_time()
        with pytest.raises(trio_mcp.ToolCallTimeout):
            await pool.tool_call(server, name, arguments)
        took.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "freeze", {"seconds": freeze})
        await trio.sleep(0.3)  # the server is frozen; it reads no more
        for text in texts:
            nursery.start_soon(call, "echo", {"text": text})
    return took


async def wait_process_exit(pid: int) -> None:
    """Return once process ``pid`` has ended (a zombie, or reaped already).

    A crashed server's pipes reach EOF as it starts to exit, before the kernel marks it
    a zombie: on a busy machine a caller can see the EOF while ``pid`` still shows as
    running. Its pidfd turns readable only when the exit is complete.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # reaped since it was listed
        return False


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture(autouse=True)
def no_leaked_children_or_threads(http_server: HttpServer) -> Iterator[None]:
    """Every test must leave no child process and no thread behind."""
    before_children = _children()
    before_threads = {t.ident for t in threading.enumerate()}
    yield
    leaked_children = {pid for pid in _children() - before_children if _alive(pid)}
    assert not leaked_children, f"child processes left behind: {leaked_children}"
    # Worker threads of trio's thread cache idle out on their own; only count others.
    leaked_threads = [
        t
        for t in threading.enumerate()
        if t.ident not in before_threads and not t.name.startswith("Trio thread")
    ]
    assert not leaked_threads, f"threads left behind: {leaked_threads}"
