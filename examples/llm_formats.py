"""Anthropic-shaped tool calls, with an approval check on destructive tools.

A scripted "model" stands in for the API; run: ``python examples/llm_formats.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import trio
from mcp.types import ToolAnnotations

import trio_mcp

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "servers" / "test_server.py")


def approve(server: str, tool: str, arguments: dict[str, Any], annotations: ToolAnnotations | None) -> bool:
    allowed = not (annotations is not None and annotations.destructive_hint)
    print(f"approve {server}/{tool}? {allowed}")
    return allowed


def message(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": list(content)}


SCRIPT = [
    message(
        {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "t2", "name": "destroy", "input": {"tag": "everything"}},
    ),
    message({"type": "text", "text": "It is 21.5 °C in Oslo; I was not allowed to destroy anything."}),
]


async def main() -> None:
    servers = {"demo": trio_mcp.StdioServer(sys.executable, [SERVER])}
    config = trio_mcp.ToolConfig("demo", ["demo"], allow_tools=["weather", "destroy"], approve=approve)
    async with trio_mcp.open_mcp_pool(servers) as pool:
        toolset = trio_mcp.Toolset(pool, config)
        print("anthropic tools:", [tool["name"] for tool in await toolset.tool_schemas("anthropic")])
        print("gemini tools:", await toolset.tool_schemas("gemini"))
        turns = iter(SCRIPT)

        async def call_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
            return next(turns)  # an anthropic.types.Message works the same

        conversation = await trio_mcp.run_tool_loop(
            toolset, call_model, [{"role": "user", "content": "Weather in Oslo?"}], format="anthropic"
        )
        for entry in conversation:
            print(entry)


if __name__ == "__main__":
    trio.run(main)
