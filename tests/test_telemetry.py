"""Telemetry: an OpenTelemetry span per request, the trace carried to the server in
``_meta``, and ``statistics()`` scraped by Prometheus.

Spans go to the OpenTelemetry SDK's in-memory exporter through a TracerProvider given to
the pool (``tracer_provider=``): the global provider is never set in this process (it
can be set only once, and every later test would pay for it). ``examples/telemetry.py``,
run in a subprocess, covers the global provider and the SDK's own ``MCP send`` spans.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import trio
import trio.testing
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

import trio_mcp
from trio_mcp._telemetry import Tracing

from .conftest import SERVER, HttpServer, config_for, stdio_server

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "telemetry.py"


class Recorder:
    """A TracerProvider whose finished spans are kept in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        [span] = self.named(name)
        return span


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder()
    yield recording
    recording.provider.shutdown()


@pytest.fixture(params=("auto", "legacy"))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def traceparent(result: Any) -> tuple[str, str]:
    """The trace id and parent span id of the ``traceparent`` the server received."""
    meta = result.structured_content
    assert meta is not None and set(meta) == {"traceparent"}, meta
    version, trace_id, parent_id, _flags = meta["traceparent"].split("-")
    assert version == "00"
    return trace_id, parent_id


def ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def parent_of(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format(span.parent.span_id, "016x")


# -- spans ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_spans_follow_the_mcp_conventions_and_reach_the_server(
    recorder: Recorder, transport: str, mode: str, http_server: HttpServer
) -> None:
    config = config_for(transport, http_server, mode=mode)
    async with trio_mcp.open_mcp_pool({"s": config}, tracer_provider=recorder.provider) as pool:
        with recorder.tracer.start_as_current_span("agent turn") as turn:
            seen = await pool.tool_call("s", "request_meta")
            await pool.get_prompt("s", "summarize", {"topic": "otters"})
            await pool.list_tools("s")
    # The server got the caller's trace, its parent the pool's span of the request.
    call = recorder.one("tools/call request_meta")
    assert traceparent(seen) == ids(call)
    assert (
        ids(call)[0] == ids(recorder.one("agent turn"))[0] == format(turn.get_span_context().trace_id, "032x")
    )
    network: dict[str, Any] = {"network.transport": "pipe"}
    if transport == "http":
        network = {
            "network.transport": "tcp",
            "network.protocol.name": "http",
            "server.address": "127.0.0.1",
            "server.port": http_server.port,
        }
    common = {
        "trio_mcp.server": "s",
        "mcp.protocol.version": "2025-11-25" if mode == "legacy" else "2026-07-28",
        **network,
    }
    assert call.kind is SpanKind.CLIENT and call.status.status_code is StatusCode.UNSET
    assert dict(call.attributes or {}) == {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "request_meta",
        "gen_ai.operation.name": "execute_tool",
        **common,
    }
    prompt = recorder.one("prompts/get summarize")
    assert dict(prompt.attributes or {}) == {
        "mcp.method.name": "prompts/get",
        "gen_ai.prompt.name": "summarize",
        **common,
    }
    listing = recorder.one("tools/list")
    assert dict(listing.attributes or {}) == {"mcp.method.name": "tools/list", **common}
    turn_id = ids(recorder.one("agent turn"))[1]
    assert [parent_of(span) for span in (call, prompt, listing)] == [turn_id] * 3
    assert len(recorder.spans()) == 4  # nothing else: connecting is no request of the caller's


