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
from handlers import auth, avatar, chat, location, metrics, payments, photos, profile, safety, service, social, vip
from handlers.base import InFlight, NotFoundHandler, access_log
from handlers.openapi import build_spec
from models import db, init_db
from models.replicas import replicas
from services import jobs, keys, loop_watch, ratelimit, tokens
from services.chat.events import EventPublisher
from services.chat.sockets import SocketHub
from services.local_cache import LocalCaches
from services.payments import PaymentChannels, build_channels
from services.payments.reconcile import reconcile_orders
from services.redis_client import build_redis
from services.sms import SmsSender, build_sms_sender
from services.storage import Storage, StorageCleanup, build_storage

log = logging.getLogger("swiper.server")
ROUTES = [*auth.routes, *profile.routes, *avatar.routes, *photos.routes, *vip.routes, *social.routes,
          *location.routes, *chat.routes, *safety.routes, *payments.routes, *service.routes, *metrics.routes]
metrics.name_routes(ROUTES)
MAX_UPLOAD_BODY = 8 * 1024 * 1024
GC_YOUNG_THRESHOLD = 20_000
# Seconds a stopping process may take, after the drain, to close its clients (caches, SMS, storage, Redis,
# MySQL); SWIPER_DRAIN_TIMEOUT + this must stay below supervisor.conf's stopwaitsecs (30).
SHUTDOWN_TIMEOUT = 5.0


def log_request(handler: web.RequestHandler) -> None:
    """Tornado calls this once per finished request: the access line and the metrics."""
    access_log(handler)
    metrics.observe(handler)


def make_app(settings: Settings, *, redis: Redis, sms: SmsSender, in_flight: InFlight | None = None,
             storage: Storage | None = None, payment_channels: PaymentChannels | None = None) -> web.Application:
    """The application; its subscriptions (local caches, the event hub) start with ``start_listeners``."""
    media = avatar.media_routes(settings)   # local storage: Tornado serves the files when run without nginx
    metrics.name_routes([(pattern, handler) for pattern, handler, _ in media])
    events = EventPublisher(redis)
    build_spec(ROUTES)  # ~100 ms of CPU for pydantic's schemas: at start-up, not in the first request's loop step
    storage = storage or build_storage(settings)
    return web.Application(
        [*ROUTES, *media], default_handler_class=NotFoundHandler, log_function=log_request,
        compress_response=False, api_routes=ROUTES, swiper_settings=settings, redis=redis, sms=sms,
        in_flight=in_flight or InFlight(), storage=storage, storage_cleanup=StorageCleanup(storage),
        rate_fallback=ratelimit.LocalWindows(), local_caches=LocalCaches(ttl=settings.local_cache_ttl),
        events=events, hub=SocketHub(redis=redis, publisher=events),
        websocket_ping_interval=settings.ws_ping_interval, websocket_ping_timeout=settings.ws_ping_interval,
        websocket_max_message_size=chat.MAX_CLIENT_FRAME,
        payment_channels=payment_channels if payment_channels is not None else build_channels(settings),
    )


def start_listeners(app: web.Application) -> tuple[LocalCaches, SocketHub]:
    """The process's pub/sub listeners: local-cache invalidations and the event hub (they need a running loop)."""
    caches: LocalCaches = app.settings["local_caches"]
    caches.start(app.settings["redis"])
    metrics.watch_local_caches(caches)
    hub: SocketHub = app.settings["hub"]
    caches.on_announcement.append(hub.account_changed)  # a ban or a deletion closes the user's sockets here
    hub.start()
    metrics.watch_sockets(hub, app.settings["events"])
    return caches, hub


def start_replica_checks() -> asyncio.Task | None:
    """With read replicas configured: this process checks their lag every second (models.replicas)."""
    metrics.watch_replicas(replicas)
    if not replicas.replicas:
        return None
    return asyncio.get_running_loop().create_task(replicas.run(), name="replica-checks")


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
        loop.set_debug(True)  # richer step descriptions (where each task was created)
        loop.slow_callback_duration = 3600  # asyncio's own wall-time log is replaced by loop_watch's
        loop_watch.log_slow_steps(settings.slow_callback_ms)
    keys.configure(settings.redis_prefix)
    init_db(settings)
    replicas.configure(settings)
    redis = build_redis(settings)
    sms = build_sms_sender(settings)
    storage = build_storage(settings)
    channels = build_channels(settings)
    in_flight = InFlight()
    app = make_app(settings, redis=redis, sms=sms, in_flight=in_flight, storage=storage, payment_channels=channels)
    server = HTTPServer(app, max_body_size=MAX_UPLOAD_BODY, idle_connection_timeout=75)
    # No SO_REUSEPORT: a restarted process binds only after the old one has exited (supervisor stops, then
    # starts), so sharing the port is never needed, and with it a process would silently share its port with
    # any other listener already there (a stale or frozen server.py): the kernel then spreads nginx's new
    # connections over both, and those queued at a listener nobody accepts from wait for nginx's
    # proxy_read_timeout. Without it, such a bind fails (EADDRINUSE) and restart.sh stops with a report.
    sockets = bind_sockets(port, settings.host)
    server.add_sockets(sockets)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    periodic = start_periodic_jobs(settings, redis, channels, app.settings["storage_cleanup"])
    local_caches, hub = start_listeners(app)
    replica_checks = start_replica_checks()
    settle_memory()
    log.info("listening on %s:%d (env=%s, sms=%s)", settings.host, port, settings.env, settings.sms_backend)
    await stopping.wait()
    periodic.stop()
    if replica_checks is not None:
        replica_checks.cancel()
    await drain(server, in_flight, settings.drain_timeout, sockets, hub=hub)
    try:
        # Bounded, so the process exits well within supervisor's stopwaitsecs: closing the MySQL pool waits for
        # every connection a request still holds (a handler whose HTTP connection the drain deadline closed).
        async with asyncio.timeout(SHUTDOWN_TIMEOUT):
            await hub.stop()
            await local_caches.stop()
            await sms.aclose()
            await app.settings["storage_cleanup"].aclose()
            await storage.aclose()
            await channels.aclose()
            await redis.aclose()
            await replicas.close()
            if db.is_connected:
                await db.aio_close()
    except TimeoutError:
        log.warning("shutdown: clients not closed within %.0f s (a request still holds one); exiting anyway",
                    SHUTDOWN_TIMEOUT)
    log.info("stopped")
    # From here the process only exits: a second stop signal (supervisor's, a test's) must not kill it by default
    # action while the interpreter tears down (it would exit -15 instead of 0). asyncio leaves alone handlers it
    # no longer owns.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


