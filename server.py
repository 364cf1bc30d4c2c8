"""Swiper's server process: ``python server.py --port N``.

One pure-coroutine Tornado process on the asyncio loop. It builds the settings, the MySQL pool, the Redis
client, the SMS client and the avatar storage once, and on SIGTERM/SIGINT stops accepting, lets in-flight requests finish (up to
``SWIPER_DRAIN_TIMEOUT``), closes idle keep-alive connections and the pools, and exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import socket
import sys
import time
import warnings
from collections.abc import Sequence

from redis.asyncio import Redis
from tornado import web
from tornado.ioloop import PeriodicCallback
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets

from conf import Settings, load_settings_or_exit
from handlers import auth, avatar, location, metrics, profile, service, social, vip
from handlers.base import InFlight, NotFoundHandler, access_log
from models import db, init_db
from services import jobs, keys, ratelimit
from services.local_cache import LocalCaches
from services.redis_client import build_redis
from services.sms import SmsSender, build_sms_sender
from services.storage import Storage, build_storage

log = logging.getLogger("swiper.server")
ROUTES = [*auth.routes, *profile.routes, *avatar.routes, *vip.routes, *social.routes, *location.routes,
          *service.routes, *metrics.routes]
metrics.name_routes(ROUTES)
MAX_UPLOAD_BODY = 8 * 1024 * 1024
GC_YOUNG_THRESHOLD = 20_000


def log_request(handler: web.RequestHandler) -> None:
    """Tornado calls this once per finished request: the access line and the metrics."""
    access_log(handler)
    metrics.observe(handler)


def make_app(settings: Settings, *, redis: Redis, sms: SmsSender, in_flight: InFlight | None = None,
             storage: Storage | None = None) -> web.Application:
    """The application; its local caches stay off until ``start_local_caches`` (they need a running loop)."""
    media = avatar.media_routes(settings)   # local storage: Tornado serves the files when run without nginx
    metrics.name_routes([(pattern, handler) for pattern, handler, _ in media])
    return web.Application(
        [*ROUTES, *media], default_handler_class=NotFoundHandler, log_function=log_request,
        compress_response=False, api_routes=ROUTES, swiper_settings=settings, redis=redis, sms=sms, in_flight=in_flight or InFlight(),
        storage=storage or build_storage(settings),
        rate_fallback=ratelimit.LocalWindows(), local_caches=LocalCaches(ttl=settings.local_cache_ttl),
    )


def start_local_caches(app: web.Application) -> LocalCaches:
    caches: LocalCaches = app.settings["local_caches"]
    caches.start(app.settings["redis"])
    metrics.watch_local_caches(caches)
    return caches


def configure_logging(settings: Settings) -> None:
    """Access lines to stdout, everything else (errors with tracebacks) to stderr."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    access = logging.StreamHandler(sys.stdout)
    access.setFormatter(fmt)
    access_logger = logging.getLogger("swiper.access")
    access_logger.addHandler(access)
    access_logger.propagate = False
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(fmt)
    root = logging.getLogger()
    root.addHandler(errors)
    root.setLevel(settings.log_level)
    # INSERT IGNORE and friends report duplicates as MySQL warnings; they are expected, not news.
    warnings.filterwarnings("ignore", module="aiomysql")


