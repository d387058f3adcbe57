"""The LLM tool layer: which tools a model may use, and running the calls it makes.

A :class:`ToolConfig` names servers, an optional allow-list, a turn budget and a
per-call deadline, and an optional approval check. A :class:`Toolset` applies one config
to a pool — ``Toolset(pool, config)`` — it turns the servers' tools into tool schemas
(OpenAI Chat Completions or Responses, Anthropic, Gemini) and executes the tool calls in
a model's response, in parallel, each answered by exactly one tool answer in the same
API's shape. Anything the model gets wrong (a tool outside the allow-list, an
unknown tool, arguments that are not JSON) and anything that fails (a timeout, a
server that is down) becomes an error *message* for the model, never an exception
for the application. :class:`BlockingToolset` is the same for threaded code, on a
portal: ``BlockingToolset(portal, config)``.

This layer is a client of the pool and the portal; neither knows it exists. The tool
loop is written once (:func:`_tool_loop`, a generator that says what to do next) and
driven by an async and a blocking driver.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import mcp.types as types
import trio

from ._errors import ConfigError, MCPPoolError, PoolClosedError
from ._openai import (
    ParsedToolCall,
    ToolFormat,
    answer_messages,
    schemas_for,
    tool_calls_of,
    turn_messages,
)
from ._results import result_text

if TYPE_CHECKING:
    from ._pool import MCPPool
    from ._portal import Portal

__all__ = ["ApproveFunction", "BlockingToolset", "OfferedTool", "ToolConfig", "Toolset", "run_tool_loop"]

logger = logging.getLogger("trio_mcp")

_ALIAS = re.compile(r"^[A-Za-z0-9_.:-]+$")
#: Separator between server and tool in prefixed names (OpenAI allows [A-Za-z0-9_-]).
PREFIX_SEPARATOR = "__"

Message = dict[str, Any]

#: ``approve(server, tool, arguments, annotations) -> bool``, plain or async.
ApproveFunction = Callable[[str, str, dict[str, Any], types.ToolAnnotations | None], "bool | Awaitable[bool]"]


def _to_names(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ConfigError("expected a collection of names, not a single string")
    return tuple(value)


def _to_servers(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _check_alias(_inst: object, _attr: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not _ALIAS.match(value):
        raise ConfigError("alias must be a non-empty string of letters, digits and _.:-")


def _check_servers(_inst: object, _attr: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not value or not all(isinstance(name, str) and name for name in value):
        raise ConfigError("servers must name at least one server")
    if len(set(value)) != len(value):
        raise ConfigError("servers must not repeat a name")


def _check_allow(_inst: object, _attr: attrs.Attribute[Any], value: tuple[str, ...] | None) -> None:
    if value is not None and not all(isinstance(name, str) and name for name in value):
        raise ConfigError("allow_tools must hold tool names")


def _check_turns(_inst: object, _attr: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("max_tool_call_turns must be a whole number >= 0")


def _check_approve(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(
            "approve must be a function (server, tool, arguments, annotations) -> bool, or None"
        )


def _check_timeout(_inst: object, _attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isnan(value)
    ):
        raise ConfigError("timeout must be a positive number of seconds or None")


@attrs.frozen
class ToolConfig:
    """Which tools a model may use, and how much.

    Args:
        alias: a name for this config (it names the toolset in logs and errors).
        servers: the pool's servers whose tools are offered.
        allow_tools: if given, only these tools (by tool name, or by prefixed name)
            are offered and may be called.
        max_tool_call_turns: how many rounds of tool calls :func:`run_tool_loop`
            executes before it refuses further calls.
        timeout: a deadline for each tool call, in seconds (the pool's call timeout
            applies too).
        prefix_names: expose tools as ``server__tool``; required when two servers
            offer a tool of the same name.
        approve: called before each tool call runs, as ``approve(server, tool,
            arguments, annotations) -> bool`` (a plain function, called in the trio
            thread, or an async one, awaited); ``annotations`` is the tool's
            :class:`mcp.types.ToolAnnotations` or None. Anything but ``True`` denies
            the call: it is never sent, and the model is told it was not approved.
    """

    alias: str = attrs.field(validator=_check_alias)
    servers: tuple[str, ...] = attrs.field(converter=_to_servers, validator=_check_servers)
    allow_tools: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_names, validator=_check_allow
    )
    max_tool_call_turns: int = attrs.field(default=5, validator=_check_turns)
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    prefix_names: bool = attrs.field(default=False, kw_only=True)
    approve: ApproveFunction | None = attrs.field(default=None, kw_only=True, validator=_check_approve)


@attrs.frozen
class OfferedTool:
    """A tool a :class:`Toolset` offers the model: its exposed name, server and MCP tool."""

    #: The name the model sees (``server__tool`` with ``prefix_names``).
    name: str
    server: str
    tool: types.Tool

    @property
    def annotations(self) -> types.ToolAnnotations | None:
        """The server's hints about the tool (``read_only_hint``, ``destructive_hint``...)."""
        return self.tool.annotations

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of the tool's structured output, if it declares one."""
        return self.tool.output_schema