def settle_memory() -> None:
    """Move what start-up built (modules, routes, the models) out of the collector's sight, and collect the young
    generation less often: a request makes thousands of short-lived objects, and at the default threshold of 700
    the collector ran many times per request burst (tail latency), finding little."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def start_periodic_jobs(settings: Settings, redis: Redis, channels: PaymentChannels | None = None,
                        cleanup: StorageCleanup | None = None) -> PeriodicCallback:
    """Every process ticks; ``jobs.run_exclusively`` lets exactly one of them run each period's job."""
    periodic = {
        "expire_memberships": lambda: jobs.expire_memberships(redis=redis),
        "forget_expired_revocations": tokens.forget_expired_revocations,
    }
    if cleanup is not None:  # stored objects nothing points at any more, whose deletion failed at first
        periodic["purge_storage"] = cleanup.purge
    if channels is not None and channels.names():
        periodic["reconcile_orders"] = lambda: reconcile_orders(redis=redis, settings=settings, channels=channels)

    async def tick() -> None:
        for name, job in periodic.items():
            try:
                await jobs.run_exclusively(redis=redis, name=name, period=settings.job_period, job=job)
            except Exception:
                log.exception("periodic job %s failed (it runs again next period)", name)

    callback = PeriodicCallback(tick, settings.job_period * 1000, jitter=0.1)
    callback.start()
    return callback


async def drain(server: HTTPServer, in_flight: InFlight, timeout: float,
                sockets: Sequence[socket.socket] = (), hub: SocketHub | None = None) -> None:
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
    One that completes on another core between the last ``accept`` and the ``close`` is still reset (nginx then
    passes a GET on; a POST/PATCH it had sent gets a 502): the kernel answers it, it never hangs.
    Event sockets (which HTTPServer does not close) are closed first with 1012, "service restart": their clients
    reconnect through nginx to another process and resume with ``after``.
    """
    started = time.monotonic()
    deadline = started + timeout
    in_flight.draining = True
    connections = getattr(server, "_connections", ())  # HTTPServer's open connections; it has no public count
    queued = sum(_accept_queued(server, sock) for sock in sockets)
    server.stop()  # right after the last accept, so the window for a connection to be reset is microseconds
    log.info("draining: listener closed, %d connections open (%d taken from the accept queue), "
             "%d requests in flight", len(connections), queued, in_flight.count)
    if hub is not None and hub.close_all(1012, "service restart"):
        while hub.sockets and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    while (in_flight.count > 0 or connections) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if connections:
        # The deadline closes every connection at once. Tornado's close_all_connections() closes them one at a
        # time, each after its request loop has ended, and a loop waits for a handler still in prepare(): one
        # request stuck on a slow dependency would keep every later connection open (and served) past it.
        log.warning("drain timeout: closing %d connections, %d requests still in flight", len(connections),
                    in_flight.count)
        for conn in list(connections):
            conn.stream.close()
    log.info("drained in %.1f s", time.monotonic() - started)


def _accept_queued(server: HTTPServer, sock: socket.socket) -> int:
    """Hand every connection waiting in ``sock``'s accept queue to ``server``, as its own accept handler does;
    returns how many."""
    accepted = 0
    while True:
        try:
            connection, address = sock.accept()
        except (BlockingIOError, InterruptedError):
            return accepted
        except ConnectionAbortedError:
            continue  # that client gave up while queued; the ones behind it still wait (Tornado does the same)
        except OSError:
            log.exception("drain: cannot accept the queued connections (they are reset when the listener closes)")
            return accepted
        stream = IOStream(connection, max_buffer_size=server.max_buffer_size, read_chunk_size=server.read_chunk_size)
        server.handle_stream(stream, address)
        accepted += 1


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
