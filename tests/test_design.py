"""The package's shape: layers that only look down, one options object, a public portal call."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import trio

import trio_mcp

from .conftest import HttpServer, config_for, stdio_server

PACKAGE = Path(trio_mcp.__file__).parent
# Lower layers first; a module may import only from its own layer or below.
LAYERS = [
    {"_errors", "_version", "_redact", "_shared", "_results", "_arguments"},
    {"_config", "_handlers", "_headers", "_options"},
    {"_transport", "_stdio", "_translate"},
    {"_session"},
    {"_server"},
    {"_pool"},
    {"_portal"},
    {"_toolset", "_openai", "_loader", "_cli", "__main__", "__init__", "compat"},
]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_layers_only_look_down() -> None:
    rank = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    for path in sorted(PACKAGE.glob("_*.py")):
        module = path.stem
        assert module in rank, f"{module} has no place in LAYERS"
        for imported in _imports(path):
            assert rank[imported] <= rank[module], f"{module} imports {imported}, a layer above it"


def test_the_pool_and_portal_know_nothing_of_the_llm_layer() -> None:
    for module in ("_pool", "_portal", "_server", "_session"):
        assert not _imports(PACKAGE / f"{module}.py") & {"_toolset", "_openai"}


def test_pool_options_are_one_object() -> None:
    options = trio_mcp.PoolOptions(call_timeout=5, variables={"a": "secret-value"})
    assert "secret-value" not in repr(options)
    assert trio_mcp.PoolOptions.of(options, {"connect_timeout": 2}).call_timeout == 5
    with pytest.raises(TypeError, match=r"'call_timout'.*known: variables"):
        trio_mcp.PoolOptions.of(None, {"call_timout": 5})
    with pytest.raises(trio_mcp.ConfigError, match="call_timeout must be a positive"):
        trio_mcp.PoolOptions(call_timeout=0)
    with pytest.raises(trio_mcp.ConfigError, match="validate_arguments must be a bool"):
        trio_mcp.PoolOptions(validate_arguments="yes")  # type: ignore[arg-type]
    with pytest.raises(trio_mcp.ConfigError, match=r"options must be a trio_mcp\.PoolOptions"):
        trio_mcp.PoolOptions.of({"call_timeout": 5}, {})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        options.variables["b"] = "x"  # type: ignore[index]


async def test_open_mcp_pool_takes_options_or_their_fields() -> None:
    options = trio_mcp.PoolOptions(call_timeout=0.5)
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}, options, validate_arguments=False) as pool:
        assert pool._validate_arguments is False
        with pytest.raises(trio_mcp.ToolCallTimeout, match=r"within 0\.5s"):
            await pool.tool_call("s", "slow", {"seconds": 5})
    with pytest.raises(TypeError, match="unknown pool option"):
        async with trio_mcp.open_mcp_pool({"s": stdio_server()}, tool_configs=[]):
            pass  # pragma: no cover


def test_portal_call_runs_anything_in_trio(http_server: HttpServer) -> None:
    options = trio_mcp.PoolOptions(call_timeout=math.inf)
    with trio_mcp.start_portal({"s": config_for("http", http_server)}, options) as portal:

        async def two_calls(pool: trio_mcp.MCPPool, text: str) -> list[str]:
            async with trio.open_nursery() as nursery:
                results: list[str] = []
                for suffix in "ab":
                    nursery.start_soon(
                        lambda s=suffix: _append(results, pool.tool_call("s", "echo", {"text": text + s}))
                    )
            return sorted(results)

        assert portal.call(two_calls, portal.pool, "x", timeout=20) == ["xa", "xb"]

        async def fails() -> None:
            raise LookupError("the user's own")

        with pytest.raises(LookupError, match="the user's own"):
            portal.call(fails)

        with pytest.raises(trio_mcp.ToolCallTimeout, match=r"sleep did not finish within 0\.1s") as info:
            portal.call(trio.sleep, 10, timeout=0.1)
        assert info.value.server is None
        with pytest.raises(TypeError, match="needs an async function"):
            portal.call(None)  # type: ignore[arg-type]
    with pytest.raises(trio_mcp.PoolClosedError):
        portal.call(trio.sleep, 0)


async def _append(results: list[str], call: object) -> None:
    results.append(trio_mcp.result_text(await call))  # type: ignore[misc]
