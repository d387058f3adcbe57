"""Interop: the pool against MCP servers built with other SDKs (issue 10).

The peers, installed by the repo's own files (``make peers``, pinned by
tests/peers/package-lock.json; fastmcp in the test extras):

- ``ts-*``: the TypeScript reference server ``@modelcontextprotocol/server-everything``
  2026.8.31 (TypeScript SDK 1.32.2) over stdio, SSE and Streamable HTTP;
- ``fastmcp-*``: tests/servers/fastmcp_server.py, built with fastmcp 4.1.2, over stdio
  and Streamable HTTP.

What they negotiate (checked by ``test_first_call_without_listing``):

- the TypeScript server speaks up to 2025-11-25 and has no 2026-era path: in
  ``mode="auto"`` our discovery is refused and the handshake falls back to
  ``initialize``, so both modes get 2025-11-25, on every transport;
- fastmcp answers discovery: ``mode="auto"`` gets 2026-07-28 (Streamable HTTP then has
  no session at all), ``mode="legacy"`` gets 2025-11-25, on both transports.

The TypeScript server announces ``notifications/tools/list_changed`` right after the
handshake (it registers more tools once it knows the client's capabilities), so its
first ``tools/list`` races a list change; and its Streamable HTTP transport answers a
stale ``Mcp-Session-Id`` with HTTP 400, not 404.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import outcome
import pytest
import trio

import trio_mcp
from trio_mcp import result_text
from trio_mcp._cli import main as cli_main

from .conftest import HttpServer
from .server_processes import (
    EVERYTHING_SERVER,
    NODE,
    ServerProcess,
    everything_server_argv,
    fastmcp_server_argv,
)

LEGACY_ERA, MODERN_ERA = "2025-11-25", "2026-07-28"
MODES = ("auto", "legacy")
PEERS = ("ts-stdio", "ts-sse", "ts-http", "fastmcp-stdio", "fastmcp-http")
#: The server process each HTTP peer runs in (shared by the tests of this module).
HTTP_PEERS = {
    "ts-sse": ("sse", everything_server_argv),
    "ts-http": ("streamableHttp", everything_server_argv),
    "fastmcp-http": ("http", fastmcp_server_argv),
}
#: Each peer in each mode that negotiates a different era: the TypeScript server in "auto"
#: only ("legacy" takes the same initialize handshake that "auto" falls back to).
PEER_MODES = [
    (peer, mode) for peer in PEERS for mode in MODES if peer.startswith("fastmcp") or mode == "auto"
]


def negotiates(peer: str, mode: str) -> str:
    return MODERN_ERA if peer.startswith("fastmcp") and mode == "auto" else LEGACY_ERA


def config_for(peer: str, mode: str, url: str | None = None) -> trio_mcp.ServerConfig:
    """How the pool reaches ``peer``; ``url`` is its HTTP server's base URL."""
    transport = peer.split("-")[1]
    if transport == "stdio":
        argv = everything_server_argv("stdio") if peer.startswith("ts") else fastmcp_server_argv("stdio")
        return trio_mcp.StdioServer(argv[0], argv[1:], mode=mode)
    assert url is not None
    if transport == "sse":
        return trio_mcp.SseServer(f"{url}/sse", mode=mode)
    return trio_mcp.StreamableHttpServer(f"{url}/mcp", mode=mode)


def echo_arguments(peer: str, text: str) -> dict[str, str]:
    return {"message": text} if peer.startswith("ts") else {"text": text}


def echoed(peer: str, text: str) -> str:
    return f"Echo: {text}" if peer.startswith("ts") else text


async def echo(pool: trio_mcp.MCPPool, peer: str, text: str) -> str:
    return result_text(await pool.tool_call(peer, "echo", echo_arguments(peer, text)))


def negotiated(caplog: pytest.LogCaptureFixture, server: str) -> list[str]:
    """The protocol version of every session the pool opened to ``server``, from its log."""
    pattern = re.compile(rf"server {re.escape(repr(server))}: (?:re)?connected \(protocol (\S+)\)")
    return [m.group(1) for r in caplog.records if (m := pattern.fullmatch(r.getMessage()))]


