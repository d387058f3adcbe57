"""The portal: blocking calls from plain threads into a pool run by a trio thread."""

from __future__ import annotations

import _thread
import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import trio

import trio_mcp
from trio_mcp import result_text

from .conftest import SERVER, TRANSPORTS, HttpServer, config_for, stdio_server


def wait_for_event(portal: trio_mcp.Portal, tag: str, wanted: str) -> list[str]:
    """The server's event log for a tag, once ``wanted`` is in it (the server waits, no polling)."""
    result = portal.tool_call("s", "wait_event", {"tag": tag, "wanted": wanted}, timeout=20)
    assert result.structured_content is not None
    return list(result.structured_content["result"])


@pytest.fixture
def all_transports(http_server: HttpServer) -> dict[str, trio_mcp.ServerConfig]:
    return {name: config_for(name, http_server) for name in TRANSPORTS}


def test_threads_hammer_one_portal(all_transports: dict[str, trio_mcp.ServerConfig]) -> None:
    with trio_mcp.start_portal(all_transports) as portal:
        assert portal.servers == TRANSPORTS

        def worker(worker_id: int) -> list[str]:
            wrong = []
            for i in range(30):
                server = TRANSPORTS[(worker_id + i) % 3]
                text = f"{server}-{worker_id}-{i}"
                got = result_text(portal.tool_call(server, "echo", {"text": text}))
                if got != text:
                    wrong.append(f"{text} -> {got}")
            return wrong

        with ThreadPoolExecutor(8) as executor:
            results = list(executor.map(worker, range(8)))
        assert results == [[]] * 8


def test_calls_from_threads_run_concurrently(all_transports: dict[str, trio_mcp.ServerConfig]) -> None:
    with trio_mcp.start_portal(all_transports) as portal:
        for server in TRANSPORTS:
            portal.tool_call(server, "echo", {"text": "warm"})
        for server in TRANSPORTS:
            start = time.monotonic()
            with ThreadPoolExecutor(8) as executor:
                list(executor.map(lambda s: portal.tool_call(s, "slow", {"seconds": 1.0}), [server] * 8))
            # Serialized this would take 8 s.
            assert time.monotonic() - start < 4.0, server


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout_cancels_on_server(transport: str, http_server: HttpServer) -> None:
    tag = uuid.uuid4().hex
    with trio_mcp.start_portal({"s": config_for(transport, http_server)}) as portal:
        portal.tool_call("s", "echo", {"text": "warm"})
        with pytest.raises(trio_mcp.ToolCallTimeout) as info:
            portal.tool_call("s", "slow", {"seconds": 30, "tag": tag}, timeout=0.5)
        assert isinstance(info.value, TimeoutError)
        assert info.value.server == "s"
        assert wait_for_event(portal, tag, "cancelled") == ["started", "cancelled"]
        assert result_text(portal.tool_call("s", "echo", {"text": "ok"})) == "ok"


def test_errors_from_threads(http_server: HttpServer) -> None:
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:
        errors: list[BaseException] = []

        def bad() -> None:
            try:
                portal.tool_call("nope", "echo", {"text": "x"})
            except trio_mcp.MCPPoolError as error:
                errors.append(error)

        thread = threading.Thread(target=bad)
        thread.start()
        thread.join()
        assert len(errors) == 1 and isinstance(errors[0], trio_mcp.UnknownServerError)
        with pytest.raises(trio_mcp.UnknownToolError):
            portal.tool_call("s", "missing")
        assert [t.name for t in portal.list_tools("s")][:2] == ["echo", "add"]
        assert portal.list_resources("s")[0].name == "greeting"
        assert portal.read_resource("s", "memo://greeting").contents[0].text  # type: ignore[union-attr]
        assert [p.name for p in portal.list_prompts("s")] == ["summarize"]
        assert portal.get_prompt("s", "summarize", {"topic": "x"}).messages
        results = portal.tool_calls([("s", "add", {"a": 1, "b": 1}), ("s", "missing")])
        assert results[0].structured_content == {"result": 2}  # type: ignore[union-attr]
        assert isinstance(results[1], trio_mcp.UnknownToolError)
        with pytest.raises(ValueError, match="timeout"):
            portal.tool_call("s", "echo", {"text": "x"}, timeout=0)
        stats = portal.statistics()["s"]
        assert stats.state is trio_mcp.ServerState.READY and stats.completed >= 5 and stats.failed >= 2


