"""The public API, configuration validation, and result_text: no server needed."""

from __future__ import annotations

import inspect
from pathlib import Path

import mcp.types as types
import pytest

import trio_mcp
from trio_mcp._config import redact_url


def test_public_api_is_exactly_all() -> None:
    # Public subpackages (trio_mcp.compat) appear once imported; they are not names.
    public = {
        name
        for name in dir(trio_mcp)
        if not name.startswith("_") and not inspect.ismodule(getattr(trio_mcp, name))
    }
    assert public == set(trio_mcp.__all__) - {"__version__"}
    assert len(trio_mcp.__all__) == len(set(trio_mcp.__all__))
    for name in trio_mcp.__all__:
        obj = getattr(trio_mcp, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == "trio_mcp", name
    assert (Path(trio_mcp.__file__).parent / "py.typed").exists()


def test_error_hierarchy() -> None:
    for name in trio_mcp.__all__:
        obj = getattr(trio_mcp, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, trio_mcp.MCPPoolError), name
    assert issubclass(trio_mcp.UnknownServerError, LookupError)
    assert issubclass(trio_mcp.UnknownToolError, LookupError)
    assert issubclass(trio_mcp.ToolCallTimeout, TimeoutError)
    assert issubclass(trio_mcp.CircuitOpenError, trio_mcp.ServerUnavailableError)
    assert str(trio_mcp.TemplateError("plain message", variable="v")) == "plain message"


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: trio_mcp.StdioServer(""), "command"),
        (lambda: trio_mcp.StdioServer("x", "not-a-list"), "args"),
        (lambda: trio_mcp.StdioServer("x", [1]), "args"),
        (lambda: trio_mcp.StdioServer("x", env={"A": 1}), "env"),
        (lambda: trio_mcp.StdioServer("x", call_timeout=-1), "call_timeout"),
        (lambda: trio_mcp.StdioServer("x", connect_timeout=float("nan")), "connect_timeout"),
        (lambda: trio_mcp.StdioServer("x", mode="modern"), "mode"),
        (lambda: trio_mcp.StreamableHttpServer("ftp://host/x"), "http"),
        (lambda: trio_mcp.StreamableHttpServer("not a url"), "http"),
        (lambda: trio_mcp.SseServer("http://h:99999/sse"), "valid URL"),
        (lambda: trio_mcp.SseServer("http://h/sse", headers={"Bad Name": "v"}), "header name"),
        (lambda: trio_mcp.SseServer("http://h/sse", headers={"X": "a\nb"}), "line break"),
        (lambda: trio_mcp.SseServer("http://h/sse", headers={"X": "${"}), "placeholder"),
        (lambda: trio_mcp.SseServer("http://h/sse", headers=["X"]), "mapping"),
    ],
)
def test_invalid_configs_fail_at_construction(build: object, match: str) -> None:
    with pytest.raises(trio_mcp.ConfigError, match=match) as info:
        build()  # type: ignore[operator]
    assert isinstance(info.value, ValueError)


async def test_invalid_pool_options() -> None:
    ok = {"s": trio_mcp.StdioServer("x")}
    with pytest.raises(trio_mcp.ConfigError, match="call_timeout"):
        async with trio_mcp.open_mcp_pool(ok, call_timeout=0):
            pass
    with pytest.raises(trio_mcp.ConfigError, match="variable 'k'"):
        async with trio_mcp.open_mcp_pool(ok, variables={"k": 3}):  # type: ignore[dict-item]
            pass
    with pytest.raises(trio_mcp.ConfigError, match="server 'x'"):
        async with trio_mcp.open_mcp_pool({"x": {"command": "y"}}):  # type: ignore[dict-item]
            pass


def test_reprs_hide_secrets() -> None:
    stdio = trio_mcp.StdioServer("srv", env={"API_KEY": "env-secret"})
    http = trio_mcp.StreamableHttpServer(
        "https://user:pw-secret@example.com/mcp?token=q-secret",
        headers={"Authorization": "Bearer hdr-secret"},
    )
    text = repr(stdio) + repr(http) + str(stdio) + str(http)
    for secret in ("env-secret", "pw-secret", "q-secret", "hdr-secret"):
        assert secret not in text
    assert "API_KEY" in text and "Authorization" in text and "example.com" in text
    assert redact_url("http://a:b@h/p?x=1&y") == "http://***@h/p?x=***&***"


def test_configs_are_frozen_values() -> None:
    a = trio_mcp.StdioServer("x", ["-m", "y"], cwd=Path("/tmp"))
    assert a == trio_mcp.StdioServer("x", ("-m", "y"), cwd=Path("/tmp"))
    with pytest.raises(AttributeError):
        a.command = "z"  # type: ignore[misc]


def test_result_text_joins_and_describes() -> None:
    result = types.CallToolResult(
        content=[
            types.TextContent(type="text", text="one"),
            types.ImageContent(type="image", data="AAAA", mime_type="image/png"),
            types.TextContent(type="text", text="two"),
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(uri="memo://x", text="embedded"),
            ),
            types.ResourceLink(type="resource_link", uri="memo://y", name="y"),
        ]
    )
    assert trio_mcp.result_text(result) == (
        "one\n[image: image/png, 3 bytes]\ntwo\nembedded\n[resource link: memo://y]"
    )
    only_structured = types.CallToolResult(content=[], structured_content={"a": 1})
    assert trio_mcp.result_text(only_structured) == '{"a": 1}'
    assert trio_mcp.result_text(types.CallToolResult(content=[])) == ""


def test_tool_call_coercion() -> None:
    assert trio_mcp.ToolCall.coerce(("s", "t")) == trio_mcp.ToolCall("s", "t", None)
    call = trio_mcp.ToolCall("s", "t", {"a": 1})
    assert trio_mcp.ToolCall.coerce(call) is call
