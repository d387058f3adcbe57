"""The pool against real servers over stdio, Streamable HTTP and SSE."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

import trio_mcp
from trio_mcp import result_text

from .conftest import SERVER, HttpServer, free_port, stdio_server, wait_process_exit

Config = Callable[..., trio_mcp.ServerConfig]


def structured(result: Any) -> Any:
    assert not result.is_error, result_text(result)
    return result.structured_content["result"]


async def wait_for_events(pool: trio_mcp.MCPPool, server: str, tag: str, wanted: str) -> list[str]:
    """The server's event log for a tag, once ``wanted`` is in it (the server waits, no polling)."""
    return list(structured(await pool.tool_call(server, "wait_event", {"tag": tag, "wanted": wanted})))


async def test_calls_and_lists_tools(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        assert pool.servers == ("s",)
        assert result_text(await pool.tool_call("s", "echo", {"text": "hello"})) == "hello"
        assert structured(await pool.tool_call("s", "add", {"a": 2, "b": 40})) == 42
        names = {tool.name for tool in await pool.list_tools("s")}
        assert {"echo", "add", "slow", "fail", "list_count"} <= names


async def test_failing_tool_returns_error_result(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        result = await pool.tool_call("s", "fail", {"message": "nope"})
        assert result.is_error
        assert "fail" in result_text(result)
        # The session is unharmed.
        assert result_text(await pool.tool_call("s", "echo", {"text": "still here"})) == "still here"


async def test_list_tools_is_cached_and_coalesced(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        before = structured(
            await pool.tool_call("s", "list_count")
        )  # the first call lists tools (to validate) once
        results: list[list[Any]] = []

        async def lister() -> None:
            results.append(await pool.list_tools("s"))

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(lister)
        after = structured(await pool.tool_call("s", "list_count"))
        assert after == before, "the cached list must serve every caller"
        assert len(results) == 50
        assert all([t.name for t in r] == [t.name for t in results[0]] for r in results)


async def test_concurrent_first_callers_share_one_request() -> None:
    """A cold cache: 50 concurrent list_tools become a single tools/list on the server."""
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}, validate_arguments=False) as pool:
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(pool.list_tools, "s")
        assert structured(await pool.tool_call("s", "list_count")) == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_list_changed_invalidates_cache(make_config: Config, mode: str) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config(mode=mode)}) as pool:
        await pool.list_tools("s")
        name = f"extra_{uuid.uuid4().hex[:8]}"
        await pool.tool_call("s", "add_tool", {"name": name})
        # Without invalidation the cached list would never show the new tool.
        while name not in {tool.name for tool in await pool.list_tools("s")}:  # noqa: ASYNC110
            await trio.sleep(0.02)  # the change arrives from another process
        assert result_text(await pool.tool_call("s", name)) == name