async def test_failures_set_error_type_and_an_error_status(recorder: Recorder, mode: str) -> None:
    config = stdio_server(mode=mode, stderr="discard")
    async with trio_mcp.open_mcp_pool({"s": config}, tracer_provider=recorder.provider) as pool:
        # The server answers with a JSON-RPC error: its code.
        with pytest.raises(trio_mcp.RequestFailedError) as answered:
            await pool.read_resource("s", "memo://no-such-note")
        # A tool that runs and fails: the convention's "tool_error".
        assert (await pool.tool_call("s", "fail")).is_error
        # The pool's own errors, and the caller's cancellation: their class names.
        with pytest.raises(trio_mcp.UnknownToolError):
            await pool.tool_call("s", "no_such_tool")
        with trio.move_on_after(0.2):
            await pool.tool_call("s", "slow", {"seconds": 60})
    async with trio_mcp.open_mcp_pool(
        {"s": stdio_server(mode=mode, call_timeout=0.5)}, tracer_provider=recorder.provider
    ) as pool:
        with pytest.raises(trio_mcp.ToolCallTimeout) as timed_out:
            await pool.tool_call("s", "slow", {"seconds": 60})

    read = recorder.one("resources/read")
    code = str(answered.value.code)
    assert (read.attributes or {})["error.type"] == code
    assert (read.attributes or {})["rpc.response.status_code"] == code
    assert (read.status.status_code, read.status.description) == (StatusCode.ERROR, str(answered.value))
    failed = recorder.one("tools/call fail")
    assert ((failed.attributes or {})["error.type"], failed.status.status_code) == (
        "tool_error",
        StatusCode.ERROR,
    )
    unknown = recorder.one("tools/call no_such_tool")
    assert (unknown.attributes or {})["error.type"] == "UnknownToolError"
    assert unknown.status.status_code is StatusCode.ERROR
    [cancelled, slow] = recorder.named("tools/call slow")
    assert (cancelled.attributes or {})["error.type"] == "Cancelled"
    assert (cancelled.status.status_code, cancelled.status.description) == (StatusCode.ERROR, None)
    assert (slow.attributes or {})["error.type"] == "ToolCallTimeout"
    assert slow.status.description == str(timed_out.value)
    for span in recorder.spans():
        assert span.events == ()  # no exception events: no tracebacks in the trace


async def test_no_span_without_a_provider_yet_the_sdk_still_propagates(recorder: Recorder) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        assert pool._tracing.tracer() is None  # the global provider is not set here
        with recorder.tracer.start_as_current_span("outside") as outside:
            seen = await pool.tool_call("s", "request_meta")
        bare = await pool.tool_call("s", "request_meta", meta={"k": "v"})
    assert [span.name for span in recorder.spans()] == ["outside"]
    # The current span is injected by the SDK (SEP-414) whether or not the pool traces.
    assert traceparent(seen) == ids(recorder.one("outside"))
    assert outside.get_span_context().is_valid
    assert bare.structured_content == {"k": "v"}  # no trace, no traceparent


async def test_a_resend_after_a_restart_is_inside_the_one_span(recorder: Recorder) -> None:
    """The request the restarted server turned away (404) is sent again within its span."""
    server = HttpServer()
    try:
        config = trio_mcp.StreamableHttpServer(server.http_url, mode="legacy")
        async with trio_mcp.open_mcp_pool({"h": config}, tracer_provider=recorder.provider) as pool:
            await pool.tool_call("h", "echo", {"text": "one"})
            port = server.port
            await trio.to_thread.run_sync(server.stop)
            server = await trio.to_thread.run_sync(HttpServer, port)
            seen = await pool.tool_call("h", "request_meta")
            assert pool.statistics()["h"].reconnects == 1
    finally:
        server.stop()
    call = recorder.one("tools/call request_meta")
    assert call.status.status_code is StatusCode.UNSET
    assert traceparent(seen) == ids(call)


def test_portal_calls_are_children_of_the_calling_threads_span(recorder: Recorder) -> None:
    with trio_mcp.start_portal({"s": stdio_server()}, tracer_provider=recorder.provider) as portal:
        with recorder.tracer.start_as_current_span("in a thread"):
            seen = portal.tool_call("s", "request_meta")
        alone = portal.tool_call("s", "request_meta")
        results: list[Any] = []

        def other_thread() -> None:
            with recorder.tracer.start_as_current_span("another thread"):
                results.append(portal.tool_call("s", "request_meta"))

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    first, second, third = recorder.named("tools/call request_meta")
    assert parent_of(first) == ids(recorder.one("in a thread"))[1]
    assert ids(first)[0] == ids(recorder.one("in a thread"))[0]
    assert traceparent(seen) == ids(first)
    assert parent_of(second) is None and traceparent(alone) == ids(second)  # a trace of its own
    assert parent_of(third) == ids(recorder.one("another thread"))[1]
    assert traceparent(results[0]) == ids(third)


