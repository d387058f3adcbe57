"""What a conformance client does in each scenario of the official MCP conformance suite.

The suite (npm ``@modelcontextprotocol/conformance``) starts a mock server per
scenario and runs a client program as ``<command> <server-url>`` with the scenario
name in ``MCP_CONFORMANCE_SCENARIO``, the protocol version the mock speaks in
``MCP_CONFORMANCE_PROTOCOL_VERSION`` and, for some scenarios, a JSON object of
extra data (credentials, tool calls to make) in ``MCP_CONFORMANCE_CONTEXT``.

The flows here are written once against :class:`Session` (list the tools, call a
tool) and run by two programs: ``client.py`` over a trio-mcp pool and
``sdk_client.py`` over the raw SDK ``mcp.Client``, so their results compare like
with like. A client exits with an error when its flow fails; the suite judges that.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
import mcp.types as types
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

__all__ = ["Run", "Session", "SkillsSession", "main", "run_flow"]

logger = logging.getLogger("conformance")

Mode = Literal["auto", "legacy"]

# Scenarios whose mock speaks only the initialize handshake whatever version the
# suite announces (the suite reports 2026-07-28 for it).
_HANDSHAKE_ONLY = frozenset({"json-schema-ref-no-deref"})
# Scenarios that make calls no schema-checking client would send: to a tool the mock
# never lists (it checks the headers of any tools/call), or with a null where the
# schema says boolean (it checks that a null argument is left out of the headers).
_UNCHECKED_CALLS = frozenset({"request-metadata", "http-standard-headers", "http-custom-headers"})


@attrs.frozen
class Run:
    """One invocation by the suite: the scenario, the mock server's URL and its data."""

    scenario: str
    url: str
    protocol_version: str | None
    context: dict[str, Any]

    @classmethod
    def from_environment(cls, argv: list[str]) -> Run:
        if len(argv) < 2 or not os.environ.get("MCP_CONFORMANCE_SCENARIO"):
            raise SystemExit(
                f"usage: MCP_CONFORMANCE_SCENARIO=<scenario> {argv[0]} <server-url> "
                "(the conformance suite sets the variable and passes the URL)"
            )
        raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
        return cls(
            scenario=os.environ["MCP_CONFORMANCE_SCENARIO"],
            url=argv[-1],
            protocol_version=os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION"),
            context=json.loads(raw) if raw else {},
        )

    @property
    def check_arguments(self) -> bool:
        """False where the scenario's calls must reach the server unchecked."""
        return self.scenario not in _UNCHECKED_CALLS

    @property
    def mode(self) -> Mode:
        """``auto`` on a 2026-era mock (per-request ``_meta``), else the ``initialize`` handshake."""
        if self.scenario in _HANDSHAKE_ONLY:
            return "legacy"
        if self.protocol_version is None or self.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return "auto"
        return "legacy"


class Session(Protocol):
    """The two operations every flow is written in."""

    async def list_tools(self) -> list[types.Tool]: ...

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult: ...


@runtime_checkable
class SkillsSession(Session, Protocol):
    """A session that also speaks the skills extension (SEP-2640)."""

    async def list_skills(self) -> list[str]:
        """The names of the listed skills (nothing read)."""
        ...

    async def load_skill(self, name: str) -> list[bytes]:
        """Read and verify a skill's SKILL.md, then each file of its manifest."""
        ...


Flow = Callable[[Run, Session], Awaitable[None]]
_FLOWS: dict[str, Flow] = {}


def _flow(*names: str) -> Callable[[Flow], Flow]:
    def register(flow: Flow) -> Flow:
        for name in names:
            _FLOWS[name] = flow
        return flow

    return register


async def run_flow(run: Run, session: Session) -> None:
    """Do what ``run.scenario`` expects of a client."""
    flow = _FLOWS.get(run.scenario)
    if flow is None:
        # Every auth/* scenario: connect through the authorization flow, then use a tool.
        if not run.scenario.startswith("auth/"):
            raise SystemExit(f"unknown conformance scenario {run.scenario!r}")
        flow = _use_first_tool
    await flow(run, session)


@_flow(
    "initialize",
    # The scenario fails only if the client fetches the network $ref in a tool schema.
    "json-schema-ref-no-deref",
)
async def _list_only(run: Run, session: Session) -> None:
    tools = await session.list_tools()
    logger.info("listed %d tools", len(tools))