def _check_applicable(config: object, servers: Sequence[str], closed: bool) -> None:
    """A toolset needs an open pool that has every server its config names."""
    if not isinstance(config, ToolConfig):
        raise ConfigError(f"expected a ToolConfig, got {type(config).__name__}")
    if closed:
        raise PoolClosedError("the pool is closed")
    for server in config.servers:
        if server not in servers:
            raise ConfigError(
                f"tool config {config.alias!r} names server {server!r}, which is not in the pool"
            )


@attrs.define(eq=False)
class Toolset:
    """One :class:`ToolConfig` applied to a pool: ``Toolset(pool, config)``."""

    pool: MCPPool
    config: ToolConfig

    def __attrs_post_init__(self) -> None:
        _check_applicable(self.config, self.pool.servers, self.pool.closed)

    @property
    def alias(self) -> str:
        return self.config.alias

    @property
    def max_tool_call_turns(self) -> int:
        return self.config.max_tool_call_turns

    def _allowed(self, server: str, tool: str) -> bool:
        allow = self.config.allow_tools
        return allow is None or tool in allow or f"{server}{PREFIX_SEPARATOR}{tool}" in allow

    async def _catalog(self) -> dict[str, OfferedTool]:
        """Exposed name -> (server, tool), with the allow-list applied.

        The pool caches and coalesces each server's tools/list, so this is cheap.
        A server that cannot be reached is left out (and logged), not fatal.
        """
        listings: dict[str, list[types.Tool]] = {}

        async def fetch(server: str) -> None:
            try:
                listings[server] = await self.pool.list_tools(server)
            except MCPPoolError as error:
                logger.warning("toolset %r: leaving out server %r: %s", self.alias, server, error)

        async with trio.open_nursery() as nursery:
            for server in self.config.servers:
                nursery.start_soon(fetch, server)
        catalog: dict[str, OfferedTool] = {}
        for server in self.config.servers:
            for tool in listings.get(server, ()):
                if not self._allowed(server, tool.name):
                    continue
                name = f"{server}{PREFIX_SEPARATOR}{tool.name}" if self.config.prefix_names else tool.name
                if name in catalog:
                    raise ConfigError(
                        f"toolset {self.alias!r}: servers {catalog[name].server!r} and {server!r} "
                        f"both offer a tool named {tool.name!r}; set prefix_names=True"
                    )
                catalog[name] = OfferedTool(name, server, tool)
        return catalog

    async def tools(self) -> list[OfferedTool]:
        """The tools this config offers, with their annotations and output schemas."""
        return list((await self._catalog()).values())

    async def tool_schemas(self, format: ToolFormat = "openai") -> list[dict[str, Any]]:
        """The tools this config offers, as the ``tools=`` list of an LLM API.

        ``format``: ``"openai"`` (Chat Completions), ``"responses"`` (OpenAI Responses),
        ``"anthropic"`` (Messages) or ``"gemini"`` (one tool of function declarations).
        """
        schemas_for(format, [])  # an unknown format fails before any listing
        catalog = await self._catalog()
        return schemas_for(format, [(name, entry.tool) for name, entry in catalog.items()])

    @staticmethod
    def has_tool_calls(response: Any) -> bool:
        """Whether a completion response asks for any tool call."""
        return bool(tool_calls_of(response))

    @staticmethod
    def tool_call_count(response: Any) -> int:
        """How many tool calls a completion response asks for."""
        return len(tool_calls_of(response))

    async def process_completion_response(self, response: Any) -> list[Message]:
        """Run every tool call in ``response`` in parallel; return the messages to append.

        ``response`` is a Chat Completions response, a Responses API response or an
        Anthropic message (SDK objects or dicts); the answer is in the same API's shape.
        Chat: the assistant message with its tool calls, then one
        ``{"role": "tool", "tool_call_id", "content"}`` message per call, in order.
        Responses: the output items, then one ``function_call_output`` item per call.
        Anthropic: the assistant message, then one user message of ``tool_result`` blocks.
        """
        calls = tool_calls_of(response)
        messages: list[Message] = turn_messages(response, calls)
        if not calls:
            return messages
        try:
            catalog = await self._catalog()
        except ConfigError as error:
            catalog = {}
            failure = f"Error: {error}"
        else:
            failure = ""
        answers = [("", False)] * len(calls)

        async def answer(index: int, call: ParsedToolCall) -> None:
            answers[index] = (failure, True) if failure else await self._answer(call, catalog)

        async with trio.open_nursery() as nursery:
            for index, call in enumerate(calls):
                nursery.start_soon(answer, index, call)
        messages.extend(answer_messages(response, calls, answers))
        return messages

    async def _answer(self, call: ParsedToolCall, catalog: Mapping[str, OfferedTool]) -> tuple[str, bool]:
        """The text the model gets for one call, and whether it reports an error."""
        entry = catalog.get(call.name)
        if entry is None:
            return f"Error: tool {call.name!r} is not available; use one of the tools offered.", True
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as error:
            return (
                f"Error: the arguments for tool {call.name!r} are not valid JSON ({error.msg}); nothing was run.",
                True,
            )
        if not isinstance(arguments, dict):
            return (
                f"Error: the arguments for tool {call.name!r} must be a JSON object; nothing was run.",
                True,
            )
        if not await self._approved(entry, arguments):
            return f"Error: the call to tool {call.name!r} was not approved; nothing was run.", True
        deadline = self.config.timeout if self.config.timeout is not None else math.inf
        try:
            with trio.move_on_after(deadline) as scope:
                result = await self.pool.tool_call(entry.server, entry.tool.name, arguments)
        except MCPPoolError as error:
            return f"Error: {error}", True
        if scope.cancelled_caught:
            return f"Error: tool {call.name!r} did not finish within {deadline:g}s and was cancelled.", True
        text = result_text(result)
        return (f"Error: {text}", True) if result.is_error else (text, False)

    async def _approved(self, entry: OfferedTool, arguments: dict[str, Any]) -> bool:
        """Whether the config's ``approve`` lets this call run (yes when there is none)."""
        approve = self.config.approve
        if approve is None:
            return True
        try:
            verdict = approve(entry.server, entry.tool.name, dict(arguments), entry.annotations)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception as exc:
            # Denied: a failing check must not let the call through. The arguments may
            # hold secrets, so only the exception's type is logged.
            logger.warning(
                "toolset %r: approve() raised %s for tool %r; the call was denied",
                self.alias,
                type(exc).__name__,
                entry.name,
            )
            return False
        return verdict is True

    def refuse_completion_response(self, response: Any) -> list[Message]:
        """The same messages as :meth:`process_completion_response`, but nothing is run.

        Each tool answer says the tool-call budget is exhausted, so the model should
        answer with what it has.
        """
        return _refusal(response, self.max_tool_call_turns)