def test_tracer_provider_is_checked_and_networks_name_no_secret() -> None:
    with pytest.raises(trio_mcp.ConfigError, match="tracer_provider must be an opentelemetry"):
        trio_mcp.PoolOptions(tracer_provider="console")  # type: ignore[arg-type]
    remote = trio_mcp.StreamableHttpServer("https://usr:pw@mcp.example:8443/v1/mcp?key=k")
    assert remote.network_attributes() == {
        "network.transport": "tcp",
        "network.protocol.name": "http",
        "server.address": "mcp.example",
        "server.port": 8443,
    }
    assert trio_mcp.SseServer("http://mcp.example/sse").network_attributes()["server.port"] == 80
    assert trio_mcp.StreamableHttpServer("https://[::1]/mcp").network_attributes()["server.address"] == "::1"
    # A host filled from the pool's variables is not known (and not shown).
    for url in ("https://${host}/mcp", "https://${host}:${port}/mcp", "http://[${v6}]/mcp"):
        assert "server.address" not in trio_mcp.StreamableHttpServer(url).network_attributes()
    assert stdio_server().network_attributes() == {"network.transport": "pipe"}


def test_the_global_provider_is_looked_up_per_request(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider set globally after the pool opened is used from then on (patched here
    on the API's global, so no other test sees it)."""
    tracing = Tracing(None)
    assert tracing.tracer() is None
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", recorder.provider)
    tracer = tracing.tracer()
    assert tracer is not None and tracing.tracer() is tracer  # made once per provider
    monkeypatch.undo()
    assert tracing.tracer() is None
    assert Tracing(trace.NoOpTracerProvider()).tracer() is None


# -- Prometheus -------------------------------------------------------------------------


def scrape(
    registry: prometheus_client.CollectorRegistry,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    text = prometheus_client.generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_a_prometheus_scrape_shows_the_pools_counters(http_server: HttpServer) -> None:
    registry = prometheus_client.CollectorRegistry()
    servers = {"files": stdio_server(), "web": config_for("http", http_server)}
    async with trio_mcp.open_mcp_pool(servers) as pool:
        with trio_mcp.PrometheusCollector(pool, registry=registry):
            before = scrape(registry)
            assert value(before, "trio_mcp_server_state", server="web", state="idle") == 1
            assert value(before, "trio_mcp_latency_seconds", server="web", quantile="0.5") is None
            for text in ("a", "b"):
                await pool.tool_call("files", "echo", {"text": text})
            await pool.tool_call("web", "echo", {"text": "c"})
            with trio.move_on_after(0.5):  # the caller's own deadline: timed_out
                await pool.tool_call("files", "slow", {"seconds": 60})
            with pytest.raises(trio_mcp.RequestFailedError):
                await pool.read_resource("files", "memo://no-such-note")
            async with trio.open_nursery() as nursery:  # cancelled by the caller, no deadline
                nursery.start_soon(pool.tool_call, "web", "slow", {"seconds": 60})
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
            # Scraped here, in the trio thread, and from a thread of its own as an
            # HTTP exposition server would: the same numbers.
            here = scrape(registry)
            there = await trio.to_thread.run_sync(scrape, registry)
            assert here == there
        after = scrape(registry)  # unregistered on leaving the block
    assert after == {}
    for server, outcomes in (
        ("files", {"completed": 2, "failed": 1, "timed_out": 1, "cancelled": 0}),
        ("web", {"completed": 1, "failed": 0, "timed_out": 0, "cancelled": 1}),
    ):
        for outcome, count in outcomes.items():
            assert value(here, "trio_mcp_requests_total", server=server, outcome=outcome) == count
        assert value(here, "trio_mcp_connects_total", server=server) == 1
        assert value(here, "trio_mcp_reconnects_total", server=server) == 0
        assert value(here, "trio_mcp_in_flight", server=server) == 0
        assert value(here, "trio_mcp_waiting", server=server) == 0
        assert value(here, "trio_mcp_consecutive_failures", server=server) == 0
        states = {
            state.name.lower(): value(here, "trio_mcp_server_state", server=server, state=state.name.lower())
            for state in trio_mcp.ServerState
        }
        assert states == {name: (1 if name == "ready" else 0) for name in states}
        p50 = value(here, "trio_mcp_latency_seconds", server=server, quantile="0.5")
        p99 = value(here, "trio_mcp_latency_seconds", server=server, quantile="0.99")
        assert p50 is not None and p99 is not None and 0 < p50 <= p99


def test_a_portal_is_scraped_through_its_thread() -> None:
    registry = prometheus_client.CollectorRegistry()
    with trio_mcp.start_portal({"s": stdio_server()}) as portal:
        collector = trio_mcp.PrometheusCollector(portal, registry=registry)
        portal.tool_call("s", "echo", {"text": "x"})
        samples = scrape(registry)
        assert value(samples, "trio_mcp_requests_total", server="s", outcome="completed") == 1
        with pytest.raises(RuntimeError, match="in the pool's trio thread"):
            trio_mcp.PrometheusCollector(portal.pool, registry=None)
    # Closed: the families are still described, with no sample.
    text = prometheus_client.generate_latest(registry).decode()
    assert "# TYPE trio_mcp_requests_total counter" in text
    assert "trio_mcp_requests_total{" not in text
    collector.unregister()
    collector.unregister()  # idempotent
    assert prometheus_client.generate_latest(registry) == b""


def test_a_pool_whose_trio_run_ended_yields_no_sample() -> None:
    registry = prometheus_client.CollectorRegistry()

    async def main() -> trio_mcp.PrometheusCollector:
        async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
            await pool.tool_call("s", "echo", {"text": "x"})
            return trio_mcp.PrometheusCollector(pool, registry=registry)

    collector = trio.run(main)
    assert "trio_mcp_in_flight{" not in prometheus_client.generate_latest(registry).decode()
    collector.unregister()


def test_the_default_registry_and_wrong_sources() -> None:
    with trio_mcp.start_portal({"s": stdio_server()}) as portal:
        collector = trio_mcp.PrometheusCollector(portal)
        try:
            registry = prometheus_client.REGISTRY
            assert registry.get_sample_value("trio_mcp_in_flight", {"server": "s"}) == 0
            with pytest.raises(ValueError, match="Duplicated timeseries"):
                trio_mcp.PrometheusCollector(portal)  # one collector per registry
        finally:
            collector.unregister()
        assert prometheus_client.REGISTRY.get_sample_value("trio_mcp_in_flight", {"server": "s"}) is None
    with pytest.raises(TypeError, match="needs an MCPPool or a Portal, not dict"):
        trio_mcp.PrometheusCollector({})  # type: ignore[arg-type]


def test_without_prometheus_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)
    with pytest.raises(ImportError, match=r"pip install 'trio-mcp\[prometheus\]'"):
        trio_mcp.PrometheusCollector(None)  # type: ignore[arg-type]


# -- the example --------------------------------------------------------------------------


def test_the_example_traces_through_the_global_provider() -> None:
    """With the global provider set, the SDK's own ``MCP send`` spans are the pool span's
    children, and the session's own traffic is no part of the caller's trace."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    tree = lines[lines.index("spans:") + 1 :]
    assert tree[:6] == [
        "agent turn [INTERNAL]",
        "  tools/call request_meta [CLIENT]",
        "    MCP send tools/list [CLIENT]",
        "    MCP send tools/call request_meta [CLIENT]",
        "  tools/call echo [CLIENT]",
        "    MCP send tools/call echo [CLIENT]",
    ]
    assert "  tools/call fail [CLIENT] error.type=tool_error" in tree
    assert "MCP send server/discover [CLIENT]" in tree  # a root: opening the session
    assert any(line.startswith("the server saw the trace of the agent turn: True") for line in lines)
    assert 'trio_mcp_requests_total{outcome="completed",server="files"} 3.0' in lines


# In a process of its own: it sets the global provider (once, for good).
_OWN_TRAFFIC = """
import sys, trio, trio_mcp
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

async def main():
    server = lambda: trio_mcp.StdioServer(sys.executable, [sys.argv[1]], stderr="discard")
    with trace.get_tracer("app").start_as_current_span("app"):
        async with trio_mcp.open_mcp_pool({"s": server()}) as pool:
            await pool.add_server("added", server())
            for name in pool.servers:
                await pool.tool_call(name, "echo", {"text": "x"})

trio.run(main)
spans = exporter.get_finished_spans()
names = {span.context.span_id: span.name for span in spans}
for line in sorted({f"{span.name} <- {names[span.parent.span_id] if span.parent else None}" for span in spans}):
    print(line)
"""


def test_the_sessions_own_traffic_joins_no_callers_trace() -> None:
    """A server's supervisor and sessions outlive whoever opened the pool or added the
    server: the SDK's spans of their own requests are roots, not children of the span
    current then (which would gather a whole process's pings and reconnects)."""
    done = subprocess.run(
        [sys.executable, "-c", _OWN_TRAFFIC, SERVER], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "MCP send server/discover <- None",
        "MCP send subscriptions/listen <- None",
        "MCP send tools/call echo <- tools/call echo",
        "MCP send tools/list <- tools/call echo",
        "app <- None",
        "tools/call echo <- app",
    ]
