"""run_tool_loop with a scripted stand-in for an LLM, against the real test server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import trio

import trio_mcp

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "servers" / "test_server.py")


def completion(content: str | None = None, **call: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if call:
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": call}]
    return {"choices": [{"message": message}]}


SCRIPT = [
    completion(name="add", arguments='{"a": 19, "b": 23}'),
    completion("19 + 23 = 42"),
]


async def call_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    print(f"model sees {len(messages)} messages and tools {[t['function']['name'] for t in tools]}")
    return SCRIPT.pop(0)


async def main() -> None:
    config = trio_mcp.ToolConfig("math", ["demo"], allow_tools=["add"], max_tool_call_turns=3)
    servers = {"demo": trio_mcp.StdioServer(sys.executable, [SERVER])}
    async with trio_mcp.open_mcp_pool(servers) as pool:
        conversation = await trio_mcp.run_tool_loop(
            trio_mcp.Toolset(pool, config), call_model, [{"role": "user", "content": "What is 19 + 23?"}]
        )
    for message in conversation:
        print(message)


if __name__ == "__main__":
    trio.run(main)