@_flow("sep-2640-client-no-prefetch")
async def _list_skills(run: Run, session: Session) -> None:
    # SEP-2640: listing the skills must read none of their files.
    if not isinstance(session, SkillsSession):
        raise SystemExit("this client has no skills support")
    skills = await session.list_skills()
    logger.info("listed %d skills", len(skills))


@_flow("sep-2640-client-verify-digest", "sep-2640-client-verify-size", "sep-2640-client-verify-frontmatter")
async def _load_skills(run: Run, session: Session) -> None:
    # Load each skill as a host would when its model asks for it: SKILL.md first, then the
    # supporting files it names. The mock serves a SKILL.md that fails verification: a
    # conforming client rejects it and reads no further.
    if not isinstance(session, SkillsSession):
        raise SystemExit("this client has no skills support")
    for name in await session.list_skills():
        try:
            files = await session.load_skill(name)
        except Exception as exc:
            logger.info("skill %r rejected: %s", name, exc)
        else:
            logger.info("skill %r loaded with %d files", name, len(files))


@_flow("tools_call", "request-metadata", "http-standard-headers")
async def _add_numbers(run: Run, session: Session) -> None:
    await session.list_tools()
    result = await session.call_tool("add_numbers", {"a": 5, "b": 3})
    logger.info("add_numbers: %s", result.content)


@_flow("sse-retry")
async def _reconnection(run: Run, session: Session) -> None:
    await session.list_tools()
    await session.call_tool("test_reconnection", {})


@_flow("elicitation-sep1034-client-defaults")
async def _elicitation_defaults(run: Run, session: Session) -> None:
    await session.list_tools()
    result = await session.call_tool("test_client_elicitation_defaults", {})
    _check_not_error(result)


@_flow("sep-2322-client-request-state")
async def _request_state(run: Run, session: Session) -> None:
    # The client's input_required loop answers the elicitations; the mock checks the retries.
    await session.list_tools()
    for name in (
        "test_mrtr_echo_state",
        "test_mrtr_unrelated",
        "test_mrtr_no_state",
        "test_mrtr_no_result_type",
    ):
        _check_not_error(await session.call_tool(name, {}))


@_flow("json-schema-2020-12-preservation")
async def _echo_schema(run: Run, session: Session) -> None:
    # The mock diffs the schema we send back against the one it advertised.
    tools = {tool.name: tool for tool in await session.list_tools()}
    focal = tools["json_schema_2020_12_tool"]
    await session.call_tool("json_schema_echo", {"schema": focal.input_schema})


@_flow("http-invalid-tool-headers")
async def _call_every_tool(run: Run, session: Session) -> None:
    # The mock advertises one tool with valid x-mcp-header annotations and several with
    # invalid ones: a conforming client drops the invalid ones and calls only the valid.
    for tool in await session.list_tools():
        await _call_logging_errors(session, tool.name, _stub_arguments(tool.input_schema))


@_flow("http-custom-headers")
async def _replay_tool_calls(run: Run, session: Session) -> None:
    # The context lists the exact calls whose arguments must be mirrored into headers.
    surfaced = {tool.name for tool in await session.list_tools()}
    for call in run.context.get("toolCalls", []):
        if call["name"] in surfaced:
            await _call_logging_errors(session, call["name"], call.get("arguments") or {})


async def _use_first_tool(run: Run, session: Session) -> None:
    tools = await session.list_tools()
    if tools:
        await session.call_tool(tools[0].name, {})


async def _call_logging_errors(session: Session, name: str, arguments: dict[str, Any]) -> None:
    """Call a tool the scenario may answer with an error; log the error and go on."""
    try:
        await session.call_tool(name, arguments)
    except Exception:
        logger.exception("tools/call %r failed", name)


def _check_not_error(result: types.CallToolResult) -> None:
    if result.is_error:
        raise RuntimeError(f"the tool reported an error: {result.content}")


def _stub_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Placeholder values for the required properties of an input schema."""
    placeholders: dict[str, Any] = {
        "string": "x",
        "integer": 0,
        "number": 0,
        "boolean": False,
        "object": {},
        "array": [],
        "null": None,
    }
    properties = schema.get("properties", {})
    return {
        name: placeholders.get(properties.get(name, {}).get("type"), "x")
        for name in schema.get("required", [])
    }


def main(run_with: Callable[[Run], None]) -> None:
    """The entry point both client programs share: log to stderr, run."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    run = Run.from_environment(sys.argv)
    logger.info("scenario %s, protocol %s, mode %s", run.scenario, run.protocol_version, run.mode)
    run_with(run)