def test_close_with_100_calls_in_flight(http_server: HttpServer) -> None:
    portal = trio_mcp.start_portal({"stdio": stdio_server(), "http": config_for("http", http_server)})
    pid = portal.tool_call("stdio", "pid").structured_content["result"]  # type: ignore[index]
    portal.tool_call("http", "echo", {"text": "warm"})
    outcomes: list[BaseException | object] = []
    lock = threading.Lock()

    def caller(i: int) -> None:
        server = "stdio" if i % 2 else "http"
        try:
            outcome: object = portal.tool_call(server, "slow", {"seconds": 60})
        except BaseException as error:
            outcome = error
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(100)]
    for thread in threads:
        thread.start()
    while len(portal._pending) < 100:  # all 100 submitted to the trio thread
        time.sleep(0.01)
    start = time.monotonic()
    portal.close()
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - start < 10
    assert len(outcomes) == 100
    assert all(isinstance(o, trio_mcp.PoolClosedError) for o in outcomes), outcomes[:3]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(trio_mcp.PoolClosedError):
        portal.tool_call("http", "echo", {"text": "late"})
    portal.close()  # twice is fine


def test_shutdown_all_of_some_and_of_all(http_server: HttpServer) -> None:
    portals = [trio_mcp.start_portal({"s": config_for("http", http_server)}) for _ in range(3)]
    for portal in portals:
        portal.tool_call("s", "echo", {"text": "x"})
    trio_mcp.shutdown_all(portals[:1])
    assert portals[0].closed and not portals[1].closed
    start = time.monotonic()
    trio_mcp.shutdown_all()
    assert time.monotonic() - start < 10
    assert all(portal.closed for portal in portals)
    with pytest.raises(trio_mcp.PoolClosedError):
        portals[2].tool_call("s", "echo", {"text": "x"})


def test_program_that_forgets_to_close_exits_promptly() -> None:
    script = (
        "import sys, trio_mcp\n"
        f"p = trio_mcp.start_portal({{'s': trio_mcp.StdioServer(sys.executable, [{SERVER!r}])}})\n"
        "print(p.tool_call('s', 'pid').structured_content['result'], flush=True)\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert time.monotonic() - start < 20
    child = int(done.stdout.split()[0])
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_startup_error_is_raised_in_the_caller() -> None:
    threads = threading.active_count()
    with pytest.raises(trio_mcp.ConfigError, match="server 'x'"):
        trio_mcp.start_portal({"x": "not a config"})  # type: ignore[dict-item]
    assert threading.active_count() == threads


def test_calling_from_the_portal_thread_raises(http_server: HttpServer) -> None:
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:
        seen: list[BaseException] = []
        done = threading.Event()

        def from_trio_thread() -> None:
            try:
                portal.tool_call("s", "echo", {"text": "x"})
            except BaseException as error:
                seen.append(error)
            done.set()

        assert portal._token is not None
        portal._token.run_sync_soon(from_trio_thread)
        assert done.wait(10)
        assert isinstance(seen[0], RuntimeError) and "deadlock" in str(seen[0])


def test_calls_from_threads_running_their_own_loops(http_server: HttpServer) -> None:
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:

        async def from_trio() -> str:
            return result_text(portal.tool_call("s", "echo", {"text": "trio"}))

        async def from_asyncio() -> str:
            return result_text(portal.tool_call("s", "echo", {"text": "asyncio"}))

        results: dict[str, str] = {}
        runners: dict[str, Callable[[], str]] = {
            "trio": lambda: trio.run(from_trio),
            "asyncio": lambda: asyncio.run(from_asyncio()),
        }
        threads = [
            threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, f())) for k, f in runners.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert results == {"trio": "trio", "asyncio": "asyncio"}


def test_keyboard_interrupt_cancels_the_call(http_server: HttpServer) -> None:
    tag = uuid.uuid4().hex
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:
        portal.tool_call("s", "echo", {"text": "warm"})
        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            portal.tool_call("s", "slow", {"seconds": 30, "tag": tag})
        timer.join()
        assert wait_for_event(portal, tag, "cancelled") == ["started", "cancelled"]


def test_dead_portal_thread_fails_every_call(http_server: HttpServer) -> None:
    portal = trio_mcp.start_portal({"s": config_for("http", http_server)})
    portal.tool_call("s", "echo", {"text": "warm"})
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            portal.tool_call("s", "slow", {"seconds": 60})
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=waiter)
    thread.start()
    while not portal._pending:
        time.sleep(0.01)
    assert portal._stop is not None and portal._token is not None
    # Make the trio thread's main task fail: the portal must fail the waiting call.
    portal._token.run_sync_soon(portal._stop.set)
    thread.join(15)
    assert outcome and isinstance(outcome[0], trio_mcp.PoolClosedError)
    with pytest.raises(trio_mcp.PoolClosedError):
        portal.tool_call("s", "echo", {"text": "x"})
    portal.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_fork_child_gets_a_clear_error(http_server: HttpServer) -> None:
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:
        portal.tool_call("s", "echo", {"text": "warm"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                portal.tool_call("s", "echo", {"text": "child"})
            except trio_mcp.PoolClosedError as error:
                code = 0 if "fork" in str(error) or "process" in str(error) else 2
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert result_text(portal.tool_call("s", "echo", {"text": "parent"})) == "parent"
