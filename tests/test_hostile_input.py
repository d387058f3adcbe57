"""Arguments JSON cannot carry: refused before anything is sent, other calls untouched.

Before the check existed, one lone surrogate (what ``os.fsdecode`` gives for a non-UTF-8
file name) crashed the SDK's transport writer: on stdio and Streamable HTTP the session
died, with every concurrent call, and a stdio server restarted; on SSE the call hung
for ``call_timeout``. Other values were silently changed (NaN sent as null, a set as a
list) or failed after sending as a "malformed result".
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import trio

import trio_mcp
from trio_mcp import result_text
from trio_mcp._arguments import MAX_DEPTH

# Every value holds this marker: no error message may repeat it.
SECRET = "SECRET-VALUE"


def _cyclic_dict() -> dict[str, Any]:
    inner: dict[str, Any] = {"name": SECRET}
    inner["self"] = inner
    return {"text": inner}


def _cyclic_list() -> dict[str, Any]:
    inner: list[Any] = [SECRET]
    inner.append(inner)
    return {"items": [inner]}


def _deep() -> dict[str, Any]:
    value: Any = SECRET
    for _ in range(MAX_DEPTH + 5):
        value = [value]
    return {"text": value}


class _Opaque:
    def __repr__(self) -> str:
        return SECRET


# (name, arguments factory, the path the error must name, words the reason must hold)
HOSTILE: list[tuple[str, Callable[[], Any], str, str]] = [
    ("lone surrogate", lambda: {"text": SECRET + "\udcff"}, "arguments['text']", "surrogate"),
    ("surrogate in a key", lambda: {"text": {SECRET + "\ud800": 1}}, "arguments['text']", "key"),
    (
        "surrogate deep",
        lambda: {"text": [{"a": ["ok", SECRET + "\udfff"]}]},
        "arguments['text'][0]['a'][1]",
        "surrogate",
    ),
    ("non-UTF-8 bytes", lambda: {"text": SECRET.encode() + b"\xff"}, "arguments['text']", "bytes"),
    ("utf-8 bytes", lambda: {"text": SECRET.encode()}, "arguments['text']", "bytes"),
    ("object", lambda: {"text": _Opaque()}, "arguments['text']", "_Opaque"),
    ("cyclic dict", _cyclic_dict, "arguments['text']['self']", "cycle"),
    ("cyclic list", _cyclic_list, "arguments['items'][0][1]", "cycle"),
    ("int key at the top", lambda: {1: SECRET}, "arguments for", "int key"),
    ("tuple key nested", lambda: {"text": {(1, 2): SECRET}}, "arguments['text']", "tuple key"),
    ("NaN", lambda: {"text": math.nan}, "arguments['text']", "not finite"),
    ("infinity", lambda: {"text": [1.0, -math.inf]}, "arguments['text'][1]", "not finite"),
    ("set", lambda: {"text": {SECRET}}, "arguments['text']", "set"),
    ("frozenset", lambda: {"text": frozenset({SECRET})}, "arguments['text']", "set"),
    ("too deep", _deep, "arguments['text'][0]", f"more than {MAX_DEPTH} levels"),
]


def _check_error(error: trio_mcp.InvalidArgumentsError, path: str, reason: str) -> None:
    message = str(error)
    assert message.startswith(path), message
    assert reason in message, message
    assert "nothing was sent" in message
    assert SECRET not in message and SECRET not in repr(error)
    assert error.__cause__ is None and error.server == "s"


async def _wait_until_started(pool: trio_mcp.MCPPool, tag: str) -> None:
    # Polls the server (each poll is a real round trip) until the slow call is running.
    while True:
        events = (await pool.tool_call("s", "events", {"tag": tag})).structured_content
        if events is not None and "started" in events["result"]:
            return
        await trio.sleep(0.01)


@pytest.mark.parametrize("validate", [False, True], ids=["unvalidated", "validated"])
async def test_hostile_arguments_are_refused_and_hurt_no_one(
    make_config: Callable[..., trio_mcp.ServerConfig], validate: bool
) -> None:
    async with trio_mcp.open_mcp_pool(
        {"s": make_config()}, validate_arguments=validate, call_timeout=20
    ) as pool:
        assert result_text(await pool.tool_call("s", "echo", {"text": "warm"})) == "warm"
        tag = uuid.uuid4().hex
        slow: list[str] = []

        async def innocent() -> None:
            slow.append(result_text(await pool.tool_call("s", "slow", {"seconds": 1.5, "tag": tag})))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(innocent)
            await _wait_until_started(pool, tag)
            before = pool.statistics()["s"]
            for _name, arguments, path, reason in HOSTILE:
                with pytest.raises(trio_mcp.InvalidArgumentsError) as info:
                    await pool.tool_call("s", "echo", arguments())
                _check_error(info.value, path, reason)
            assert pool.statistics()["s"] == before  # nothing was sent, nothing counted
        assert slow == ["slept 1.5"]
        stats = pool.statistics()["s"]
        assert stats.connects == 1 and stats.failed == 0
        assert result_text(await pool.tool_call("s", "echo", {"text": "after"})) == "after"


async def test_names_uris_and_prompt_arguments_are_checked(
    make_config: Callable[..., trio_mcp.ServerConfig],
) -> None:
    async with trio_mcp.open_mcp_pool(
        {"s": make_config()}, validate_arguments=False, call_timeout=20
    ) as pool:
        assert result_text(await pool.tool_call("s", "echo", {"text": "warm"})) == "warm"
        with pytest.raises(trio_mcp.InvalidArgumentsError, match=r"the tool name .* surrogate"):
            await pool.tool_call("s", SECRET + "\udcff", {})
        with pytest.raises(trio_mcp.InvalidArgumentsError, match=r"the resource URI .* surrogate"):
            await pool.read_resource("s", "memo://" + SECRET + "\udcff")
        with pytest.raises(trio_mcp.InvalidArgumentsError, match=r"the prompt name .* surrogate"):
            await pool.get_prompt("s", SECRET + "\udcff", {})
        with pytest.raises(trio_mcp.InvalidArgumentsError) as info:
            await pool.get_prompt("s", "summarize", {"topic": SECRET + "\udcff"})
        _check_error(info.value, "arguments['topic']", "surrogate")
        with pytest.raises(trio_mcp.InvalidArgumentsError) as info:
            await pool.get_prompt("s", "summarize", {"topic": 7})  # type: ignore[dict-item]
        _check_error(info.value, "arguments['topic']", "prompt arguments are strings")
        with pytest.raises(trio_mcp.InvalidArgumentsError) as info:
            await pool.get_prompt("s", "summarize", {3: SECRET})  # type: ignore[dict-item]
        _check_error(info.value, "arguments for", "int key")
        prompt = await pool.get_prompt("s", "summarize", {"topic": "trio"})
        assert "trio" in str(prompt.messages[0].content)
        assert pool.statistics()["s"].connects == 1


async def test_plain_json_in_all_its_forms_is_sent(make_config: Callable[..., trio_mcp.ServerConfig]) -> None:
    """Subclasses of the JSON types, tuples, non-ASCII text and big ints go through."""
    import collections
    import enum

    class Colour(enum.StrEnum):
        RED = "red"

    text = "żółw 🐢 \u00e9"
    async with trio_mcp.open_mcp_pool({"s": make_config()}, validate_arguments=False) as pool:
        assert result_text(await pool.tool_call("s", "echo", {"text": text})) == text
        assert (
            result_text(await pool.tool_call("s", "echo", collections.OrderedDict(text=Colour.RED))) == "red"
        )
        result = await pool.tool_call("s", "add", {"a": 2**70, "b": True})
        assert not result.is_error and result_text(result) == str(2**70 + 1)
        result = await pool.tool_call("s", "echo", {"text": ("a", "b")})  # a tuple is a JSON array
        assert result.is_error  # the server's schema wants a string, and says so
        nested: Any = "x"
        for _ in range(MAX_DEPTH - 2):
            nested = [nested]
        result = await pool.tool_call("s", "echo", {"text": nested})
        assert result.is_error and "validation error" in result_text(result)
