"""Prometheus metrics: request counts and latencies by route template and status (never by raw path)."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from tornado import web

from handlers.base import BaseHandler
from handlers.contract import operation
from services.chat.events import EventPublisher
from services.chat.sockets import SocketHub
from models.replicas import ReplicaSet
from services.local_cache import LocalCaches

REQUESTS = Counter("swiper_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram("swiper_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LOCAL_CACHES_LIVE = Gauge("swiper_local_caches_live", "1 while the local caches' invalidation subscription is confirmed")
LOCAL_CACHE_ENTRIES = Gauge("swiper_local_cache_entries", "Entries in a local cache", ["cache"])
SOCKETS_OPEN = Gauge("swiper_sockets_open", "Event sockets open on this process")
EVENTS_LIVE = Gauge("swiper_events_subscription_live", "1 while the event subscription is confirmed")
RESYNCS_OWED = Gauge("swiper_events_resyncs_owed", "Users whose events could not be published (Redis down)")
_route_names: dict[type, str] = {}


class _ReplicaMetrics:
    """Each replica's state and lag as of its last check, and where this process's lag-tolerant reads went."""

    def __init__(self, replicas: ReplicaSet) -> None:
        self.replicas = replicas

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        up = GaugeMetricFamily("swiper_mysql_replica_up", "1 while a replica is used for reads (answering, lag "
                               "within SWIPER_REPLICA_MAX_LAG)", labels=["replica", "state"])
        lag = GaugeMetricFamily("swiper_mysql_replica_lag_seconds", "Seconds_Behind_Master at the last check "
                                "(-1: unknown: down or not replicating)", labels=["replica"])
        for replica in self.replicas.replicas:
            up.add_metric([replica.name, replica.state], float(replica.state == "ok"))
            lag.add_metric([replica.name], replica.lag if replica.lag is not None else -1.0)
        reads = CounterMetricFamily("swiper_mysql_lag_tolerant_reads", "Lag-tolerant reads by where they ran",
                                    labels=["target"])
        for target, count in self.replicas.reads.items():
            reads.add_metric([target], count)
        yield from (up, lag, reads)


_replica_metrics: _ReplicaMetrics | None = None


def watch_replicas(replicas: ReplicaSet) -> None:
    global _replica_metrics
    if _replica_metrics is not None:
        REGISTRY.unregister(_replica_metrics)
    _replica_metrics = _ReplicaMetrics(replicas)
    REGISTRY.register(_replica_metrics)


def watch_local_caches(caches: LocalCaches) -> None:
    """Export the process's local caches: an operator sees at once when they are off (every read goes to Redis)."""
    LOCAL_CACHES_LIVE.set_function(lambda: float(caches.live.is_set()))
    for name, cache in caches.caches.items():
        LOCAL_CACHE_ENTRIES.labels(name).set_function(cache.__len__)


class _SocketCounters:
    """Counters the event hub keeps as plain numbers (services know no Prometheus), exported at scrape time."""

    def __init__(self, hub: SocketHub, events: EventPublisher) -> None:
        self.hub, self.events = hub, events

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        yield CounterMetricFamily("swiper_events_delivered", "Event frames written to this process's sockets",
                                  value=self.hub.delivered_total())
        yield CounterMetricFamily("swiper_events_published", "Events this process appended to users' streams",
                                  value=self.events.published)
        yield CounterMetricFamily("swiper_socket_drops", "Sockets closed for falling behind (they resume with after)",
                                  value=self.hub.dropped)


def watch_sockets(hub: SocketHub, events: EventPublisher) -> None:
    """Open sockets, the event subscription, delivered frames and drops, per process."""
    SOCKETS_OPEN.set_function(lambda: float(hub.sockets))
    EVENTS_LIVE.set_function(lambda: float(hub.live.is_set()))
    RESYNCS_OWED.set_function(lambda: float(len(events.owed_resync)))
    global _socket_counters
    if _socket_counters is not None:
        REGISTRY.unregister(_socket_counters)
    _socket_counters = _SocketCounters(hub, events)
    REGISTRY.register(_socket_counters)


_socket_counters: _SocketCounters | None = None


def name_routes(routes: list[tuple[str, type[web.RequestHandler]]]) -> None:
    """Label each handler class with its route template, so ids in paths never become label values."""
    from handlers.openapi import openapi_path
    for pattern, handler in routes:
        _route_names[handler] = openapi_path(pattern, handler)


def observe(handler: web.RequestHandler) -> None:
    route = _route_names.get(type(handler), "unmatched")
    method = handler.request.method or "-"
    REQUESTS.labels(route, method, str(handler.get_status())).inc()
    LATENCY.labels(route, method).observe(handler.request.request_time())


_rendered: tuple[float, bytes] = (0.0, b"")
RENDER_TTL = 1.0  # scrapes come every 15 s or so
# Rendering every series is pure-Python CPU that grows with routes × methods × statuses: 50 ms once the fuzzer
# had touched them all. In one worker thread it never holds the loop for long (the GIL is handed back every few
# milliseconds); prometheus_client's metrics are thread-safe.
_renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")


async def render() -> bytes:
    """The exposition text, rendered at most once a second however often it is asked for."""
    global _rendered
    now = time.monotonic()
    if now - _rendered[0] >= RENDER_TTL:
        text = await asyncio.get_running_loop().run_in_executor(_renderer, generate_latest)
        _rendered = (time.monotonic(), text)
    return _rendered[1]


class MetricsHandler(BaseHandler):
    auth_required = False
    rate_limited = False

    @operation("getMetrics", tag="service", summary="Prometheus metrics (not exposed through nginx)", content="text",
               dependencies=False)
    async def get(self) -> None:
        """Prometheus text format; nginx does not expose it publicly."""
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(await render())


routes = [(r"/metrics", MetricsHandler)]
