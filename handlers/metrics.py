"""Prometheus metrics: request counts and latencies by route template and status (never by raw path)."""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from tornado import web

from handlers.base import BaseHandler
from handlers.contract import operation
from services.local_cache import LocalCaches

REQUESTS = Counter("swiper_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram("swiper_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LOCAL_CACHES_LIVE = Gauge("swiper_local_caches_live", "1 while the local caches' invalidation subscription is confirmed")
LOCAL_CACHE_ENTRIES = Gauge("swiper_local_cache_entries", "Entries in a local cache", ["cache"])
_route_names: dict[type, str] = {}


def watch_local_caches(caches: LocalCaches) -> None:
    """Export the process's local caches: an operator sees at once when they are off (every read goes to Redis)."""
    LOCAL_CACHES_LIVE.set_function(lambda: float(caches.live.is_set()))
    for name, cache in caches.caches.items():
        LOCAL_CACHE_ENTRIES.labels(name).set_function(cache.__len__)


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
RENDER_TTL = 1.0  # scrapes come every 15 s or so; rendering all series costs milliseconds of loop time


def render() -> bytes:
    """The exposition text, rendered at most once a second however often it is asked for."""
    global _rendered
    now = time.monotonic()
    if now - _rendered[0] >= RENDER_TTL:
        _rendered = (now, generate_latest())
    return _rendered[1]


class MetricsHandler(BaseHandler):
    auth_required = False
    rate_limited = False

    @operation("getMetrics", tag="service", summary="Prometheus metrics (not exposed through nginx)", content="text",
               dependencies=False)
    async def get(self) -> None:
        """Prometheus text format; nginx does not expose it publicly."""
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(render())


routes = [(r"/metrics", MetricsHandler)]
