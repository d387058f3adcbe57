"""Faults around the pool's and the portal's edges: interrupts, closes, deadlines, typos.

Each test here failed before its fix (issue 11): results a batch timeout threw away,
Ctrl-C turned into "internal error", a config typo reported as a dead server and then
an open circuit, caller deadlines missing from statistics, a portal forgotten at exit
while its stubborn server tree was still alive, and a trio run crashed by a late job.
"""

from __future__ import annotations

import _thread
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

import trio_mcp
from trio_mcp import result_text
from trio_mcp._portal import _Job

from .conftest import SERVER, HttpServer, config_for, stdio_server
from .test_portal_hop import spy_jobs

STUBBORN = str(Path(SERVER).with_name("stubborn_server.py"))


def _slow_events(portal: trio_mcp.Portal, server: str, tag: str, wanted: str) -> list[str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = portal.tool_call(server, "events", {"tag": tag}).structured_content
        assert result is not None
        if wanted in result["result"]:
            return list(result["result"])
        time.sleep(0.02)
    raise AssertionError(f"{wanted!r} never happened for {tag}")


# -- item 3: batches ------------------------------------------------------------------


def test_portal_batch_timeout_keeps_finished_results(http_server: HttpServer) -> None:
    servers = {"http": config_for("http", http_server), "stdio": stdio_server()}
    with trio_mcp.start_portal(servers) as portal:
        for name in servers:
            portal.tool_call(name, "echo", {"text": "warm"})
        tag = uuid.uuid4().hex
        results = portal.tool_calls(
            [
                ("http", "echo", {"text": "one"}),
                ("stdio", "slow", {"seconds": 60, "tag": tag}),
                trio_mcp.ToolCall("stdio", "echo", {"text": "two"}),
                ("http", "slow", {"seconds": 60, "tag": tag}),
            ],
            timeout=3,
        )
        assert [result_text(r) for r in results[::2]] == ["one", "two"]  # type: ignore[arg-type]
        for result, server in zip(results[1::2], ["stdio", "http"], strict=True):
            assert isinstance(result, trio_mcp.ToolCallTimeout), result
            assert result.server == server and f"on server {server!r}" in str(result), str(result)
            assert "within 3s" in str(result)
        # The timed-out calls were cancelled on their servers too.
        assert _slow_events(portal, "stdio", tag, "cancelled") == ["started", "cancelled"]
        assert _slow_events(portal, "http", tag, "cancelled") == ["started", "cancelled"]
        stats = portal.statistics()
        assert stats["stdio"].timed_out == 1 and stats["http"].timed_out == 1


@pytest.mark.parametrize(
    "batch",
    [
        [("s", "echo", {"text": "x"}), "not a call"],
        [("s", "echo", {"text": "x"}), ("s",)],
        [("s", "echo", {"text": "x"}), ("s", "echo", {}, "extra")],
        [("s", "echo", {"text": "x"}), 42],
        "s echo",
        42,
        {"s": "echo"},
    ],
    ids=["str-entry", "short", "long", "int-entry", "str-batch", "int-batch", "dict-batch"],
)
def test_malformed_batches_raise_a_typed_error_and_run_nothing(http_server: HttpServer, batch: Any) -> None:
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:
        with pytest.raises(trio_mcp.InvalidArgumentsError, match=r"batch|ToolCall"):
            portal.tool_calls(batch)
        with pytest.raises(trio_mcp.InvalidArgumentsError, match=r"batch|ToolCall"):
            portal.tool_calls(batch, timeout=5)

        async def in_trio() -> Any:
            pool = portal._pool
            assert pool is not None
            return await pool.tool_calls(batch)

        with pytest.raises(trio_mcp.InvalidArgumentsError, match=r"batch|ToolCall"):
            portal._call(in_trio, (), None)
        assert portal.statistics()["s"].completed == 0  # nothing was run


# -- item 6: exceptions out of open_mcp_pool, and the CLI's Ctrl-C -----------------------


async def test_a_user_exception_group_comes_out_as_it_went_in(caplog: pytest.LogCaptureFixture) -> None:
    raised: list[BaseException] = []

    async def fail(error: Exception) -> None:
        raise error

    with pytest.raises(ExceptionGroup) as info:
        async with trio_mcp.open_mcp_pool({"s": stdio_server()}):
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(fail, ValueError("a"))
                    nursery.start_soon(fail, KeyError("b"))
            except BaseException as group:
                raised.append(group)
                raise
    assert info.value is raised[0]
    assert info.group_contains(ValueError) and info.group_contains(KeyError)

    caught: list[BaseException] = []
    try:
        async with trio_mcp.open_mcp_pool({"s": stdio_server()}), trio.open_nursery() as nursery:
            nursery.start_soon(fail, ValueError("c"))
    except* ValueError as group:
        caught.extend(group.exceptions)
    assert [str(error) for error in caught] == ["c"]
    assert "internal error" not in caplog.text


async def test_keyboard_interrupt_in_a_user_nursery_stays_a_keyboard_interrupt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.RaisesGroup(KeyboardInterrupt):
        async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
            await pool.tool_call("s", "echo", {"text": "x"})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        async with trio_mcp.open_mcp_pool({"s": stdio_server()}):
            raise KeyboardInterrupt
    assert "internal error" not in caplog.text


def test_cli_check_ends_by_sigint_on_ctrl_c(tmp_path: Path) -> None:
    # A "server" that never answers the handshake: check waits on it until Ctrl-C.
    config = tmp_path / "mcp.json"
    mute = {"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"]}
    config.write_text(json.dumps({"mcpServers": {"mute": mute}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_mcp", "check", str(config), "--connect-timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cli = psutil.Process(process.pid)

        def mute_started() -> bool:
            # Only the server counts: the interpreter may run short-lived helpers first.
            for child in cli.children():
                try:
                    if "time.sleep(60)" in " ".join(child.cmdline()):
                        return True
                except psutil.NoSuchProcess:
                    pass
            return False

        deadline = time.monotonic() + 30
        while not mute_started() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mute_started(), "the CLI never started its server"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # Ended by SIGINT (a shell's 130) every time: it used to exit(130), except when
    # CPython had seen the KeyboardInterrupt go by and ended the run by SIGINT itself.
    assert process.returncode == -signal.SIGINT, (out, err)
    assert "interrupted" in err and "internal error" not in err


_INTERRUPTED_IN_A_CALLBACK = r"""
import os, signal, weakref
import trio_mcp._cli as cli

run = cli._run


class Thing:
    pass


def callback(_):
    # Ctrl-C lands while Python runs a weakref callback (importlib's module locks have
    # them, so a lazy import during a connect is enough): an exception raised in one is
    # printed and dropped.
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10**6):
        pass


async def interrupted_in_a_weakref_callback(*args):
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    return await run(*args)


cli._run = interrupted_in_a_weakref_callback
cli.entry_point()
"""


def test_cli_ctrl_c_is_never_lost(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    mute = {"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"]}
    config.write_text(json.dumps({"mcpServers": {"mute": mute}}))
    script = tmp_path / "cli.py"
    script.write_text(_INTERRUPTED_IN_A_CALLBACK)
    try:
        done = subprocess.run(
            [sys.executable, str(script), "check", str(config), "--connect-timeout", "60"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as timeout:
        raise AssertionError(f"the Ctrl-C was lost: {timeout.stderr!r}") from None
    assert done.returncode == -signal.SIGINT, (done.stdout, done.stderr)
    assert "interrupted" in done.stderr and "Exception ignored" not in done.stderr


# -- item 7: a missing ${variable} ------------------------------------------------------


async def test_a_missing_variable_is_a_template_error_every_time(http_server: HttpServer) -> None:
    eager = trio_mcp.ReconnectPolicy(failure_threshold=2, circuit_reset=30)
    servers: dict[str, trio_mcp.ServerConfig] = {
        "http": trio_mcp.StreamableHttpServer(
            http_server.http_url, headers={"Authorization": "Bearer ${TOKEN}"}, reconnect=eager
        ),
        "stdio": stdio_server(env={"API_KEY": "${API_KEY}"}, reconnect=eager),
    }
    async with trio_mcp.open_mcp_pool(servers) as pool:
        for _ in range(5):
            for server, variable in (("http", "TOKEN"), ("stdio", "API_KEY")):
                with pytest.raises(trio_mcp.TemplateError) as info:
                    await pool.tool_call(server, "echo", {"text": "x"})
                assert info.value.variable == variable and f"${{{variable}}}" in str(info.value)
                assert info.value.server == server
        for stats in pool.statistics().values():
            assert stats.state is trio_mcp.ServerState.IDLE
            assert stats.consecutive_failures == 0 and stats.connects == 0


# -- item 8: statistics count the caller's deadlines; toolset after close --------------


async def test_statistics_count_caller_deadlines_and_cancellations(
    make_config: Callable[..., trio_mcp.ServerConfig],
) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})
        for _ in range(3):
            with trio.move_on_after(0.2):
                await pool.tool_call("s", "slow", {"seconds": 60})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.tool_call, "s", "slow", {"seconds": 60})
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
        stats = pool.statistics()["s"]
        assert (stats.completed, stats.timed_out, stats.cancelled, stats.failed) == (1, 3, 1, 0)


def test_portal_timeouts_and_interrupts_are_counted(http_server: HttpServer) -> None:
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:
        portal.tool_call("s", "echo", {"text": "warm"})
        for _ in range(2):
            with pytest.raises(trio_mcp.ToolCallTimeout, match="on server 's'"):
                portal.tool_call("s", "slow", {"seconds": 60}, timeout=0.2)
        jobs = spy_jobs(portal)
        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            portal.tool_call("s", "slow", {"seconds": 60})  # timeout=None
        timer.join()
        assert jobs[0].done.acquire(timeout=20)
        # The abandoned job ends cleanly, not as "internal error: TypeError".
        assert isinstance(jobs[0].error, trio_mcp.PoolClosedError), repr(jobs[0].error)
        assert "interrupted" in str(jobs[0].error)
        stats = portal.statistics()["s"]
        assert (stats.completed, stats.timed_out, stats.cancelled, stats.failed) == (1, 2, 1, 0)


async def test_toolset_after_close_raises(http_server: HttpServer) -> None:
    config = trio_mcp.ToolConfig("all", servers=["s"])
    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        trio_mcp.Toolset(pool, config)
        pool.close()
        with pytest.raises(trio_mcp.PoolClosedError):
            trio_mcp.Toolset(pool, config)
    portal = trio_mcp.start_portal({"s": config_for("http", http_server)})
    trio_mcp.BlockingToolset(portal, config)
    portal.close()
    with pytest.raises(trio_mcp.PoolClosedError):
        trio_mcp.BlockingToolset(portal, config)


# -- item 9: serve_mcp_pool, a job racing close ---------------------------------------


async def test_serve_mcp_pool_returns_after_close(http_server: HttpServer) -> None:
    async with trio.open_nursery() as nursery:
        pool = await nursery.start(trio_mcp.serve_mcp_pool, {"s": config_for("http", http_server)})
        assert result_text(await pool.tool_call("s", "echo", {"text": "x"})) == "x"
        pool.close()
    # The nursery exited by itself: serve_mcp_pool returned.
    with pytest.raises(trio_mcp.PoolClosedError):
        await pool.tool_call("s", "echo", {"text": "x"})


def test_a_job_arriving_after_the_jobs_nursery_closed_fails_alone(caplog: pytest.LogCaptureFixture) -> None:
    """``_spawn`` runs as a run_sync_soon callback: if it raised, the trio run would crash."""
    portal = trio_mcp.start_portal({"s": trio_mcp.StdioServer(sys.executable, [STUBBORN])})
    assert result_text(portal.tool_call("s", "echo", {"text": "alive"})) == "alive"
    token = portal._token
    assert token is not None
    portal._request_stop()
    # The stubborn tree keeps the pool closing for seconds after the jobs nursery closed.
    deadline = time.monotonic() + 20
    while portal._jobs is not None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert portal._jobs is None and not portal._finished.is_set()

    async def never() -> None:  # pragma: no cover - must not run
        raise AssertionError("ran")

    job = _Job(never, (), None, None)
    with portal._lock:
        portal._pending.add(job)
    with caplog.at_level(logging.ERROR, logger="trio_mcp"):
        token.run_sync_soon(portal._spawn, job)
        assert job.done.acquire(timeout=20)
        portal.close(timeout=30)
    assert isinstance(job.error, trio_mcp.PoolClosedError) and "could start" in str(job.error)
    assert portal._finished.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# -- item 5: exit reaps a stubborn tree whatever close() went through ----------------------

_EXIT_SCRIPT = """
import os, signal, sys, threading, psutil, trio_mcp
portal = trio_mcp.start_portal({{"s": trio_mcp.StdioServer(sys.executable, [{stubborn!r}])}})
portal.tool_call("s", "echo", {{"text": "alive"}})
print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
if sys.argv[1] == "interrupt":
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        portal.close()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
else:
    portal.close(timeout=0.2)
    print("gave up", flush=True)
"""


@pytest.mark.parametrize("how", ["interrupt", "timeout"])
def test_exit_reaps_a_stubborn_tree_after_an_unfinished_close(how: str) -> None:
    script = _EXIT_SCRIPT.format(stubborn=STUBBORN)
    done = subprocess.run(
        [sys.executable, "-c", script, how], capture_output=True, text=True, timeout=60, check=False
    )
    lines = done.stdout.split("\n")
    tree = [psutil.Process(int(pid)) for pid in lines[0].split() if psutil.pid_exists(int(pid))]
    try:
        assert len(lines[0].split()) >= 3, done  # launcher, real server, sleeper
        assert lines[1] == ("interrupted" if how == "interrupt" else "gave up"), done
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE] == [], done.stderr
    finally:
        for process in tree:
            if process.is_running():
                process.kill()