async def test_many_calls_in_flight_on_one_session(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(pool.tool_call, "s", "slow", {"seconds": 1.0})
        elapsed = trio.current_time() - start
        # Serialized, eight one-second calls would take eight seconds.
        assert elapsed < 4.0


async def test_call_timeout_cancels_on_server(make_config: Config) -> None:
    tag = uuid.uuid4().hex
    async with trio_mcp.open_mcp_pool({"s": make_config(call_timeout=0.5)}) as pool:
        await pool.tool_call("s", "echo", {"text": "connect first"})
        with pytest.raises(trio_mcp.ToolCallTimeout) as info:
            await pool.tool_call("s", "slow", {"seconds": 30, "tag": tag})
        assert isinstance(info.value, TimeoutError)
        assert info.value.server == "s"
        assert await wait_for_events(pool, "s", tag, "cancelled") == ["started", "cancelled"]
        assert result_text(await pool.tool_call("s", "echo", {"text": "ok"})) == "ok"


async def test_caller_cancel_scope_cancels_on_server(make_config: Config) -> None:
    tag = uuid.uuid4().hex
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        await pool.tool_call("s", "echo", {"text": "connect first"})
        with trio.move_on_after(0.5) as scope:
            await pool.tool_call("s", "slow", {"seconds": 30, "tag": tag})
        assert scope.cancelled_caught
        assert await wait_for_events(pool, "s", tag, "cancelled") == ["started", "cancelled"]
        assert result_text(await pool.tool_call("s", "echo", {"text": "ok"})) == "ok"


async def test_tool_calls_batch(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool(
        {"s": make_config(), "dead": trio_mcp.StdioServer("/nonexistent/mcp-server")}
    ) as pool:
        results = await pool.tool_calls(
            [
                ("s", "add", {"a": 1, "b": 2}),
                trio_mcp.ToolCall("dead", "echo", {"text": "x"}),
                ("s", "nope"),
                ("s", "slow", {"seconds": 0.2}),
                ("s", "echo", {"text": "last"}),
            ]
        )
        assert len(results) == 5
        first, second, third, fourth, fifth = results
        assert structured(first) == 3
        assert isinstance(second, trio_mcp.ServerUnavailableError)
        assert isinstance(third, trio_mcp.UnknownToolError)
        assert result_text(fourth) == "slept 0.2"  # type: ignore[arg-type]
        assert result_text(fifth) == "last"  # type: ignore[arg-type]


async def test_resources_and_prompts(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        resources = await pool.list_resources("s")
        uris = [str(r.uri) for r in resources]
        # The test server also lists its skills' files (SEP-2640) as resources.
        assert uris[0] == "memo://greeting" and len(uris) == len(set(uris))
        read = await pool.read_resource("s", "memo://greeting")
        assert read.contents[0].text == "hello from the test server"  # type: ignore[union-attr]
        prompts = await pool.list_prompts("s")
        assert [p.name for p in prompts] == ["summarize"]
        prompt = await pool.get_prompt("s", "summarize", {"topic": "trio"})
        assert "summarize trio" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_bad_inputs_get_typed_errors(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        with pytest.raises(trio_mcp.UnknownServerError, match="'nope'") as server_info:
            await pool.tool_call("nope", "echo", {"text": "x"})
        assert isinstance(server_info.value, LookupError)
        with pytest.raises(trio_mcp.UnknownToolError, match="no tool named 'missing'") as tool_info:
            await pool.tool_call("s", "missing", {})
        assert isinstance(tool_info.value, LookupError)
        assert tool_info.value.tool == "missing"
        with pytest.raises(trio_mcp.InvalidArgumentsError, match="'b' is a required property"):
            await pool.tool_call("s", "add", {"a": 1})
        with pytest.raises(trio_mcp.InvalidArgumentsError, match="must be a mapping"):
            await pool.tool_call("s", "add", [1, 2])  # type: ignore[arg-type]
        with pytest.raises(trio_mcp.InvalidArgumentsError, match="a: must satisfy type"):
            await pool.tool_call("s", "add", {"a": "secret-value", "b": 1})
        with pytest.raises(trio_mcp.UnknownServerError):
            await pool.list_tools("nope")
        # Still serving after all of that.
        assert result_text(await pool.tool_call("s", "echo", {"text": "fine"})) == "fine"


async def test_invalid_argument_value_is_not_echoed(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        with pytest.raises(trio_mcp.InvalidArgumentsError) as info:
            await pool.tool_call("s", "add", {"a": "hunter2", "b": 1})
        assert "hunter2" not in str(info.value)


async def test_server_side_validation_when_client_validation_is_off(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}, validate_arguments=False) as pool:
        result = await pool.tool_call("s", "add", {"a": 1})
        assert result.is_error  # the server judged it


async def test_user_exception_comes_out_unchanged(make_config: Config) -> None:
    class Mine(Exception):
        pass

    with pytest.raises(Mine) as info:
        async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
            await pool.tool_call("s", "echo", {"text": "x"})
            raise Mine("mine")
    assert type(info.value) is Mine


async def test_calls_in_flight_at_close_and_after_close(make_config: Config) -> None:
    outcomes: list[BaseException] = []

    async with trio.open_nursery() as outer, trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        await pool.tool_call("s", "echo", {"text": "warm"})

        async def caller() -> None:
            try:
                await pool.tool_call("s", "slow", {"seconds": 30})
            except trio_mcp.MCPPoolError as error:
                outcomes.append(error)

        for _ in range(10):
            outer.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked(0.2)
    assert len(outcomes) == 10
    assert all(isinstance(error, trio_mcp.PoolClosedError) for error in outcomes), outcomes
    with pytest.raises(trio_mcp.PoolClosedError):
        await pool.tool_call("s", "echo", {"text": "late"})
    with pytest.raises(trio_mcp.PoolClosedError):
        await pool.list_tools("s")
    assert pool.closed


async def test_pool_close_method(make_config: Config) -> None:
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        await pool.tool_call("s", "echo", {"text": "x"})
        pool.close()
        pool.close()  # idempotent
        with pytest.raises(trio_mcp.PoolClosedError):
            await pool.tool_call("s", "echo", {"text": "x"})


async def test_serve_mcp_pool_in_own_nursery(make_config: Config) -> None:
    async with trio.open_nursery() as nursery:
        pool = await nursery.start(trio_mcp.serve_mcp_pool, {"s": make_config()})
        assert result_text(await pool.tool_call("s", "echo", {"text": "served"})) == "served"
        nursery.cancel_scope.cancel()
    assert pool.closed


async def test_stress_many_tasks_share_one_session(make_config: Config, transport: str) -> None:
    """Concurrent calls from 8 tasks on one session, each answer checked.

    Streamable HTTP gets the full 1,600 calls: mcp v1 hung under trio here, so a
    regression must show at once.
    """
    per_task = 200 if transport == "http" else 50
    async with trio_mcp.open_mcp_pool({"s": make_config()}) as pool:
        mismatches: list[str] = []

        async def worker(worker_id: int) -> None:
            for i in range(per_task):
                text = f"{worker_id}-{i}"
                got = result_text(await pool.tool_call("s", "echo", {"text": text}))
                if got != text:
                    mismatches.append(f"{text} -> {got}")

        async with trio.open_nursery() as nursery:
            for worker_id in range(8):
                nursery.start_soon(worker, worker_id)
        assert mismatches == []


async def test_headers_are_templated(http_server: HttpServer) -> None:
    servers = {
        "h": trio_mcp.StreamableHttpServer(
            http_server.http_url,
            headers={"X-Test-Token": "Bearer ${token}", "X-Test-Literal": "$$5"},
        ),
        "sse": trio_mcp.SseServer(http_server.sse_url, headers={"X-Test-Token": "${token}"}),
    }
    async with trio_mcp.open_mcp_pool(servers, variables={"token": "t0k3n"}) as pool:
        seen = json.loads(result_text(await pool.tool_call("h", "whoami")))
        assert seen == {"x-test-token": "Bearer t0k3n", "x-test-literal": "$5"}
        seen = json.loads(result_text(await pool.tool_call("sse", "whoami")))
        assert seen == {"x-test-token": "t0k3n"}


async def test_missing_template_variable(http_server: HttpServer) -> None:
    servers = {
        "h": trio_mcp.StreamableHttpServer(
            http_server.http_url,
            headers={"Authorization": "Bearer ${api_key}", "X-Other": "other-secret"},
        ),
        "ok": stdio_server(),
    }
    async with trio_mcp.open_mcp_pool(servers, variables={"unrelated": "v-secret"}) as pool:
        with pytest.raises(trio_mcp.TemplateError) as info:
            await pool.tool_call("h", "echo", {"text": "x"})
        message = str(info.value)
        assert "api_key" in message and "'h'" in message
        assert info.value.variable == "api_key"
        assert "other-secret" not in message and "v-secret" not in message
        assert "other-secret" not in repr(servers["h"])
        # The other server is unaffected.
        assert result_text(await pool.tool_call("ok", "echo", {"text": "y"})) == "y"


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda port: trio_mcp.StreamableHttpServer(f"http://127.0.0.1:{port}/mcp"), "connection failed"),
        (lambda port: trio_mcp.SseServer(f"http://127.0.0.1:{port}/sse"), "connection failed"),
        (lambda port: trio_mcp.StreamableHttpServer("http://no-such-host.invalid/mcp"), "connection"),
        (lambda port: trio_mcp.StdioServer("/nonexistent/mcp-server"), "not found"),
        (lambda port: trio_mcp.StdioServer("no-such-command-on-path-xyz"), "not found"),
        (lambda port: stdio_server(cwd="/nonexistent-dir"), "working directory"),
        (lambda port: trio_mcp.StdioServer("python3", ["-c", "pass"]), "closed the connection"),
    ],
)
async def test_unavailable_servers(make: Callable[[int], trio_mcp.ServerConfig], fragment: str) -> None:
    port = await free_port()
    async with trio_mcp.open_mcp_pool({"bad": make(port), "good": stdio_server()}) as pool:
        for _ in range(2):  # a second call tries again and fails the same way
            with pytest.raises(trio_mcp.ServerUnavailableError, match=fragment) as info:
                await pool.tool_call("bad", "echo", {"text": "x"})
            assert info.value.server == "bad"
            assert info.value.__cause__ is not None or "not found" in fragment or "directory" in fragment
        assert result_text(await pool.tool_call("good", "echo", {"text": "ok"})) == "ok"


async def test_http_404_is_unavailable(http_server: HttpServer) -> None:
    url = f"http://127.0.0.1:{http_server.port}/not-mcp"
    async with trio_mcp.open_mcp_pool(
        {"h": trio_mcp.StreamableHttpServer(url), "s": trio_mcp.SseServer(url)}
    ) as pool:
        with pytest.raises(trio_mcp.ServerUnavailableError):
            await pool.tool_call("h", "echo", {"text": "x"})
        with pytest.raises(trio_mcp.ServerUnavailableError, match="HTTP 404"):
            await pool.tool_call("s", "echo", {"text": "x"})


async def test_connect_timeout_on_a_server_that_never_answers() -> None:
    silent = trio_mcp.StdioServer(
        "python3",
        ["-c", "import sys, time; print('not json', flush=True); time.sleep(60)"],
        connect_timeout=0.5,
    )
    async with trio_mcp.open_mcp_pool({"silent": silent, "good": stdio_server()}) as pool:
        with pytest.raises(trio_mcp.ServerUnavailableError, match="connect timeout"):
            await pool.tool_call("silent", "echo", {"text": "x"})
        assert result_text(await pool.tool_call("good", "echo", {"text": "ok"})) == "ok"


async def test_server_crash_mid_call_then_reconnect() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(), "other": stdio_server()}) as pool:
        first_pid = structured(await pool.tool_call("s", "pid"))
        errors: list[BaseException] = []

        async def slow_call() -> None:
            try:
                await pool.tool_call("s", "slow", {"seconds": 30})
            except trio_mcp.MCPPoolError as error:
                errors.append(error)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(slow_call)
            await trio.testing.wait_all_tasks_blocked(0.2)
            with pytest.raises(trio_mcp.ServerDisconnectedError):
                await pool.tool_call("s", "crash")
        assert len(errors) == 3
        assert all(isinstance(e, trio_mcp.ServerDisconnectedError) for e in errors)
        with trio.fail_after(10):  # the crashed server really ends (EOF came as it began to)
            await wait_process_exit(first_pid)
        # The other server never noticed; the crashed one comes back on the next call.
        assert result_text(await pool.tool_call("other", "echo", {"text": "o"})) == "o"
        second_pid = structured(await pool.tool_call("s", "pid"))
        assert second_pid != first_pid


