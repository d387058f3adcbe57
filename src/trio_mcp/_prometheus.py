"""Prometheus: a pool's :meth:`~MCPPool.statistics` as metric families for prometheus_client.

A custom collector (prometheus_client's ``collect()`` protocol): every scrape takes one
fresh snapshot and turns it into ``trio_mcp_*`` families, one label set per server.
Nothing is counted twice: the pool keeps the counters, the collector only reads them.

Scrapes run in another thread (prometheus_client's HTTP server, a WSGI worker). The
snapshot is therefore taken in the pool's trio thread: an :class:`MCPPool` is read
directly when the scrape runs in that thread and through one ``run_sync_soon`` hop
otherwise; a :class:`Portal` is read through :meth:`Portal.statistics`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._errors import PoolClosedError
from ._pool import MCPPool
from ._portal import Portal
from ._server import ServerState, ServerStatistics

if TYPE_CHECKING:
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["PrometheusCollector"]

logger = logging.getLogger("trio_mcp")

# How long a scrape from another thread waits for the pool's trio thread to answer.
_READ_TIMEOUT = 5.0


class _Default:
    def __repr__(self) -> str:
        return "prometheus_client.REGISTRY"


_DEFAULT_REGISTRY: Any = _Default()

Snapshot = dict[str, ServerStatistics]


def _prometheus_core() -> Any:
    try:
        import prometheus_client.core
    except ImportError:
        raise ImportError(
            "trio_mcp.PrometheusCollector needs prometheus_client: pip install 'trio-mcp[prometheus]'",
            name="prometheus_client",
        ) from None
    return prometheus_client.core


class PrometheusCollector:
    """Exports ``statistics()`` of an :class:`MCPPool` or a :class:`Portal` to Prometheus.

    Registers itself with ``registry`` (``prometheus_client.REGISTRY`` by default;
    None registers nowhere, for you to register it) until :meth:`unregister`, or the
    end of a ``with`` block::

        with trio_mcp.PrometheusCollector(portal):
            prometheus_client.start_http_server(9464)
            ...

    Every scrape reads one snapshot and yields, per server (label ``server``):

    - ``trio_mcp_requests_total{outcome=completed|failed|timed_out|cancelled}`` (counter)
    - ``trio_mcp_in_flight``, ``trio_mcp_waiting`` (gauges)
    - ``trio_mcp_connects_total``, ``trio_mcp_reconnects_total`` (counters)
    - ``trio_mcp_consecutive_failures`` (gauge)
    - ``trio_mcp_server_state{state=...}``: 1 for the server's state, 0 for the others
    - ``trio_mcp_latency_seconds{quantile="0.5"|"0.99"}`` over the recent calls, once
      one has completed

    Make the collector of an :class:`MCPPool` in the pool's trio thread (inside its
    ``async with``); a portal's may be made in any thread. A scrape after the pool or
    portal closed yields the families without samples. Raises :class:`ImportError`
    naming the ``prometheus`` extra if prometheus_client is not installed.
    """

    def __init__(self, source: MCPPool | Portal, *, registry: CollectorRegistry | None = _DEFAULT_REGISTRY):
        self._core = _prometheus_core()
        self._read: Callable[[], Snapshot]
        if isinstance(source, Portal):
            self._read = functools.partial(_read_portal, source)
        elif isinstance(source, MCPPool):
            try:
                token = trio.lowlevel.current_trio_token()
            except RuntimeError:
                raise RuntimeError(
                    "make the PrometheusCollector of an MCPPool in the pool's trio thread "
                    "(or give it the Portal that runs the pool)"
                ) from None
            self._read = functools.partial(_read_pool, source, token)
        else:
            raise TypeError(f"PrometheusCollector needs an MCPPool or a Portal, not {type(source).__name__}")
        if registry is _DEFAULT_REGISTRY:
            registry = self._core.REGISTRY
        self._registry = registry
        if registry is not None:
            registry.register(self)

    def unregister(self) -> None:
        """Stop exporting: take the collector out of its registry (idempotent)."""
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.unregister(self)

    def __enter__(self) -> PrometheusCollector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unregister()

    def describe(self) -> Iterator[Metric]:
        """The families, without samples (what a registry checks names with)."""
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        """One snapshot of the pool as metric families (called by each scrape)."""
        families = self._families()
        for name, stats in self._read().items():
            for outcome in ("completed", "failed", "timed_out", "cancelled"):
                families.requests.add_metric([name, outcome], getattr(stats, outcome))
            families.in_flight.add_metric([name], stats.in_flight)
            families.waiting.add_metric([name], stats.waiting)
            families.connects.add_metric([name], stats.connects)
            families.reconnects.add_metric([name], stats.reconnects)
            families.consecutive_failures.add_metric([name], stats.consecutive_failures)
            for state in ServerState:
                families.server_state.add_metric([name, state.name.lower()], 1 if state is stats.state else 0)
            for quantile, seconds in (("0.5", stats.latency_p50), ("0.99", stats.latency_p99)):
                if seconds is not None:
                    families.latency.add_metric([name, quantile], seconds)
        yield from families

    def _families(self) -> _Families:
        counter, gauge = self._core.CounterMetricFamily, self._core.GaugeMetricFamily
        server = ["server"]
        return _Families(
            requests=counter(
                "trio_mcp_requests",
                "Requests finished, by outcome (timed_out: a deadline passed; cancelled: abandoned by the caller)",
                labels=[*server, "outcome"],
            ),
            in_flight=gauge(
                "trio_mcp_in_flight", "Requests holding one of the server's concurrency slots", labels=server
            ),
            waiting=gauge("trio_mcp_waiting", "Requests waiting for a concurrency slot", labels=server),
            connects=counter("trio_mcp_connects", "Sessions opened", labels=server),
            reconnects=counter("trio_mcp_reconnects", "Sessions opened after the first", labels=server),
            consecutive_failures=gauge(
                "trio_mcp_consecutive_failures",
                "Connection attempts failed since the last success",
                labels=server,
            ),
            server_state=gauge(
                "trio_mcp_server_state",
                "1 for the state the server's supervisor is in",
                labels=[*server, "state"],
            ),
            latency=gauge(
                "trio_mcp_latency_seconds",
                "Latency quantiles of the server's most recent completed requests",
                labels=[*server, "quantile"],
            ),
        )


@attrs.frozen
class _Families:
    """The metric families of one scrape, in the order they are exposed."""

    requests: CounterMetricFamily
    in_flight: GaugeMetricFamily
    waiting: GaugeMetricFamily
    connects: CounterMetricFamily
    reconnects: CounterMetricFamily
    consecutive_failures: GaugeMetricFamily
    server_state: GaugeMetricFamily
    latency: GaugeMetricFamily

    def __iter__(self) -> Iterator[Metric]:
        return iter(attrs.astuple(self, recurse=False))


def _read_portal(portal: Portal) -> Snapshot:
    try:
        return portal.statistics()
    except PoolClosedError:
        return {}


def _read_pool(pool: MCPPool, token: trio.lowlevel.TrioToken) -> Snapshot:
    """``pool.statistics()``, taken in the pool's trio thread."""
    try:
        here: trio.lowlevel.TrioToken | None = trio.lowlevel.current_trio_token()
    except RuntimeError:
        here = None
    if here is token:
        return pool.statistics()
    # Another thread: the slots are read where they are written, never concurrently.
    answer: list[Snapshot] = []
    done = threading.Event()

    def take() -> None:  # a run_sync_soon callback: it must not raise
        try:
            answer.append(pool.statistics())
        except Exception:  # pragma: no cover - statistics() only reads counters
            logger.exception("reading the pool's statistics failed")
        finally:
            done.set()

    try:
        token.run_sync_soon(take)
    except trio.RunFinishedError:
        return {}  # the pool's trio run is over
    if not done.wait(_READ_TIMEOUT):
        logger.warning("the pool's trio thread did not answer within %gs: no trio_mcp metrics", _READ_TIMEOUT)
        return {}
    return answer[0] if answer else {}