@attrs.frozen
class _CallModel:
    """Loop step: ask the model (the driver sends back its response)."""

    conversation: list[Message]
    tools: list[dict[str, Any]]


@attrs.frozen
class _RunTools:
    """Loop step: run the response's tool calls (the driver sends back the messages)."""

    response: Any


_Step = _CallModel | _RunTools


def _tool_loop(
    max_turns: int, tools: list[dict[str, Any]], messages: Iterable[Message]
) -> Generator[_Step, Any, list[Message]]:
    """The tool loop, once, for both drivers: yields what to do, returns the conversation.

    After ``max_turns`` rounds of tool calls, further calls are refused (nothing is run)
    and the model gets one last turn; if it calls tools then too, the loop stops.
    """
    conversation = list(messages)
    turns, refused = 0, False
    while True:
        response = yield _CallModel(conversation, tools)
        calls = tool_calls_of(response)
        if not calls:
            conversation.extend(turn_messages(response, []))
            return conversation
        if not refused and turns < max_turns:
            conversation.extend((yield _RunTools(response)))
            turns += 1
            continue
        conversation.extend(_refusal(response, max_turns))
        if refused:
            return conversation
        refused = True


def _refusal(response: Any, max_turns: int) -> list[Message]:
    calls = tool_calls_of(response)
    refusal = (
        f"Error: the tool-call budget ({max_turns} turns) is exhausted; "
        "this tool was not run. Answer with the information you already have."
    )
    return [
        *turn_messages(response, calls),
        *answer_messages(response, calls, [(refusal, True)] * len(calls)),
    ]