async def test_lazy_connect_is_shared_by_concurrent_first_callers() -> None:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        await trio.testing.wait_all_tasks_blocked()
        assert pool.statistics()["s"].state is trio_mcp.ServerState.IDLE
        pids: list[int] = []

        async def call() -> None:
            pids.append(structured(await pool.tool_call("s", "pid")))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(call)
        # Ten first callers, one connection, one server process.
        assert len(pids) == 10 and len(set(pids)) == 1
        assert pool.statistics()["s"].connects == 1
        spawned = {child.pid for child in psutil.Process().children(recursive=True)} - before
        assert spawned == {pids[0]}


async def test_nothing_connects_before_first_use() -> None:
    children_before = len(psutil.Process().children(recursive=True))
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        await trio.testing.wait_all_tasks_blocked()
        assert len(psutil.Process().children(recursive=True)) == children_before
        await pool.tool_call("s", "echo", {"text": "x"})
        assert len(psutil.Process().children(recursive=True)) == children_before + 1


async def test_close_ends_every_child_and_returns_fds(http_server: HttpServer) -> None:
    me = psutil.Process()
    servers: dict[str, trio_mcp.ServerConfig] = {f"stdio{i}": stdio_server() for i in range(3)}
    servers["http"] = trio_mcp.StreamableHttpServer(http_server.http_url)
    servers["sse"] = trio_mcp.SseServer(http_server.sse_url)
    # One warm-up round so lazily created global state (thread caches, imports) exists.
    for round_ in range(3):
        fds = me.num_fds()
        async with trio_mcp.open_mcp_pool(servers) as pool:
            pids = [structured(await pool.tool_call(f"stdio{i}", "pid")) for i in range(3)]
            await pool.tool_call("http", "echo", {"text": "x"})
            await pool.tool_call("sse", "echo", {"text": "x"})
        for pid in pids:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        if round_ > 0:
            assert me.num_fds() == fds


