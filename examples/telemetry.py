"""OpenTelemetry spans and a Prometheus scrape of a pool's requests.

Run: ``python examples/telemetry.py`` (uses the test server over stdio; needs
``pip install 'trio-mcp[otel,prometheus]' opentelemetry-sdk``).

The spans are kept in memory and printed as a tree; in production, give the
TracerProvider a ``BatchSpanProcessor(OTLPSpanExporter())`` instead, and serve the
registry with ``prometheus_client.start_http_server(port)``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import prometheus_client
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import trio_mcp

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "servers" / "test_server.py")

# The global provider: the pool's spans and the MCP SDK's own ("MCP send ...") go to it.
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("example")


async def main() -> None:
    servers = {"files": trio_mcp.StdioServer(sys.executable, [SERVER], stderr="discard")}
    async with trio_mcp.open_mcp_pool(servers) as pool:
        registry = prometheus_client.CollectorRegistry()  # or the default REGISTRY
        with trio_mcp.PrometheusCollector(pool, registry=registry):
            with tracer.start_as_current_span("agent turn") as turn:
                # The trace context travels to the server in the request's _meta.
                seen = await pool.tool_call("files", "request_meta")
                await pool.tool_call("files", "echo", {"text": "hello"})
                await pool.tool_call("files", "fail")  # a tool error: is_error, error.type=tool_error
            ours = format(turn.get_span_context().trace_id, "032x")
            theirs = (seen.structured_content or {})["traceparent"].split("-")[1]
            print("the server saw the trace of the agent turn:", theirs == ours)
            # A scrape, from another thread as prometheus_client's HTTP server would do it.
            scraped = await trio.to_thread.run_sync(prometheus_client.generate_latest, registry)
            print("scrape:")
            for line in scraped.decode().splitlines():
                if line.startswith(("trio_mcp_requests_total", "trio_mcp_latency_seconds")):
                    print(line)
    print("spans:")
    print_tree(exporter.get_finished_spans())


def print_tree(spans: Sequence[ReadableSpan]) -> None:
    """Each span under its parent, in the order they started."""
    ordered = sorted(spans, key=lambda span: span.start_time or 0)
    known = {span.context.span_id for span in ordered if span.context is not None}

    def show(parent: int | None, depth: int) -> None:
        for span in ordered:
            above = span.parent.span_id if span.parent is not None else None
            if (above if above in known else None) != parent:
                continue
            error = (span.attributes or {}).get("error.type")
            print(f"{'  ' * depth}{span.name} [{span.kind.name}]" + (f" error.type={error}" if error else ""))
            if span.context is not None:
                show(span.context.span_id, depth + 1)

    show(None, 0)


if __name__ == "__main__":
    trio.run(main)
