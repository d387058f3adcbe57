"""The OpenAI chat-completions shapes: tool schemas in, tool calls out.

Responses may be OpenAI SDK objects or plain dicts of the same shape; both are read
through :func:`_field`, so nothing here imports the ``openai`` package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
import mcp.types as types

__all__ = ["ParsedToolCall", "assistant_message", "to_openai_tool", "tool_calls_of"]

_EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def to_openai_tool(tool: types.Tool | Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """An MCP tool (or a dict of one) as an OpenAI function tool.

    ``{"type": "function", "function": {"name", "description", "parameters"}}``, with an
    empty description when there is none and an empty object schema when the tool has
    no input schema. ``name`` overrides the tool's name (for server-prefixed names).
    """
    tool_name: Any
    description: Any
    schema: Any
    if isinstance(tool, types.Tool):
        tool_name, description, schema = tool.name, tool.description, tool.input_schema
    elif isinstance(tool, Mapping):
        tool_name = tool.get("name")
        description = tool.get("description")
        schema = tool.get("inputSchema", tool.get("input_schema", tool.get("parameters")))
    else:
        raise TypeError(f"expected an mcp.types.Tool or a mapping, got {type(tool).__name__}")
    if not isinstance(tool_name, str) or not tool_name:
        raise ValueError("the tool has no name")
    parameters = dict(schema) if isinstance(schema, Mapping) and schema else dict(_EMPTY_OBJECT_SCHEMA)
    parameters.setdefault("type", "object")
    return {
        "type": "function",
        "function": {
            "name": name or tool_name,
            "description": description or "",
            "parameters": parameters,
        },
    }


@attrs.frozen
class ParsedToolCall:
    """One tool call from a model's response, as the model sent it."""

    id: str
    name: str
    arguments: str  # raw JSON text, parsed (and judged) later


def _message(response: Any) -> Any:
    """The assistant message of a chat completion (or the message itself)."""
    choices = _field(response, "choices")
    if choices:
        return _field(choices[0], "message")
    return response


def tool_calls_of(response: Any) -> list[ParsedToolCall]:
    """The tool calls in a completion response (an OpenAI object or a dict)."""
    message = _message(response)
    calls = _field(message, "tool_calls") or []
    parsed: list[ParsedToolCall] = []
    for index, call in enumerate(calls):
        function = _field(call, "function") or {}
        arguments = _field(function, "arguments")
        if arguments is None:
            arguments = "{}"
        elif not isinstance(arguments, str):
            arguments = _json_dumps(arguments)
        parsed.append(
            ParsedToolCall(
                id=str(_field(call, "id") or f"call_{index}"),
                name=str(_field(function, "name") or ""),
                arguments=arguments,
            )
        )
    return parsed


def assistant_message(response: Any, calls: list[ParsedToolCall]) -> dict[str, Any]:
    """The assistant message to append to the conversation, as a plain dict."""
    message = _message(response)
    return {
        "role": "assistant",
        "content": _field(message, "content"),
        "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in calls
        ],
    }


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
