"""The LLM tool layer against real servers, with recorded completion responses."""

from __future__ import annotations

import asyncio
import json
import threading
import types as pytypes
import uuid
from typing import Any

import mcp.types as types
import pytest
from openai.types.chat import ChatCompletion

import trio_mcp
from trio_mcp.compat import ragflow

from .conftest import HttpServer, config_for, stdio_server


def completion(*calls: tuple[str, str, str], content: str | None = None) -> dict[str, Any]:
    """A chat-completions response (plain dict) with the given (id, name, arguments) calls."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in calls
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "recorded",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
    }


# -- schema conversion ----------------------------------------------------------------


def test_to_openai_tool_cases() -> None:
    tool = types.Tool(
        name="add",
        description="Add.",
        input_schema={"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    )
    assert trio_mcp.to_openai_tool(tool) == {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add.",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        },
    }
    bare = trio_mcp.to_openai_tool({"name": "ping"})
    assert bare["function"] == {
        "name": "ping",
        "description": "",
        "parameters": {"type": "object", "properties": {}},
    }
    from_dict = trio_mcp.to_openai_tool({"name": "x", "inputSchema": {"properties": {}}})
    assert from_dict["function"]["parameters"] == {"properties": {}, "type": "object"}
    assert trio_mcp.to_openai_tool(tool, name="srv__add")["function"]["name"] == "srv__add"
    assert ragflow.mcp_tool_metadata_to_openai_tool(tool) == trio_mcp.to_openai_tool(tool)
    with pytest.raises(ValueError, match="no name"):
        trio_mcp.to_openai_tool({"description": "nameless"})
    with pytest.raises(TypeError):
        trio_mcp.to_openai_tool(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alias": "", "servers": ["s"]}, "alias"),
        ({"alias": "a", "servers": []}, "at least one"),
        ({"alias": "a", "servers": ["s", "s"]}, "repeat"),
        ({"alias": "a", "servers": ["s"], "allow_tools": "echo"}, "single string"),
        ({"alias": "a", "servers": ["s"], "max_tool_call_turns": -1}, "turns"),
        ({"alias": "a", "servers": ["s"], "timeout": 0}, "timeout"),
    ],
)
def test_tool_config_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(trio_mcp.ConfigError, match=match):
        trio_mcp.ToolConfig(**kwargs)


async def test_a_toolset_checks_its_config_against_the_pool() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        with pytest.raises(trio_mcp.ConfigError, match="server 'ghost'"):
            trio_mcp.Toolset(pool, trio_mcp.ToolConfig("t", ["ghost"]))
        with pytest.raises(trio_mcp.ConfigError, match="expected a ToolConfig"):
            trio_mcp.Toolset(pool, "t")  # type: ignore[arg-type]


# -- toolsets over real servers ---------------------------------------------------------


async def test_schemas_allow_list_and_collisions(http_server: HttpServer) -> None:
    servers = {"a": stdio_server(), "b": config_for("http", http_server)}
    configs = [
        trio_mcp.ToolConfig("only-a", ["a"], allow_tools=["echo", "add"]),
        trio_mcp.ToolConfig("both", ["a", "b"]),
        trio_mcp.ToolConfig(
            "both-prefixed", ["a", "b"], allow_tools=["a__echo", "b__add"], prefix_names=True
        ),
    ]
    async with trio_mcp.open_mcp_pool(servers) as pool:
        toolsets = {config.alias: trio_mcp.Toolset(pool, config) for config in configs}
        schemas = await toolsets["only-a"].tool_schemas()
        assert [s["function"]["name"] for s in schemas] == ["echo", "add"]
        assert schemas[1]["function"]["parameters"]["required"] == ["a", "b"]
        with pytest.raises(trio_mcp.ConfigError, match="servers 'a' and 'b' both offer a tool named 'echo'"):
            await toolsets["both"].tool_schemas()
        prefixed = await toolsets["both-prefixed"].tool_schemas()
        assert [s["function"]["name"] for s in prefixed] == ["a__echo", "b__add"]
        reply = await toolsets["both-prefixed"].process_completion_response(
            completion(("1", "a__echo", '{"text": "via a"}'), ("2", "b__add", '{"a": 2, "b": 3}'))
        )
        assert [m["content"] for m in reply[1:]] == ["via a", "5"]


async def test_process_completion_response(http_server: HttpServer) -> None:
    tag = uuid.uuid4().hex
    # The deadline is for the slow call; the quick ones must never meet it on a busy machine.
    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=["echo", "add", "slow", "fail"], timeout=3)
    response = completion(
        ("c1", "echo", '{"text": "hello"}'),
        ("c2", "add", '{"a": 1, "b": 2}'),
        ("c3", "pid", "{}"),  # exists on the server, outside the allow-list
        ("c4", "teleport", "{}"),  # unknown
        ("c5", "echo", '{"text": '),  # not JSON
        ("c6", "echo", '["not", "an", "object"]'),
        ("c7", "slow", json.dumps({"seconds": 60, "tag": tag})),  # times out
        ("c8", "fail", "{}"),  # the tool itself fails
        ("c9", "add", '{"a": "x"}'),  # arguments do not fit the schema
        content="Let me use some tools.",
    )
    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        await pool.list_tools("s")  # connected and listed: the deadline measures the calls alone
        toolset = trio_mcp.Toolset(pool, config)
        assert toolset.has_tool_calls(response) and toolset.tool_call_count(response) == 9
        messages = await toolset.process_completion_response(response)
        assert messages[0]["role"] == "assistant"
        assert messages[0]["content"] == "Let me use some tools."
        assert [c["id"] for c in messages[0]["tool_calls"]] == [f"c{i}" for i in range(1, 10)]
        tool_messages = messages[1:]
        assert [m["tool_call_id"] for m in tool_messages] == [f"c{i}" for i in range(1, 10)]
        assert all(m["role"] == "tool" for m in tool_messages)
        contents = [m["content"] for m in tool_messages]
        assert contents[0] == "hello" and contents[1] == "3"
        assert "not available" in contents[2] and "not available" in contents[3]
        assert "not valid JSON" in contents[4] and "JSON object" in contents[5]
        assert "did not finish within 3s" in contents[6]
        assert contents[7].startswith("Error:")
        assert "do not match its input schema" in contents[8]
        events = (await pool.tool_call("s", "events", {"tag": tag})).structured_content
        assert events is not None and "finished" not in events["result"]


async def test_openai_sdk_objects_are_accepted(http_server: HttpServer) -> None:
    sdk_response = ChatCompletion.model_validate(completion(("x1", "add", '{"a": 20, "b": 22}')))
    async with trio_mcp.open_mcp_pool({"s": config_for("sse", http_server)}) as pool:
        toolset = trio_mcp.Toolset(pool, trio_mcp.ToolConfig("t", ["s"]))
        assert toolset.tool_call_count(sdk_response) == 1
        messages = await toolset.process_completion_response(sdk_response)
        assert messages[1] == {"role": "tool", "tool_call_id": "x1", "content": "42"}
        no_calls = ChatCompletion.model_validate(completion(content="done"))
        assert not toolset.has_tool_calls(no_calls)


async def test_refusal_runs_nothing() -> None:
    tag = uuid.uuid4().hex
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        toolset = trio_mcp.Toolset(pool, trio_mcp.ToolConfig("t", ["s"], max_tool_call_turns=3))
        refused = toolset.refuse_completion_response(
            completion(("r1", "slow", json.dumps({"seconds": 0.01, "tag": tag})), ("r2", "echo", "{}"))
        )
        assert [m["role"] for m in refused] == ["assistant", "tool", "tool"]
        assert all("budget (3 turns) is exhausted" in m["content"] for m in refused[1:])
        events = (await pool.tool_call("s", "events", {"tag": tag})).structured_content
        assert events == {"result": []}


async def test_unavailable_server_is_an_error_message() -> None:
    servers = {"s": stdio_server(), "dead": trio_mcp.StdioServer("/nonexistent/server")}
    async with trio_mcp.open_mcp_pool(servers) as pool:
        toolset = trio_mcp.Toolset(pool, trio_mcp.ToolConfig("t", ["s", "dead"]))
        schemas = await toolset.tool_schemas()  # the dead server is left out
        assert "echo" in {s["function"]["name"] for s in schemas}
        messages = await toolset.process_completion_response(completion(("1", "echo", '{"text": "ok"}')))
        assert messages[1]["content"] == "ok"


class ScriptedModel:
    """A fake model that answers from a script and records what it was shown."""

    def __init__(self, *responses: dict[str, Any]) -> None:
        self.responses = list(responses)
        self.seen_tools: list[list[dict[str, Any]]] = []

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        self.seen_tools.append(tools)
        return self.responses.pop(0)


async def test_run_tool_loop_until_the_model_stops() -> None:
    model = ScriptedModel(
        completion(("1", "add", '{"a": 1, "b": 2}')),
        completion(("2", "echo", '{"text": "three"}')),
        completion(content="The answer is 3."),
    )

    async def call_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        return model(messages, tools)

    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        toolset = trio_mcp.Toolset(pool, trio_mcp.ToolConfig("t", ["s"], allow_tools=["add", "echo"]))
        conversation = await trio_mcp.run_tool_loop(
            toolset, call_model, [{"role": "user", "content": "1+2?"}]
        )
    assert [m["role"] for m in conversation] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert conversation[2]["content"] == "3" and conversation[4]["content"] == "three"
    assert conversation[-1] == {"role": "assistant", "content": "The answer is 3."}
    assert [t["function"]["name"] for t in model.seen_tools[0]] == ["echo", "add"]


async def test_run_tool_loop_refuses_past_the_budget() -> None:
    greedy = [completion((str(i), "echo", '{"text": "again"}')) for i in range(5)]
    model = ScriptedModel(*greedy)

    async def call_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        return model(messages, tools)

    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        toolset = trio_mcp.Toolset(pool, trio_mcp.ToolConfig("t", ["s"], max_tool_call_turns=2))
        conversation = await trio_mcp.run_tool_loop(toolset, call_model, [])
    tool_contents = [m["content"] for m in conversation if m["role"] == "tool"]
    assert tool_contents[:2] == ["again", "again"]
    assert all("budget" in c for c in tool_contents[2:]) and len(tool_contents) == 4
    assert len(model.responses) == 1  # two executed turns, one refused, one last chance


def test_blocking_toolset_and_loop(http_server: HttpServer) -> None:
    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=["add"])
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:
        toolset = trio_mcp.BlockingToolset(portal, config)
        assert [s["function"]["name"] for s in toolset.tool_schemas()] == ["add"]
        model = ScriptedModel(completion(("1", "add", '{"a": 4, "b": 5}')), completion(content="9"))
        conversation = toolset.run_tool_loop(model, [{"role": "user", "content": "4+5"}])
        assert [m.get("content") for m in conversation] == ["4+5", None, "9", "9"]
        reply = toolset.process_completion_response(completion(("z", "echo", '{"text": "x"}')))
        assert "not available" in reply[1]["content"]


# -- RAGFlow drop-in ----------------------------------------------------------------------


def test_ragflow_drop_in_from_threads(http_server: HttpServer) -> None:
    http = pytypes.SimpleNamespace(
        id="http-server",
        url=http_server.http_url,
        server_type="streamable-http",
        headers={"X-Test-Token": "${token}"},
    )
    sse = pytypes.SimpleNamespace(id="sse-server", url=http_server.sse_url, server_type="sse", headers=None)
    first = ragflow.MCPToolCallSession(http, {"token": "abc"})
    second = ragflow.MCPToolCallSession(sse)
    third = ragflow.MCPToolCallSession(sse)
    try:
        assert "echo" in {tool.name for tool in first.get_tools()}
        assert json.loads(first.tool_call("whoami", {})) == {"x-test-token": "abc"}
        answers: list[str] = []
        lock = threading.Lock()

        def worker(i: int) -> None:
            session = first if i % 2 else second
            text = session.tool_call("echo", {"text": f"t{i}"})
            with lock:
                answers.append(text)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(answers) == sorted(f"t{i}" for i in range(16))
        assert first.tool_call("no_such_tool", {}).startswith("MCP server error:")
        assert second.tool_call("slow", {"seconds": 5}, timeout=0.3).startswith("MCP server error:")
        ragflow.close_multiple_mcp_toolcall_sessions([second])
        assert second.tool_call("echo", {"text": "x"}).startswith("MCP server error:")
        asyncio.run(third.close())
    finally:
        ragflow.shutdown_all_mcp_sessions()
    assert first._portal.closed and third._portal.closed
    with pytest.raises(ValueError, match="unsupported"):
        ragflow.MCPToolCallSession(
            pytypes.SimpleNamespace(id="x", url="http://h/x", server_type="ws", headers={})
        )
