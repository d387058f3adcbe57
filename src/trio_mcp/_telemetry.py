"""OpenTelemetry: one span per pool request, and the caller's trace context carried along.

The span follows the OpenTelemetry semantic conventions for MCP (the ``mcp.client``
span of semantic-conventions-genai): named ``"{mcp.method.name} {target}"``, kind
CLIENT, with ``mcp.method.name``, ``gen_ai.tool.name`` / ``gen_ai.prompt.name``,
``gen_ai.operation.name``, ``mcp.protocol.version``, ``network.*``,
``server.address`` / ``server.port`` and, on failure, ``error.type`` and an ERROR
status; plus ``trio_mcp.server``, the pool's name for the server. It covers the whole
request: waiting for capacity, connecting, and a transparent resend, so the SDK's own
``MCP send ...`` span of each message sent is its child, and the ``traceparent`` the
SDK puts in the request's ``_meta`` (SEP-414) belongs to the caller's trace.

Never in an attribute: arguments, results, headers, URL credentials, paths or queries,
the ``Mcp-Session-Id`` (so no ``mcp.session.id``), resource URIs.

While no tracer provider is configured (OpenTelemetry's default), a request makes no
span at all and pays one attribute read.
"""

from __future__ import annotations

from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import mcp.types as types
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, SpanKind, Status, StatusCode

from ._errors import MCPPoolError, RequestFailedError
from ._version import __version__

if TYPE_CHECKING:
    from ._server import ServerSlot

__all__ = ["RequestSpan", "Tracing", "caller_context", "carried", "detached"]

T = TypeVar("T")

TRACER_NAME = "trio_mcp"
# What a pool request that is not one MCP method sends: a skill's files are read
# with resources/read (after a skills/list when named).
_METHODS = {"skill": "resources/read"}


if hasattr(trace, "_TRACER_PROVIDER"):

    def _global_provider() -> trace.TracerProvider | None:
        """The provider set with ``trace.set_tracer_provider``, or None while there is none.

        Read straight from the global that the API's own ``ProxyTracer`` reads:
        ``trace.get_tracer_provider()`` also looks into ``os.environ`` on every call,
        which would cost more than the rest of a request's telemetry when nothing records.
        """
        provider: trace.TracerProvider | None = trace._TRACER_PROVIDER
        return provider

else:  # pragma: no cover - an API without that global

    def _global_provider() -> trace.TracerProvider | None:
        provider = trace.get_tracer_provider()
        return None if isinstance(provider, ProxyTracerProvider) else provider


class Tracing:
    """Where one pool's request spans go: a given tracer provider, or the global one."""

    __slots__ = ("_provider", "_seen", "_tracer")

    def __init__(self, provider: trace.TracerProvider | None) -> None:
        self._provider = provider
        self._seen: trace.TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if provider is None:
            # Loads a provider named by OTEL_PYTHON_TRACER_PROVIDER, if any, once.
            trace.get_tracer_provider()

    def tracer(self) -> trace.Tracer | None:
        """The tracer to use now, or None when nothing would record a span."""
        provider = self._provider or _global_provider()
        if provider is not self._seen:
            self._seen = provider
            self._tracer = (
                None
                if provider is None or isinstance(provider, NoOpTracerProvider | ProxyTracerProvider)
                else provider.get_tracer(TRACER_NAME, __version__)
            )
        return self._tracer


class RequestSpan:
    """One request's span: current while the request runs (``with``), ended after it."""

    __slots__ = ("_slot", "_span", "_token")

    def __init__(
        self, tracer: trace.Tracer, slot: ServerSlot, what: str, tool: str | None, prompt: str | None
    ) -> None:
        method = what.partition(" ")[0]
        method = _METHODS.get(method, method)
        attributes: dict[str, Any] = {"mcp.method.name": method, "trio_mcp.server": slot.name}
        attributes.update(slot.config.network_attributes())
        target = tool or prompt
        if tool is not None:
            attributes["gen_ai.tool.name"] = tool
            attributes["gen_ai.operation.name"] = "execute_tool"
        elif prompt is not None:
            attributes["gen_ai.prompt.name"] = prompt
        name = f"{method} {target}" if target else method
        self._span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._slot = slot

    def __enter__(self) -> RequestSpan:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def result(self, value: T) -> T:
        """``value``, the request's result; a tool's own error marks the span failed."""
        if isinstance(value, types.CallToolResult) and value.is_error:
            # The convention's word for a result with isError set; the text is the tool's.
            self._span.set_attribute("error.type", "tool_error")
            self._span.set_status(Status(StatusCode.ERROR))
        return value

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        try:
            live = self._slot.live
            if live is not None:
                span.set_attribute("mcp.protocol.version", live.client.protocol_version)
            if exc is not None:
                _record_failure(span, exc)
        finally:
            otel_context.detach(self._token)
            span.end()


def _record_failure(span: trace.Span, exc: BaseException) -> None:
    """``error.type`` and an ERROR status: the server's JSON-RPC code when it answered
    with an error, else the exception's class name (``ToolCallTimeout``, ``Cancelled``)."""
    if type(exc) is RequestFailedError:
        code = str(exc.code)
        span.set_attributes({"error.type": code, "rpc.response.status_code": code})
    else:
        span.set_attribute("error.type", type(exc).__qualname__)
    # The pool's messages never hold a secret; other exceptions' might, so they give none.
    span.set_status(Status(StatusCode.ERROR, str(exc) if isinstance(exc, MCPPoolError) else None))


# -- carrying the context where trio would not ---------------------------------------


def caller_context() -> otel_context.Context | None:
    """The calling thread's OpenTelemetry context (its current span, its baggage), or
    None when it holds nothing: what a portal call carries into the trio thread."""
    current = otel_context.get_current()
    return current if current else None


class _Attached:
    __slots__ = ("_context", "_token")

    def __init__(self, context: otel_context.Context | None) -> None:
        self._context = context
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> None:
        if self._context is not None:
            self._token = otel_context.attach(self._context)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)


def carried(context: otel_context.Context | None) -> _Attached:
    """Make ``context`` (from :func:`caller_context`) current for a ``with`` block, if not None."""
    return _Attached(context)


def detached() -> _Attached:
    """An empty context for a ``with`` block: the tasks started in it (a server's
    supervisor and sessions, which outlive whoever started them) are no part of the
    caller's trace."""
    return _Attached(otel_context.Context())
