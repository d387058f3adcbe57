"""Faults against real servers and processes: every call gets one answer, nothing leaks."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

import mcp.types as types
import psutil
import pytest
import trio
import trio.testing

import trio_mcp
from trio_mcp import result_text

from .conftest import HttpServer, calls_timing_out_behind_a_freeze, stdio_server


def value(result: types.CallToolResult) -> Any:
    assert not result.is_error, result_text(result)
    assert result.structured_content is not None
    return result.structured_content["result"]


async def test_kill_9_with_calls_in_flight_then_respawn() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        pid = value(await pool.tool_call("s", "pid"))
        outcomes: list[BaseException] = []

        async def caller() -> None:
            try:
                await pool.tool_call("s", "slow", {"seconds": 60})
            except trio_mcp.MCPPoolError as error:
                outcomes.append(error)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked(0.1)
            assert pool.statistics()["s"].in_flight == 5
            os.kill(pid, signal.SIGKILL)
        assert len(outcomes) == 5
        assert all(isinstance(error, trio_mcp.ServerDisconnectedError) for error in outcomes)
        new_pid = value(await pool.tool_call("s", "pid"))
        assert new_pid != pid
        stats = pool.statistics()["s"]
        assert stats.reconnects == 1 and stats.failed == 5 and stats.state is trio_mcp.ServerState.READY


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_server_stop_and_restart_on_the_same_port(mode: str) -> None:
    server = HttpServer()
    port = server.port
    try:
        configs: dict[str, trio_mcp.ServerConfig] = {
            "h": trio_mcp.StreamableHttpServer(server.http_url, mode=mode),
            "sse": trio_mcp.SseServer(server.sse_url, mode=mode),
        }
        async with trio_mcp.open_mcp_pool(configs) as pool:
            for name in configs:
                assert result_text(await pool.tool_call(name, "echo", {"text": "up"})) == "up"
            outcomes: dict[str, BaseException] = {}

            async def caller(name: str) -> None:
                try:
                    await pool.tool_call(name, "slow", {"seconds": 60})
                except trio_mcp.MCPPoolError as error:
                    outcomes[name] = error

            async with trio.open_nursery() as nursery:
                for name in configs:
                    nursery.start_soon(caller, name)
                await trio.testing.wait_all_tasks_blocked(0.2)
                await trio.to_thread.run_sync(server.stop)
            assert set(outcomes) == set(configs)
            assert all(isinstance(e, trio_mcp.ServerDisconnectedError) for e in outcomes.values())
            for name in configs:
                with pytest.raises(trio_mcp.ServerUnavailableError):
                    await pool.tool_call(name, "echo", {"text": "down"})
            server = await trio.to_thread.run_sync(HttpServer, port)
            for name in configs:
                # Past the backoff the next call reconnects transparently.
                while True:
                    try:
                        text = result_text(await pool.tool_call(name, "echo", {"text": "back"}))
                        break
                    except trio_mcp.ServerUnavailableError:
                        await trio.sleep(0.05)
                assert text == "back"
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_pool_closes_cleanly_right_after_an_http_server_died(mode: str) -> None:
    """The session's close fails (the server is gone) while the pool's close cancels it:
    that failure is logged, never raised as "internal error while closing the pool"."""
    server = await trio.to_thread.run_sync(HttpServer)
    try:
        async with trio_mcp.open_mcp_pool(
            {"h": trio_mcp.StreamableHttpServer(server.http_url, mode=mode)}
        ) as pool:
            assert result_text(await pool.tool_call("h", "echo", {"text": "up"})) == "up"
            await trio.to_thread.run_sync(server.stop)
            with pytest.raises(trio_mcp.ServerDisconnectedError):
                await pool.tool_call("h", "echo", {"text": "down"})
    finally:
        server.stop()  # a no-op once stopped


async def test_restarted_legacy_http_server_is_transparent_to_an_idle_session() -> None:
    """An expired HTTP session (404) is re-initialized and the call sent again, unseen."""
    server = HttpServer()
    try:
        config = trio_mcp.StreamableHttpServer(server.http_url, mode="legacy")
        async with trio_mcp.open_mcp_pool({"h": config}) as pool:
            assert result_text(await pool.tool_call("h", "echo", {"text": "one"})) == "one"
            port = server.port
            await trio.to_thread.run_sync(server.stop)
            server = await trio.to_thread.run_sync(HttpServer, port)
            assert result_text(await pool.tool_call("h", "echo", {"text": "two"})) == "two"
            assert pool.statistics()["h"].reconnects == 1
    finally:
        server.stop()


async def test_hanging_tool_times_out_and_the_session_survives() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(call_timeout=0.3)}) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})
        with pytest.raises(trio_mcp.ToolCallTimeout):
            await pool.tool_call("s", "slow", {"seconds": 3600})
        assert result_text(await pool.tool_call("s", "echo", {"text": "alive"})) == "alive"
        assert pool.statistics()["s"].timed_out == 1


async def test_calls_time_out_on_time_when_an_sse_server_stops_answering() -> None:
    """The SDK's SSE transport POSTs one message at a time and sends the courtesy cancel of
    a timed-out call shielded, for up to 5 s: the cancel must not hold the call that long."""
    server = await trio.to_thread.run_sync(HttpServer)  # its own: it is frozen for a while
    try:
        async with trio_mcp.open_mcp_pool(
            {"sse": trio_mcp.SseServer(server.sse_url)}, call_timeout=1
        ) as pool:
            await pool.tool_call("sse", "echo", {"text": "warm"})
            took = await calls_timing_out_behind_a_freeze(pool, "sse", 8, ["x"] * 3)
            with trio.fail_after(20):  # thawed, the session serves again
                while True:
                    try:
                        assert result_text(await pool.tool_call("sse", "echo", {"text": "on"})) == "on"
                        break
                    except trio_mcp.ToolCallTimeout:
                        pass
    finally:
        server.stop()
    assert len(took) == 4
    # Before the fix each call took 6 s: its deadline, then the SDK's 5 s for the cancel.
    assert max(took) < 4.0


async def test_server_that_closes_stdout() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        pid = value(await pool.tool_call("s", "pid"))
        with pytest.raises(trio_mcp.ServerDisconnectedError):
            await pool.tool_call("s", "close_stdout")
        assert value(await pool.tool_call("s", "pid")) != pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_server_that_writes_garbage(caplog: pytest.LogCaptureFixture) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        pid = value(await pool.tool_call("s", "pid"))
        with caplog.at_level(logging.WARNING, logger="trio_mcp"):
            assert result_text(await pool.tool_call("s", "garbage")) == "ok"
        # The bad line was reported (so it really was on the wire), and the pool carried on.
        assert "not JSON-RPC" in caplog.text
        assert result_text(await pool.tool_call("s", "echo", {"text": "fine"})) == "fine"
        assert value(await pool.tool_call("s", "pid")) == pid  # same session throughout


async def test_huge_tool_list() -> None:
    config = stdio_server(env={"TEST_SERVER_EXTRA_TOOLS": "3000"})
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        tools = await pool.list_tools("s")
        assert len(tools) >= 3000
        assert value(await pool.tool_call("s", "extra_tool_2999")) == 2999


async def test_backoff_then_circuit_open_then_half_open(autojump_clock: trio.testing.MockClock) -> None:
    policy = trio_mcp.ReconnectPolicy(initial_backoff=1, jitter=0, failure_threshold=3, circuit_reset=60)
    async with trio_mcp.open_mcp_pool(
        {"s": trio_mcp.StdioServer("/nonexistent/server", reconnect=policy)}
    ) as pool:
        with pytest.raises(trio_mcp.ServerUnavailableError, match="not found"):
            await pool.tool_call("s", "echo")
        assert pool.statistics()["s"].state is trio_mcp.ServerState.BACKING_OFF
        with pytest.raises(trio_mcp.ServerUnavailableError, match=r"next attempt in 1\.0s"):
            await pool.tool_call("s", "echo")  # fails fast: no new attempt
        assert pool.statistics()["s"].consecutive_failures == 1
        await trio.sleep(1.01)
        with pytest.raises(trio_mcp.ServerUnavailableError, match="not found"):
            await pool.tool_call("s", "echo")
        await trio.sleep(2.01)  # the second backoff is twice as long
        with pytest.raises(trio_mcp.ServerUnavailableError):
            await pool.tool_call("s", "echo")
        stats = pool.statistics()["s"]
        assert stats.state is trio_mcp.ServerState.CIRCUIT_OPEN and stats.consecutive_failures == 3
        with pytest.raises(trio_mcp.CircuitOpenError, match="circuit open"):
            await pool.tool_call("s", "echo")
        await trio.sleep(59)
        with pytest.raises(trio_mcp.CircuitOpenError):
            await pool.tool_call("s", "echo")
        await trio.sleep(1.01)  # half-open: one probe goes through, fails, re-opens
        with pytest.raises(trio_mcp.ServerUnavailableError, match="not found"):
            await pool.tool_call("s", "echo")
        assert pool.statistics()["s"].state is trio_mcp.ServerState.CIRCUIT_OPEN


@pytest.fixture
def running_clock() -> trio.testing.MockClock:
    """Real time that a test can also jump ahead: waits pass at once, timeouts still work."""
    return trio.testing.MockClock(rate=1)


async def test_circuit_closes_when_the_probe_succeeds(
    tmp_path: object, running_clock: trio.testing.MockClock
) -> None:
    launcher = os.path.join(str(tmp_path), "server.sh")
    # Long enough that no real delay on a loaded machine ends a wait: only the jumps do.
    policy = trio_mcp.ReconnectPolicy(initial_backoff=5, jitter=0, failure_threshold=2, circuit_reset=30)
    async with trio_mcp.open_mcp_pool({"s": trio_mcp.StdioServer(launcher, reconnect=policy)}) as pool:
        with pytest.raises(trio_mcp.ServerUnavailableError, match="not found"):
            await pool.tool_call("s", "echo", {"text": "x"})
        running_clock.jump(5)  # exactly the backoff: the next call tries again
        with pytest.raises(trio_mcp.ServerUnavailableError, match="not found"):
            await pool.tool_call("s", "echo", {"text": "x"})
        assert pool.statistics()["s"].state is trio_mcp.ServerState.CIRCUIT_OPEN
        with pytest.raises(trio_mcp.CircuitOpenError):
            await pool.tool_call("s", "echo", {"text": "x"})
        # The server appears; the half-open probe after circuit_reset succeeds.
        server = os.path.join(os.path.dirname(__file__), "servers", "test_server.py")
        await trio.Path(launcher).write_text(f"#!/bin/sh\nexec {sys.executable} {server}\n")
        await trio.Path(launcher).chmod(0o755)
        running_clock.jump(30)
        assert result_text(await pool.tool_call("s", "echo", {"text": "healed"})) == "healed"
        stats = pool.statistics()["s"]
        assert stats.state is trio_mcp.ServerState.READY and stats.consecutive_failures == 0


async def test_backpressure_fails_fast_past_the_bound() -> None:
    limits = trio_mcp.Limits(max_concurrent=2, max_waiting=3)
    async with trio_mcp.open_mcp_pool({"s": stdio_server(limits=limits)}) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(pool.tool_call, "s", "slow", {"seconds": 0.5})
            await trio.testing.wait_all_tasks_blocked(0.05)
            stats = pool.statistics()["s"]
            assert (stats.in_flight, stats.waiting) == (2, 3)
            with pytest.raises(trio_mcp.ServerOverloadedError, match="overloaded"):
                await pool.tool_call("s", "echo", {"text": "one too many"})
        assert pool.statistics()["s"].completed == 6


async def test_health_check_finds_a_frozen_server() -> None:
    config = stdio_server(health_check_interval=0.2, call_timeout=5)
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        pid = value(await pool.tool_call("s", "pid"))
        os.kill(pid, signal.SIGSTOP)
        try:
            while pool.statistics()["s"].state is trio_mcp.ServerState.READY:  # noqa: ASYNC110
                await trio.sleep(0.05)  # the ping fails within ~0.4 s; no call is made
            assert value(await pool.tool_call("s", "pid")) != pid
            assert pool.statistics()["s"].reconnects == 1
        finally:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)


async def test_logs_name_servers_but_never_secrets(
    caplog: pytest.LogCaptureFixture, http_server: HttpServer
) -> None:
    config = trio_mcp.StreamableHttpServer(
        http_server.http_url + "?key=url-secret", headers={"Authorization": "Bearer ${token}"}
    )
    broken = trio_mcp.StreamableHttpServer("http://user:pw-secret@127.0.0.1:1/mcp", headers={"X": "${token}"})
    with caplog.at_level(logging.DEBUG, logger="trio_mcp"):
        async with trio_mcp.open_mcp_pool(
            {"good": config, "broken": broken}, variables={"token": "tok-secret"}
        ) as pool:
            await pool.tool_call("good", "echo", {"text": "x"})
            with pytest.raises(trio_mcp.ServerUnavailableError) as info:
                await pool.tool_call("broken", "echo", {"text": "x"})
    text = caplog.text + str(info.value) + repr(pool) + repr(config) + repr(broken)
    assert "'good'" in caplog.text and "'broken'" in caplog.text
    for secret in ("url-secret", "pw-secret", "tok-secret"):
        assert secret not in text


async def test_statistics_snapshot_is_cheap_and_frozen() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        for _ in range(20):
            await pool.tool_call("s", "echo", {"text": "x"})
        start = time.perf_counter()
        for _ in range(1000):
            stats = pool.statistics()["s"]
        assert time.perf_counter() - start < 5  # sanity only
        assert stats.completed == 20 and stats.latency_p50 is not None and stats.latency_p99 is not None
        assert stats.latency_p50 <= stats.latency_p99
        with pytest.raises(AttributeError):
            stats.completed = 0  # type: ignore[misc]