async def run_tool_loop(
    toolset: Toolset,
    call_model: Callable[[list[Message], list[dict[str, Any]]], Awaitable[Any]],
    messages: Sequence[Message],
    *,
    format: ToolFormat = "openai",
) -> list[Message]:
    """Run model and tools in turns until the model stops calling tools.

    ``call_model(messages, tools)`` returns the model's response: a chat completion, a
    Responses API response or an Anthropic message (SDK object or dict), ``tools`` being
    in ``format``. After ``max_tool_call_turns`` rounds of tool calls, further calls are
    refused and the model gets one last turn to answer. Returns the whole conversation.
    """
    loop = _tool_loop(toolset.max_tool_call_turns, await toolset.tool_schemas(format), messages)
    answer: Any = None
    try:
        while True:
            step = loop.send(answer)
            if isinstance(step, _CallModel):
                answer = await call_model(step.conversation, step.tools)
            else:
                answer = await toolset.process_completion_response(step.response)
    except StopIteration as done:
        conversation: list[Message] = done.value
        return conversation


class BlockingToolset:
    """A :class:`Toolset` for threaded code, on a portal: ``BlockingToolset(portal, config)``.

    The same methods, blocking; each runs in the portal's trio thread through
    :meth:`Portal.call`, so any number of threads may use one toolset at once.
    """

    def __init__(self, portal: Portal, config: ToolConfig) -> None:
        self._portal = portal
        self._toolset = Toolset(portal.pool, config)

    def __repr__(self) -> str:
        return f"<BlockingToolset alias={self.alias!r}>"

    @property
    def alias(self) -> str:
        return self._toolset.alias

    @property
    def config(self) -> ToolConfig:
        return self._toolset.config

    @property
    def max_tool_call_turns(self) -> int:
        return self._toolset.max_tool_call_turns

    def tool_schemas(
        self, format: ToolFormat = "openai", *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """The tools this config offers, as the ``tools=`` list of an LLM API (see
        :meth:`Toolset.tool_schemas`)."""
        return self._portal.call(self._toolset.tool_schemas, format, timeout=timeout)

    def tools(self, *, timeout: float | None = None) -> list[OfferedTool]:
        """The tools this config offers, with their annotations and output schemas."""
        return self._portal.call(self._toolset.tools, timeout=timeout)

    has_tool_calls = staticmethod(Toolset.has_tool_calls)
    tool_call_count = staticmethod(Toolset.tool_call_count)

    def process_completion_response(self, response: Any, *, timeout: float | None = None) -> list[Message]:
        """Run the response's tool calls in parallel (in the portal); return the messages."""
        return self._portal.call(self._toolset.process_completion_response, response, timeout=timeout)

    def refuse_completion_response(self, response: Any) -> list[Message]:
        """Answer every tool call with a budget-exhausted refusal; nothing is run."""
        return self._toolset.refuse_completion_response(response)

    def run_tool_loop(
        self,
        call_model: Callable[[list[Message], list[dict[str, Any]]], Any],
        messages: Iterable[Message],
        *,
        format: ToolFormat = "openai",
    ) -> list[Message]:
        """The blocking form of :func:`run_tool_loop`: ``call_model`` runs in your thread."""
        loop = _tool_loop(self.max_tool_call_turns, self.tool_schemas(format), messages)
        answer: Any = None
        try:
            while True:
                step = loop.send(answer)
                if isinstance(step, _CallModel):
                    answer = call_model(step.conversation, step.tools)
                else:
                    answer = self.process_completion_response(step.response)
        except StopIteration as done:
            conversation: list[Message] = done.value
            return conversation
