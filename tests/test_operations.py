"""Operations: pre-warming sessions, and servers added and removed at run time."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psutil
import pytest
import trio

import trio_mcp
from trio_mcp import result_text

from .conftest import HttpServer, free_port, stdio_server
from .test_pool import structured, wait_for_events


@asynccontextmanager
async def silent_listener() -> AsyncIterator[str]:
    """An HTTP URL whose server accepts connections and never answers (a hung start)."""
    accepted: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, hold, 0)
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}/mcp"
        nursery.cancel_scope.cancel()
    for stream in accepted:
        await stream.aclose()


@asynccontextmanager
async def pool_with_a_hung_server() -> AsyncIterator[trio_mcp.MCPPool]:
    """A pool of "hung" (whose handshake never ends) and "up" (a stdio server)."""
    async with silent_listener() as url:
        hung = trio_mcp.StreamableHttpServer(url, connect_timeout=1000)
        async with trio_mcp.open_mcp_pool({"hung": hung, "up": stdio_server()}) as pool:
            yield pool


async def wait_for_state(pool: trio_mcp.MCPPool, server: str, state: trio_mcp.ServerState) -> None:
    # The state is derived on demand: there is no event to wait on.
    while pool.statistics()[server].state is not state:  # noqa: ASYNC110
        await trio.sleep(0.01)


# -- pre-warming -------------------------------------------------------------------------


async def test_warm_opens_sessions_before_the_first_call_and_survives_one_server_down(
    http_server: HttpServer,
) -> None:
    down = trio_mcp.StreamableHttpServer(f"http://127.0.0.1:{await free_port()}/mcp")
    servers = {
        "up": stdio_server(),
        "http": trio_mcp.StreamableHttpServer(http_server.http_url),
        "down": down,
    }
    async with trio_mcp.open_mcp_pool(servers, warm=True) as pool:
        stats = pool.statistics()
        assert stats["up"].state is trio_mcp.ServerState.READY and stats["up"].connects == 1
        assert stats["http"].state is trio_mcp.ServerState.READY
        assert stats["down"].connects == 0 and stats["down"].consecutive_failures == 1
        # Calling again is free for the connected ones; the failure is an outcome, not raised.
        outcomes = await pool.connect()
        assert list(outcomes) == ["up", "http", "down"]
        assert outcomes["up"] is None and outcomes["http"] is None
        assert isinstance(outcomes["down"], trio_mcp.ServerUnavailableError)
        assert pool.statistics()["up"].connects == 1
        assert result_text(await pool.tool_call("up", "echo", {"text": "warm"})) == "warm"


async def test_without_warm_nothing_connects_until_connect_is_called() -> None:
    async with trio_mcp.open_mcp_pool({"a": stdio_server(), "b": stdio_server()}) as pool:
        assert {s.state for s in pool.statistics().values()} == {trio_mcp.ServerState.IDLE}
        assert await pool.connect("b") == {"b": None}
        assert pool.statistics()["a"].state is trio_mcp.ServerState.IDLE
        assert pool.statistics()["b"].state is trio_mcp.ServerState.READY
        with pytest.raises(trio_mcp.UnknownServerError):
            await pool.connect("b", "nope")


async def test_connect_opens_sessions_concurrently() -> None:
    # One server never answers its handshake; the other is connected meanwhile, so the
    # attempts run side by side rather than one after the other.
    async with (
        pool_with_a_hung_server() as pool,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(pool.connect)
        await wait_for_state(pool, "up", trio_mcp.ServerState.READY)
        assert pool.statistics()["hung"].state is trio_mcp.ServerState.CONNECTING
        nursery.cancel_scope.cancel()


def test_portal_connect(http_server: HttpServer) -> None:
    down = trio_mcp.StreamableHttpServer("http://127.0.0.1:9/mcp")
    with trio_mcp.start_portal({"up": stdio_server(), "down": down}) as portal:
        outcomes = portal.connect(timeout=30)
        assert outcomes["up"] is None
        assert isinstance(outcomes["down"], trio_mcp.ServerUnavailableError)
        assert portal.statistics()["up"].state is trio_mcp.ServerState.READY


def test_warm_is_a_pool_option() -> None:
    assert trio_mcp.PoolOptions(warm=True).warm
    with pytest.raises(trio_mcp.ConfigError):
        trio_mcp.PoolOptions(warm="yes")  # type: ignore[arg-type]


# -- servers that come and go --------------------------------------------------------------


async def test_remove_server_fails_its_calls_in_flight_and_disturbs_nothing_else(
    http_server: HttpServer,
) -> None:
    # "gone" and "stays" are two sessions to the same HTTP server process, so "stays"
    # can report what the server saw of "gone"'s calls.
    url = http_server.http_url
    servers = {
        "gone": trio_mcp.StreamableHttpServer(url),
        "stays": trio_mcp.StreamableHttpServer(url),
        "child": stdio_server(),
    }
    tags = [f"rm-{uuid.uuid4().hex}" for _ in range(5)]
    survivor_tag = f"keep-{uuid.uuid4().hex}"
    async with trio_mcp.open_mcp_pool(servers) as pool:
        errors: list[BaseException] = []
        survivor: list[str] = []

        async def doomed(tag: str) -> None:
            try:
                await pool.tool_call("gone", "slow", {"seconds": 60, "tag": tag})
            except trio_mcp.MCPPoolError as error:
                errors.append(error)

        async def survive() -> None:
            survivor.append(
                result_text(await pool.tool_call("stays", "slow", {"seconds": 0.5, "tag": survivor_tag}))
            )

        child_pid = structured(await pool.tool_call("child", "pid"))
        async with trio.open_nursery() as nursery:
            for tag in tags:
                nursery.start_soon(doomed, tag)
            for tag in tags:
                await wait_for_events(pool, "stays", tag, "started")
            nursery.start_soon(survive)
            await wait_for_events(pool, "stays", survivor_tag, "started")
            await pool.remove_server("gone")
            await pool.remove_server("child")
        assert len(errors) == len(tags)
        assert all(type(error) is trio_mcp.ServerRemovedError for error in errors), errors
        assert all(isinstance(error, trio_mcp.PoolClosedError) and error.server == "gone" for error in errors)
        # The server was told: each removed call was cancelled there.
        for tag in tags:
            assert await wait_for_events(pool, "stays", tag, "cancelled") == ["started", "cancelled"]
        assert survivor == ["slept 0.5"]
        assert pool.servers == ("stays",)
        assert set(pool.statistics()) == {"stays"}
        # The removed stdio server's child is gone once remove_server returns.
        assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(trio_mcp.UnknownServerError):
            await pool.tool_call("gone", "echo", {"text": "x"})
        with pytest.raises(trio_mcp.UnknownServerError):
            await pool.remove_server("gone")


async def test_add_server_at_run_time(http_server: HttpServer) -> None:
    async with trio_mcp.open_mcp_pool({"first": stdio_server()}, call_timeout=30) as pool:
        await pool.add_server("http", trio_mcp.StreamableHttpServer(http_server.http_url))
        await pool.add_server("stdio", stdio_server())
        assert pool.servers == ("first", "http", "stdio")
        assert pool.statistics()["http"].state is trio_mcp.ServerState.IDLE
        results = await pool.tool_calls([("http", "echo", {"text": "a"}), ("stdio", "add", {"a": 1, "b": 2})])
        assert [result_text(r) for r in results] == ["a", "3"]  # type: ignore[arg-type]
        assert pool.config("http").url == http_server.http_url  # type: ignore[union-attr]
        with pytest.raises(trio_mcp.ConfigError, match="already has a server"):
            await pool.add_server("first", stdio_server())
        with pytest.raises(trio_mcp.ConfigError):
            await pool.add_server("bad", "not a config")  # type: ignore[arg-type]
        # A name removed may be added again, as a new server.
        await pool.remove_server("stdio")
        await pool.add_server("stdio", stdio_server())
        assert result_text(await pool.tool_call("stdio", "echo", {"text": "again"})) == "again"
    with pytest.raises(trio_mcp.PoolClosedError):
        await pool.add_server("late", stdio_server())
    with pytest.raises(trio_mcp.PoolClosedError):
        await pool.remove_server("first")


async def test_remove_server_while_it_is_connecting() -> None:
    async with pool_with_a_hung_server() as pool:
        errors: list[BaseException] = []
        outcomes: list[dict[str, trio_mcp.MCPPoolError | None]] = []

        async def waiting_call() -> None:
            try:
                await pool.tool_call("hung", "echo", {"text": "x"})
            except trio_mcp.MCPPoolError as error:
                errors.append(error)

        async def warm() -> None:
            outcomes.append(await pool.connect("hung"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiting_call)
            nursery.start_soon(warm)
            await wait_for_state(pool, "hung", trio_mcp.ServerState.CONNECTING)
            await pool.remove_server("hung")
        assert [type(error) for error in errors] == [trio_mcp.ServerRemovedError]
        assert isinstance(outcomes[0]["hung"], trio_mcp.ServerRemovedError)
        assert result_text(await pool.tool_call("up", "echo", {"text": "fine"})) == "fine"


def test_portal_add_and_remove_with_a_call_in_flight(http_server: HttpServer) -> None:
    tag = f"portal-rm-{uuid.uuid4().hex}"
    with trio_mcp.start_portal({"s": trio_mcp.StreamableHttpServer(http_server.http_url)}) as portal:
        portal.add_server("extra", trio_mcp.StreamableHttpServer(http_server.http_url))
        assert portal.servers == ("s", "extra")
        errors: list[BaseException] = []

        def call() -> None:
            try:
                portal.tool_call("extra", "slow", {"seconds": 60, "tag": tag})
            except trio_mcp.MCPPoolError as error:
                errors.append(error)

        thread = threading.Thread(target=call)
        thread.start()
        portal.tool_call("s", "wait_event", {"tag": tag, "wanted": "started"}, timeout=20)
        portal.remove_server("extra", timeout=20)
        thread.join(20)
        assert not thread.is_alive()
        assert [type(error) for error in errors] == [trio_mcp.ServerRemovedError]
        assert portal.servers == ("s",)
        with pytest.raises(trio_mcp.UnknownServerError):
            portal.remove_server("extra")