@pytest.fixture(scope="module")
def http_peers() -> Iterator[dict[str, str]]:
    """The HTTP peers' servers, one process each for the whole module: peer -> base URL."""
    processes = [ServerProcess(argv(arg)) for arg, argv in HTTP_PEERS.values()]
    try:
        with ThreadPoolExecutor() as starting:  # they start side by side
            list(starting.map(ServerProcess.start, processes))
        yield {peer: process.url("") for peer, process in zip(HTTP_PEERS, processes, strict=True)}
    finally:
        for process in processes:
            process.stop()


# Plus one TypeScript peer in "legacy", to show it gets the same era as in "auto".
@pytest.mark.parametrize(("peer", "mode"), [*PEER_MODES, ("ts-http", "legacy")])
async def test_first_call_without_listing(
    peer: str, mode: str, http_peers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The very first request of a fresh pool is a tool call; the era is as recorded above."""
    caplog.set_level(logging.INFO, logger="trio_mcp")
    async with trio_mcp.open_mcp_pool({peer: config_for(peer, mode, http_peers.get(peer))}) as pool:
        first = await outcome.acapture(echo, pool, peer, "first")
        assert negotiated(caplog, peer) == [negotiates(peer, mode)]
        assert first.unwrap() == echoed(peer, "first")
        assert await echo(pool, peer, "second") == echoed(peer, "second")


@pytest.mark.parametrize("peer", HTTP_PEERS)
async def test_restart_on_the_same_port_between_two_calls(
    peer: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The call after a restart succeeds, on a new session (2026-07-28 HTTP has none to renew)."""
    caplog.set_level(logging.INFO, logger="trio_mcp")
    arg, argv = HTTP_PEERS[peer]
    server = ServerProcess(argv(arg))  # its own: a restart replaces the process
    await trio.to_thread.run_sync(server.start)
    # One pool, one entry per era the peer speaks, restarted together.
    modes = {f"{peer}-{mode}": mode for p, mode in PEER_MODES if p == peer}
    configs = {name: config_for(peer, mode, server.url("")) for name, mode in modes.items()}
    try:
        async with trio_mcp.open_mcp_pool(configs) as pool:
            for name in configs:
                await pool.list_tools(name)
                assert await echo(pool, name, "before") == echoed(peer, "before")
            await trio.to_thread.run_sync(server.stop)
            if peer.endswith("sse"):
                # An SSE session lives on one GET stream, which the pool watches: it knows the
                # session is gone before the server is back (a stale SSE session id posted to
                # the TypeScript server is never answered at all).
                for name in configs:
                    while pool.statistics()[name].state is trio_mcp.ServerState.READY:  # noqa: ASYNC110
                        await trio.sleep(0.01)
            await trio.to_thread.run_sync(server.start)
            for name, mode in modes.items():
                assert await echo(pool, name, "after") == echoed(peer, "after")
                era = negotiates(peer, mode)
                sessions = 1 if era == MODERN_ERA else 2
                assert negotiated(caplog, name) == [era] * sessions
                assert pool.statistics()[name].reconnects == sessions - 1
    finally:
        server.stop()


# Every stdio fastmcp session costs a Python start-up (~1 s of CPU): concurrency over
# stdio is covered by the TypeScript peer, fastmcp's in both eras over HTTP.
@pytest.mark.parametrize(("peer", "mode"), [c for c in PEER_MODES if c[0] != "fastmcp-stdio"])
async def test_twenty_concurrent_first_calls(peer: str, mode: str, http_peers: dict[str, str]) -> None:
    async with trio_mcp.open_mcp_pool({peer: config_for(peer, mode, http_peers.get(peer))}) as pool:
        texts = [f"call {i}" for i in range(20)]
        results = await pool.tool_calls([(peer, "echo", echo_arguments(peer, text)) for text in texts])
        assert [r if isinstance(r, Exception) else result_text(r) for r in results] == [
            echoed(peer, text) for text in texts
        ]
        stats = pool.statistics()[peer]
        assert (stats.completed, stats.failed, stats.connects) == (20, 0, 1)


# The TypeScript server changes its tool list only while the handshake completes (which
# test_first_call_without_listing covers); none of its tools changes it later. Over stdio,
# fastmcp only on 2026-07-28, where the change rides the request's own stream; a 2025-era
# session notification over stdio is what the SDK-built server's tests already cover.
@pytest.mark.parametrize(
    ("peer", "mode"),
    [c for c in PEER_MODES if c[0].startswith("fastmcp") and c != ("fastmcp-stdio", "legacy")],
)
async def test_list_changed_reaches_the_tool_cache(peer: str, mode: str, http_peers: dict[str, str]) -> None:
    # The HTTP server outlives this test, so the new tool needs a name of its own.
    name = f"added_{uuid.uuid4().hex[:8]}"
    async with trio_mcp.open_mcp_pool({peer: config_for(peer, mode, http_peers.get(peer))}) as pool:
        assert name not in {tool.name for tool in await pool.list_tools(peer)}  # now cached
        assert result_text(await pool.tool_call(peer, "add_tool", {"name": name})) == name
        # Only notifications/tools/list_changed can refresh the cached list.
        with trio.fail_after(10):
            while name not in {tool.name for tool in await pool.list_tools(peer)}:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert result_text(await pool.tool_call(peer, name)) == name


def test_first_call_through_the_portal() -> None:
    with trio_mcp.start_portal({"ts": config_for("ts-stdio", "auto")}) as portal:
        assert result_text(portal.tool_call("ts", "echo", {"message": "portal"})) == "Echo: portal"


def test_first_call_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {"mcpServers": {"everything": {"command": str(NODE), "args": [str(EVERYTHING_SERVER), "stdio"]}}}
        )
    )
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(
        ["call", str(path), "everything", "echo", "--args", '{"message": "cli"}'], out=out, err=err
    )
    assert (code, out.getvalue(), err.getvalue()) == (0, "Echo: cli\n", "")


