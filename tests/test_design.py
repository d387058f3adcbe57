"""The package's shape: layers that only look down, one options object, a public portal call."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_mcp
from trio_mcp._server import Reconnector

from .conftest import HttpServer, config_for, stdio_server

PACKAGE = Path(trio_mcp.__file__).parent
# Lower layers first; a module may import only from its own layer or below.
LAYERS = [
    {"_errors", "_version", "_redact", "_shared", "_results", "_arguments"},
    {"_config", "_handlers", "_headers", "_options", "_auth"},
    {"_transport", "_stdio", "_translate", "_info"},
    {"_session", "_subscriptions"},
    {"_server", "_skills", "_telemetry"},
    {"_pool"},
    {"_portal", "_tenants", "_prometheus"},
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


def test_the_reconnect_policy_is_pure() -> None:
    now = [100.0]
    policy = trio_mcp.ReconnectPolicy(
        initial_backoff=1.0,
        max_backoff=3.0,
        multiplier=2.0,
        jitter=0.5,
        failure_threshold=4,
        circuit_reset=30.0,
    )
    reconnector = Reconnector(policy, clock=lambda: now[0], random=lambda: 1.0)  # jitter at its top
    error = trio_mcp.ServerUnavailableError("down", server="s")
    assert [reconnector.failed(error) for _ in range(3)] == [1.5, 3.0, 4.5]  # capped at 3, then +50 %
    assert not reconnector.circuit_open and reconnector.remaining() == 4.5
    now[0] += 4.5
    assert reconnector.remaining() == 0
    assert reconnector.failed(error) == 30.0 and reconnector.circuit_open
    now[0] += 31
    assert reconnector.remaining() == 0 and reconnector.circuit_open  # half-open: one probe may go
    reconnector.succeeded()
    assert (reconnector.failures, reconnector.circuit_open, reconnector.last_error) == (0, False, None)
    low = Reconnector(policy, clock=lambda: 0.0, random=lambda: 0.0)
    assert low.failed(error) == 0.5  # jitter at its bottom


async def test_state_is_derived_not_stored() -> None:
    config = stdio_server(
        reconnect=trio_mcp.ReconnectPolicy(initial_backoff=0.2, jitter=0, failure_threshold=5)
    )
    async with trio_mcp.open_mcp_pool({"s": config, "missing": trio_mcp.StdioServer("/nonexistent")}) as pool:
        assert pool.statistics()["s"].state is trio_mcp.ServerState.IDLE
        await pool.tool_call("s", "echo", {"text": "x"})
        assert pool.statistics()["s"].state is trio_mcp.ServerState.READY
        pool._slots["s"].live.lost.set()  # type: ignore[union-attr]
        # Lost: never READY again while it closes.
        assert pool.statistics()["s"].state is not trio_mcp.ServerState.READY
        with pytest.raises(trio_mcp.ServerUnavailableError):
            await pool.tool_call("missing", "echo")
        assert pool.statistics()["missing"].state is trio_mcp.ServerState.BACKING_OFF
        await trio.sleep(0.25)  # the backoff has passed: nothing is stored to go stale
        assert pool.statistics()["missing"].state is trio_mcp.ServerState.IDLE
    assert {stats.state for stats in pool.statistics().values()} == {trio_mcp.ServerState.CLOSED}


def test_configs_are_immutable_and_hashable() -> None:
    config = trio_mcp.StdioServer("x", env={"TOKEN": "env-secret"})
    assert hash(config) == hash(trio_mcp.StdioServer("x", env={"TOKEN": "env-secret"}))
    remote = trio_mcp.StreamableHttpServer("http://h/mcp", headers={"Authorization": "Bearer t"})
    with pytest.raises(TypeError):
        remote.headers["Bad\n"] = "x"  # type: ignore[index]
    assert {config, remote}  # usable as keys
    assert "env-secret" not in repr(config) and "env-secret" not in repr(config.env)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: trio_mcp.ReconnectPolicy(jitter=float("nan")), "jitter must be between 0 and 1"),
        (lambda: trio_mcp.ReconnectPolicy(initial_backoff=True), "initial_backoff must be a positive number"),
        (lambda: trio_mcp.Limits(max_concurrent=0), "max_concurrent must be a whole number"),
        (lambda: trio_mcp.StdioServer(" "), "command must be a non-empty string"),
        (lambda: trio_mcp.StdioServer("x", ["ok", 1]), "args must be strings"),
        (lambda: trio_mcp.StdioServer("x", env={"K": 1}), "env must be a mapping"),
        (lambda: trio_mcp.StdioServer("x", call_timeout=math.inf), "call_timeout must be a positive, finite"),
        (lambda: trio_mcp.StdioServer("x", mode="new"), "mode must be one of"),
        (lambda: trio_mcp.StdioServer("x", limits="many"), "limits must be a Limits"),
    ],
)
def test_attrs_validators_speak_config_errors_without_values(make: Any, words: str) -> None:
    with pytest.raises(trio_mcp.ConfigError, match=re.escape(words)) as info:
        make()
    assert "many" not in str(info.value) and "'new'" not in str(info.value)
