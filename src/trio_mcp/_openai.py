"""Every LLM vendor's tool shapes: tool schemas in, tool calls out, answers back.

Four formats: OpenAI Chat Completions (``"openai"``), the OpenAI Responses API
(``"responses"``), Anthropic Messages (``"anthropic"``) and Google Gemini (``"gemini"``,
schemas only). Responses may be the vendors' SDK objects or plain dicts of the same
shape; both are read through :func:`_field`, so nothing here imports a vendor package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs
import mcp.types as types

__all__ = [
    "FORMATS",
    "ParsedToolCall",
    "ToolFormat",
    "answer_messages",
    "assistant_message",
    "schemas_for",
    "to_anthropic_tool",
    "to_gemini_tool",
    "to_openai_tool",
    "to_responses_tool",
    "tool_calls_of",
    "turn_messages",
]

#: The tool formats :meth:`Toolset.tool_schemas` speaks.
ToolFormat = Literal["openai", "responses", "anthropic", "gemini"]
FORMATS: tuple[str, ...] = ("openai", "responses", "anthropic", "gemini")

_EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _tool_parts(tool: types.Tool | Mapping[str, Any], name: str | None) -> tuple[str, str, dict[str, Any]]:
    """The name, description and input schema of an MCP tool (or a dict of one)."""
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
    return name or tool_name, description or "", parameters


def to_openai_tool(tool: types.Tool | Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """An MCP tool (or a dict of one) as an OpenAI Chat Completions function tool.

    ``{"type": "function", "function": {"name", "description", "parameters"}}``, with an
    empty description when there is none and an empty object schema when the tool has
    no input schema. ``name`` overrides the tool's name (for server-prefixed names).
    """
    tool_name, description, parameters = _tool_parts(tool, name)
    return {
        "type": "function",
        "function": {"name": tool_name, "description": description, "parameters": parameters},
    }


def to_responses_tool(tool: types.Tool | Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """An MCP tool as an OpenAI Responses API function tool:
    ``{"type": "function", "name", "description", "parameters", "strict": False}``
    (not strict: MCP schemas need not meet strict mode's rules)."""
    tool_name, description, parameters = _tool_parts(tool, name)
    return {
        "type": "function",
        "name": tool_name,
        "description": description,
        "parameters": parameters,
        "strict": False,
    }


def to_anthropic_tool(tool: types.Tool | Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """An MCP tool as an Anthropic Messages tool: ``{"name", "description", "input_schema"}``."""
    tool_name, description, parameters = _tool_parts(tool, name)
    return {"name": tool_name, "description": description, "input_schema": parameters}


def to_gemini_tool(tool: types.Tool | Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """An MCP tool as a Google Gemini function declaration:
    ``{"name", "description", "parameters_json_schema"}`` (the JSON Schema as it is;
    a ``google.genai.types.FunctionDeclaration`` accepts this dict)."""
    tool_name, description, parameters = _tool_parts(tool, name)
    return {"name": tool_name, "description": description, "parameters_json_schema": parameters}


_CONVERTERS: dict[str, Callable[..., dict[str, Any]]] = {
    "openai": to_openai_tool,
    "responses": to_responses_tool,
    "anthropic": to_anthropic_tool,
    "gemini": to_gemini_tool,
}


def schemas_for(format: str, tools: Sequence[tuple[str, types.Tool]]) -> list[dict[str, Any]]:
    """``(exposed name, tool)`` pairs as the ``tools=`` list of ``format``'s API.

    For Gemini that is one tool holding every function declaration
    (``[{"function_declarations": [...]}]``, or ``[]`` with no tools).
    """
    converter = _CONVERTERS.get(format) if isinstance(format, str) else None
    if converter is None:
        raise ValueError(f"unknown tool format {format!r} (known: {', '.join(FORMATS)})")
    schemas = [converter(tool, name=name) for name, tool in tools]
    if format == "gemini":
        return [{"function_declarations": schemas}] if schemas else []
    return schemas


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


def _kind(response: Any) -> str:
    """Which API a model response comes from: ``"openai"``, ``"responses"`` or ``"anthropic"``."""
    if _field(response, "choices") is not None:
        return "openai"
    if _is_list(_field(response, "output")):
        return "responses"
    if _is_list(_field(response, "content")):
        return "anthropic"
    return "openai"  # a chat message itself


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _as_dict(item: Any) -> dict[str, Any]:
    """An SDK object (pydantic) or a mapping as a plain dict, to resend to the API."""
    if isinstance(item, Mapping):
        return dict(item)
    dump = getattr(item, "model_dump", None)
    if callable(dump):
        dumped: dict[str, Any] = dump(mode="json", exclude_none=True)
        return dumped
    raise TypeError(f"cannot read a response item of type {type(item).__name__}")


def _arguments_text(arguments: Any) -> str:
    if arguments is None:
        return "{}"
    return arguments if isinstance(arguments, str) else _json_dumps(arguments)


def tool_calls_of(response: Any) -> list[ParsedToolCall]:
    """The tool calls in a model response: a chat completion, a Responses API response
    (its ``function_call`` items) or an Anthropic message (its ``tool_use`` blocks)."""
    kind = _kind(response)
    if kind == "responses":
        return [
            ParsedToolCall(
                id=str(_field(item, "call_id") or _field(item, "id") or f"call_{index}"),
                name=str(_field(item, "name") or ""),
                arguments=_arguments_text(_field(item, "arguments")),
            )
            for index, item in enumerate(_field(response, "output"))
            if _field(item, "type") == "function_call"
        ]
    if kind == "anthropic":
        return [
            ParsedToolCall(
                id=str(_field(block, "id") or f"toolu_{index}"),
                name=str(_field(block, "name") or ""),
                arguments=_arguments_text(_field(block, "input")),
            )
            for index, block in enumerate(_field(response, "content"))
            if _field(block, "type") == "tool_use"
        ]
    message = _message(response)
    calls = _field(message, "tool_calls") or []
    parsed: list[ParsedToolCall] = []
    for index, call in enumerate(calls):
        function = _field(call, "function") or {}
        parsed.append(
            ParsedToolCall(
                id=str(_field(call, "id") or f"call_{index}"),
                name=str(_field(function, "name") or ""),
                arguments=_arguments_text(_field(function, "arguments")),
            )
        )
    return parsed


def assistant_message(response: Any, calls: list[ParsedToolCall]) -> dict[str, Any]:
    """The chat-completions assistant message to append to the conversation, as a plain dict."""
    message = _message(response)
    return {
        "role": "assistant",
        "content": _field(message, "content"),
        "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in calls
        ],
    }


def turn_messages(response: Any, calls: list[ParsedToolCall]) -> list[dict[str, Any]]:
    """The model's own turn, as the entries to append to the conversation before the answers.

    Chat: the assistant message (with its ``tool_calls`` when there are any). Responses:
    every output item (reasoning items must be sent back with their calls). Anthropic:
    the assistant message with all its content blocks.
    """
    kind = _kind(response)
    if kind == "responses":
        return [_as_dict(item) for item in _field(response, "output")]
    if kind == "anthropic":
        return [{"role": "assistant", "content": [_as_dict(block) for block in _field(response, "content")]}]
    message = assistant_message(response, calls)
    if not calls:
        del message["tool_calls"]
    return [message]


def answer_messages(
    response: Any, calls: list[ParsedToolCall], answers: Sequence[tuple[str, bool]]
) -> list[dict[str, Any]]:
    """One answer per call, ``(text, is_error)``, in the shape of ``response``'s API.

    Chat: ``{"role": "tool", "tool_call_id", "content"}`` messages. Responses:
    ``{"type": "function_call_output", "call_id", "output"}`` items. Anthropic: one user
    message of ``{"type": "tool_result", "tool_use_id", "content", "is_error"}`` blocks.
    """
    kind = _kind(response)
    pairs = list(zip(calls, answers, strict=True))
    if kind == "responses":
        return [
            {"type": "function_call_output", "call_id": call.id, "output": text} for call, (text, _) in pairs
        ]
    if kind == "anthropic":
        if not pairs:
            return []
        blocks = [
            {"type": "tool_result", "tool_use_id": call.id, "content": text, "is_error": is_error}
            for call, (text, is_error) in pairs
        ]
        return [{"role": "user", "content": blocks}]
    return [{"role": "tool", "tool_call_id": call.id, "content": text} for call, (text, _) in pairs]


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