async def test_list_changed_after_a_restart_on_2026() -> None:
    """After a restart of a 2026-07-28 server, list changes still reach the tool cache.

    None of the peers above has a ``subscriptions/listen`` stream (fastmcp does not
    announce ``tools.listChanged``; it relates the notification to the request instead),
    so this uses the SDK-built test server, which delivers list changes only there.
    """
    server = await trio.to_thread.run_sync(HttpServer)
    try:
        async with trio_mcp.open_mcp_pool({"s": trio_mcp.StreamableHttpServer(server.http_url)}) as pool:
            await pool.list_tools("s")  # cached
            await trio.to_thread.run_sync(server.restart)
            assert result_text(await pool.tool_call("s", "add_tool", {"name": "late"})) == "late"
            with trio.fail_after(3):
                while "late" not in {tool.name for tool in await pool.list_tools("s")}:  # noqa: ASYNC110
                    await trio.sleep(0.01)
    finally:
        server.stop()


@pytest.mark.parametrize(("peer", "mode"), PEER_MODES)
async def test_a_call_is_one_span_over_the_sdks_own(peer: str, mode: str, http_peers: dict[str, str]) -> None:
    """Against servers of other SDKs too: one span per call, carrying the negotiated era
    and the transport (test_telemetry.py follows its context to the server in ``_meta``)."""
    from .test_telemetry import Recorder

    recorder = Recorder()
    try:
        config = config_for(peer, mode, http_peers.get(peer))
        async with trio_mcp.open_mcp_pool({peer: config}, tracer_provider=recorder.provider) as pool:
            assert await echo(pool, peer, "traced") == echoed(peer, "traced")
        [span] = recorder.named("tools/call echo")
        attributes = dict(span.attributes or {})
        assert attributes["mcp.method.name"] == "tools/call"
        assert attributes["gen_ai.tool.name"] == "echo"
        assert attributes["trio_mcp.server"] == peer
        assert attributes["mcp.protocol.version"] == negotiates(peer, mode)
        assert attributes["network.transport"] == ("pipe" if peer.endswith("stdio") else "tcp")
    finally:
        recorder.provider.shutdown()
