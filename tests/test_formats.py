"""Every LLM's tool format, and approval: checked against each vendor's own SDK types."""

from __future__ import annotations

import uuid
from typing import Any

import pydantic
import pytest
from anthropic.types import Message as AnthropicMessage
from anthropic.types import MessageParam, ToolParam
from google.genai import types as gemini
from mcp.types import ToolAnnotations
from openai.types.chat import ChatCompletionToolParam
from openai.types.responses import FunctionToolParam, Response, ResponseInputParam

import trio_mcp

from .conftest import HttpServer, config_for
from .test_pool import structured
from .test_toolset import completion

TOOLS = ["echo", "add", "fail", "destroy", "forecast"]


def responses_response(*calls: tuple[str, str, str], text: str | None = None) -> dict[str, Any]:
    """An OpenAI Responses API response (dict) with ``function_call`` items."""
    output: list[dict[str, Any]] = [
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]
    if text is not None:
        output.append(
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    output += [
        {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name, "arguments": args}
        for call_id, name, args in calls
    ]
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "model": "recorded",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def anthropic_message(*calls: tuple[str, str, dict[str, Any]], text: str | None = None) -> dict[str, Any]:
    """An Anthropic Messages response (dict) with ``tool_use`` blocks."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
    content += [
        {"type": "tool_use", "id": call_id, "name": name, "input": args} for call_id, name, args in calls
    ]
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "recorded",
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def test_converters_for_one_tool() -> None:
    tool = {"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {}}}
    schema = {"type": "object", "properties": {}}
    assert trio_mcp.to_responses_tool(tool) == {
        "type": "function",
        "name": "t",
        "description": "d",
        "parameters": schema,
        "strict": False,
    }
    assert trio_mcp.to_anthropic_tool(tool, name="s__t") == {
        "name": "s__t",
        "description": "d",
        "input_schema": schema,
    }
    assert trio_mcp.to_gemini_tool({"name": "t"}) == {
        "name": "t",
        "description": "",
        "parameters_json_schema": schema,
    }
    with pytest.raises(ValueError, match="no name"):
        trio_mcp.to_anthropic_tool({"description": "x"})


async def test_tool_schemas_in_every_format_validate_with_the_vendor_types(http_server: HttpServer) -> None:
    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=TOOLS)
    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        toolset = trio_mcp.Toolset(pool, config)
        chat = await toolset.tool_schemas()
        assert chat == await toolset.tool_schemas("openai")
        for schema in chat:
            pydantic.TypeAdapter(ChatCompletionToolParam).validate_python(schema, strict=True)
        responses = await toolset.tool_schemas("responses")
        assert [schema["name"] for schema in responses] == TOOLS
        for schema in responses:
            pydantic.TypeAdapter(FunctionToolParam).validate_python(schema, strict=True)
        anthropic = await toolset.tool_schemas("anthropic")
        assert [schema["name"] for schema in anthropic] == TOOLS
        for schema in anthropic:
            pydantic.TypeAdapter(ToolParam).validate_python(schema, strict=True)
        [gemini_tool] = await toolset.tool_schemas("gemini")
        declarations = gemini.Tool.model_validate(gemini_tool).function_declarations
        assert declarations is not None and [d.name for d in declarations] == TOOLS
        assert declarations[1].parameters_json_schema["required"] == ["a", "b"]  # type: ignore[index]
        with pytest.raises(ValueError, match="unknown tool format"):
            await toolset.tool_schemas("cohere")  # type: ignore[arg-type]


@pytest.mark.parametrize("as_sdk_object", [False, True])
async def test_responses_api_function_calls(http_server: HttpServer, as_sdk_object: bool) -> None:
    raw = responses_response(
        ("c1", "add", '{"a": 1, "b": 2}'), ("c2", "teleport", "{}"), text="Working on it."
    )
    response: Any = Response.model_validate(raw) if as_sdk_object else raw
    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=TOOLS)
    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        toolset = trio_mcp.Toolset(pool, config)
        assert toolset.tool_call_count(response) == 2
        items = await toolset.process_completion_response(response)
    # The model's own items come back first (reasoning included), then one output per call.
    assert [item["type"] for item in items] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert items[4] == {"type": "function_call_output", "call_id": "c1", "output": "3"}
    assert items[5]["call_id"] == "c2" and "not available" in items[5]["output"]
    pydantic.TypeAdapter(ResponseInputParam).validate_python(items)


@pytest.mark.parametrize("as_sdk_object", [False, True])
async def test_anthropic_tool_use_blocks(http_server: HttpServer, as_sdk_object: bool) -> None:
    raw = anthropic_message(
        ("toolu_1", "echo", {"text": "hi"}), ("toolu_2", "fail", {}), text="Let me check."
    )
    response: Any = AnthropicMessage.model_validate(raw) if as_sdk_object else raw
    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=TOOLS)
    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        toolset = trio_mcp.Toolset(pool, config)
        assert toolset.has_tool_calls(response) and toolset.tool_call_count(response) == 2
        assistant, user = await toolset.process_completion_response(response)
    assert assistant["role"] == "assistant"
    assert [block["type"] for block in assistant["content"]] == ["text", "tool_use", "tool_use"]
    assert user["role"] == "user"
    ok, failed = user["content"]
    assert ok == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "hi", "is_error": False}
    assert failed["tool_use_id"] == "toolu_2" and failed["is_error"] is True
    for message in (assistant, user):
        pydantic.TypeAdapter(MessageParam).validate_python(message)


async def test_run_tool_loop_with_anthropic_messages(http_server: HttpServer) -> None:
    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=TOOLS)
    seen_tools: list[list[dict[str, Any]]] = []
    script = [
        anthropic_message(("toolu_1", "add", {"a": 20, "b": 22})),
        anthropic_message(text="The answer is 42."),
    ]

    async def call_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        seen_tools.append(tools)
        return AnthropicMessage.model_validate(script[len(seen_tools) - 1])

    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        toolset = trio_mcp.Toolset(pool, config)
        conversation = await trio_mcp.run_tool_loop(
            toolset, call_model, [{"role": "user", "content": "6*7?"}], format="anthropic"
        )
    assert "input_schema" in seen_tools[0][0]
    assert conversation[2]["content"][0]["content"] == "42"
    assert conversation[-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "The answer is 42."}],
    }


# -- approval and annotations -----------------------------------------------------------------


async def test_approve_sees_annotations_and_a_denial_is_never_sent(http_server: HttpServer) -> None:
    tag = f"approve-{uuid.uuid4().hex}"
    asked: list[tuple[str, str, dict[str, Any], ToolAnnotations | None]] = []

    async def approve(
        server: str, tool: str, arguments: dict[str, Any], annotations: ToolAnnotations | None
    ) -> bool:
        asked.append((server, tool, arguments, annotations))
        return not (annotations is not None and annotations.destructive_hint)

    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=TOOLS, approve=approve)
    response = completion(
        ("c1", "destroy", f'{{"tag": "{tag}"}}'),
        ("c2", "forecast", '{"city": "Oslo"}'),
        ("c3", "echo", '{"text": "x"}'),
    )
    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        toolset = trio_mcp.Toolset(pool, config)
        messages = await toolset.process_completion_response(response)
        # The destructive call was never sent: the server recorded nothing under the tag.
        assert structured(await pool.tool_call("s", "events", {"tag": tag})) == []
    denied, forecast, echo = (m["content"] for m in messages[1:])
    assert denied == "Error: the call to tool 'destroy' was not approved; nothing was run."
    assert '"celsius": 21.5' in forecast and echo == "x"
    by_tool = {tool: (server, arguments, annotations) for server, tool, arguments, annotations in asked}
    assert by_tool["destroy"][:2] == ("s", {"tag": tag})
    assert by_tool["destroy"][2] is not None and by_tool["destroy"][2].destructive_hint is True
    assert by_tool["forecast"][2] is not None and by_tool["forecast"][2].read_only_hint is True
    assert by_tool["echo"][2] is None


async def test_approve_plain_raising_or_not_a_bool_denies(
    http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    def approve(server: str, tool: str, arguments: dict[str, Any], annotations: object) -> Any:
        if tool == "add":
            raise RuntimeError(f"secret {arguments}")
        return "yes" if tool == "echo" else True

    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=TOOLS, approve=approve)
    response = completion(
        ("c1", "add", '{"a": 1, "b": 2}'),
        ("c2", "echo", '{"text": "x"}'),
        ("c3", "forecast", '{"city": "Oslo"}'),
    )
    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        messages = await trio_mcp.Toolset(pool, config).process_completion_response(response)
    contents = [m["content"] for m in messages[1:]]
    assert "not approved" in contents[0] and "not approved" in contents[1]
    assert "celsius" in contents[2]
    assert "RuntimeError" in caplog.text and "secret" not in caplog.text
    with pytest.raises(trio_mcp.ConfigError, match="approve"):
        trio_mcp.ToolConfig("t", ["s"], approve="always")  # type: ignore[arg-type]


async def test_toolset_surfaces_annotations_and_output_schemas(http_server: HttpServer) -> None:
    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=TOOLS, prefix_names=True)
    async with trio_mcp.open_mcp_pool({"s": config_for("http", http_server)}) as pool:
        tools = {tool.name: tool for tool in await trio_mcp.Toolset(pool, config).tools()}
    assert list(tools) == [f"s__{name}" for name in TOOLS]
    forecast = tools["s__forecast"]
    assert forecast.server == "s" and forecast.tool.name == "forecast"
    assert forecast.annotations is not None and forecast.annotations.read_only_hint is True
    assert forecast.output_schema is not None and "celsius" in forecast.output_schema["properties"]
    assert tools["s__destroy"].annotations is not None and tools["s__destroy"].annotations.destructive_hint


def test_blocking_toolset_formats_and_approval(http_server: HttpServer) -> None:
    tag = f"blocking-{uuid.uuid4().hex}"
    config = trio_mcp.ToolConfig("t", ["s"], allow_tools=TOOLS, approve=lambda *call: call[1] != "destroy")
    with trio_mcp.start_portal({"s": config_for("http", http_server)}) as portal:
        toolset = trio_mcp.BlockingToolset(portal, config)
        assert [schema["name"] for schema in toolset.tool_schemas("anthropic", timeout=20)] == TOOLS
        assert {tool.name for tool in toolset.tools(timeout=20)} == set(TOOLS)
        response = responses_response(("c1", "destroy", f'{{"tag": "{tag}"}}'))
        items = toolset.process_completion_response(response, timeout=20)
        assert "not approved" in items[-1]["output"]
        assert portal.tool_call("s", "events", {"tag": tag}, timeout=20).structured_content == {"result": []}