async def test_close_kills_a_stubborn_process_tree() -> None:
    """A server tree that ignores stdin closing and SIGTERM is still ended, in bounded time."""
    stubborn = trio_mcp.StdioServer(sys.executable, [str(Path(SERVER).with_name("stubborn_server.py"))])
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    async with trio_mcp.open_mcp_pool({"s": stubborn}) as pool:
        assert result_text(await pool.tool_call("s", "echo", {"text": "alive"})) == "alive"
        tree = [p for p in me.children(recursive=True) if p.pid not in before]
        assert len(tree) >= 3  # launcher, real server, sleeper
        start = trio.current_time()
    elapsed = trio.current_time() - start
    assert elapsed < 10
    # SIGKILL has been sent to the whole group; give the kernel a moment to deliver it.
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []


MINI_SERVER = str(Path(__file__).resolve().parent.parent / "benchmarks" / "mini_server.py")


async def test_a_server_not_written_with_the_python_sdk() -> None:
    """benchmarks/mini_server.py: hand-written JSON-RPC, legacy handshake only, no discover."""
    async with trio_mcp.open_mcp_pool(
        {"m": trio_mcp.StdioServer(sys.executable, ["-I", "-S", MINI_SERVER])}
    ) as pool:
        assert [tool.name for tool in await pool.list_tools("m")] == ["echo", "list_count"]
        assert result_text(await pool.tool_call("m", "echo", {"text": "interop"})) == "interop"
        with pytest.raises(trio_mcp.InvalidArgumentsError):
            await pool.tool_call("m", "echo", {})
        with pytest.raises(trio_mcp.RequestFailedError) as info:
            await pool.list_prompts("m")
        assert info.value.code == -32601