async def serve(settings: Settings, port: int) -> None:
    if settings.slow_callback_ms > 0:  # for finding blocking calls: every slow loop step is logged
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = settings.slow_callback_ms / 1000
    keys.configure(settings.redis_prefix)
    init_db(settings)
    redis = build_redis(settings)
    sms = build_sms_sender(settings)
    storage = build_storage(settings)
    in_flight = InFlight()
    app = make_app(settings, redis=redis, sms=sms, in_flight=in_flight, storage=storage)
    server = HTTPServer(app, max_body_size=MAX_UPLOAD_BODY, idle_connection_timeout=75)
    sockets = bind_sockets(port, settings.host, reuse_port=True)
    server.add_sockets(sockets)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    periodic = start_periodic_jobs(settings, redis)
    local_caches = start_local_caches(app)
    settle_memory()
    log.info("listening on %s:%d (env=%s, sms=%s)", settings.host, port, settings.env, settings.sms_backend)
    await stopping.wait()
    periodic.stop()
    await drain(server, in_flight, settings.drain_timeout, sockets)
    await local_caches.stop()
    await sms.aclose()
    await storage.aclose()
    await redis.aclose()
    if db.is_connected:
        await db.aio_close()
    log.info("stopped")


def settle_memory() -> None:
    """Move what start-up built (modules, routes, the models) out of the collector's sight, and collect the young
    generation less often: a request makes thousands of short-lived objects, and at the default threshold of 700
    the collector ran many times per request burst (tail latency), finding little."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def start_periodic_jobs(settings: Settings, redis: Redis) -> PeriodicCallback:
    """Every process ticks; ``jobs.run_exclusively`` lets exactly one of them run each period's job."""
    async def tick() -> None:
        try:
            await jobs.run_exclusively(redis=redis, name="expire_memberships", period=settings.job_period,
                                       job=lambda: jobs.expire_memberships(redis=redis))
        except Exception:
            log.exception("periodic job failed (it runs again next period)")

    callback = PeriodicCallback(tick, settings.job_period * 1000, jitter=0.1)
    callback.start()
    return callback


async def drain(server: HTTPServer, in_flight: InFlight, timeout: float,
                sockets: Sequence[socket.socket] = ()) -> None:
    """Stop accepting, finish in-flight requests, let the clients close their keep-alive connections, then close
    whatever is still open at the deadline.

    Whatever this side closes while nginx may be sending on it costs a request: nginx never replays a POST it has
    sent, so the client gets a 502. The ops harness (tests/ops, OPERATIONS.md) saw two ways of that:
    - an idle keep-alive connection closed here as nginx sent on it ("upstream prematurely closed connection"):
      so this side does not close them; every answer while draining says ``Connection: close`` (nginx drops
      that connection after reading it), and nginx closes its idle ones itself after its upstream
      ``keepalive_timeout`` (3 s in nginx.conf, well below the drain timeout);
    - a connection the kernel had already accepted into the listening socket's queue, reset when the listening
      socket closed ("Connection reset by peer"): so what is queued is accepted and served before it closes.
    """
    in_flight.draining = True
    for sock in sockets:
        _accept_queued(server, sock)
    server.stop()  # synchronously after the last accept: nothing can queue in between
    deadline = time.monotonic() + timeout
    connections = getattr(server, "_connections", ())  # HTTPServer's open connections; it has no public count
    while (in_flight.count > 0 or connections) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if in_flight.count:
        log.warning("drain timeout: %d requests still in flight", in_flight.count)
    elif connections:
        log.info("drain timeout: closing %d idle keep-alive connections", len(connections))
    await server.close_all_connections()


def _accept_queued(server: HTTPServer, sock: socket.socket) -> None:
    """Hand every connection waiting in ``sock``'s accept queue to ``server``, as its own accept handler does."""
    while True:
        try:
            connection, address = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        stream = IOStream(connection, max_buffer_size=server.max_buffer_size, read_chunk_size=server.read_chunk_size)
        server.handle_stream(stream, address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one Swiper server process.")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings_or_exit("swiper")
    configure_logging(settings)
    # libuv under the same asyncio API: Tornado and every await are unchanged. Hunting slow steps needs asyncio's
    # own debug mode, so SWIPER_SLOW_CALLBACK_MS runs the standard loop.
    if settings.event_loop == "uvloop" and settings.slow_callback_ms <= 0:
        import uvloop
        uvloop.run(serve(settings, args.port))
    else:
        asyncio.run(serve(settings, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
