"""server.py's drain deadline, with a real process: SIGTERM with a request stuck on a dependency and an idle
keep-alive connection open. Every connection must be closed at SWIPER_DRAIN_TIMEOUT and the process gone soon
after, whatever the stuck request is waiting for: a stopping process must never hold a connection that nginx
may be waiting on past its deadline (issue 10, item 8).
"""
from __future__ import annotations

import asyncio
import signal
import time

from tests.conftest import server_env
from tests.ops.load import Connection, Request
from tests.support.processes import ServerProcess
from tests.support.proxy import TcpProxy

DRAIN_TIMEOUT = 1.0
STUCK_FOR = 8.0  # SWIPER_REDIS_TIMEOUT: how long the stuck request's Redis call waits before it gives up


async def _eof_after(reader: asyncio.StreamReader, started: float, limit: float) -> float:
    """Seconds from ``started`` until the server closed the connection (read returns b"" or fails)."""
    try:
        while await asyncio.wait_for(reader.read(65536), limit):
            pass
    except (OSError, asyncio.IncompleteReadError):
        pass
    return time.monotonic() - started


async def test_the_drain_deadline_closes_every_connection_even_with_a_request_stuck(settings, schema, user):
    redis_proxy = TcpProxy("127.0.0.1", 6379)
    await redis_proxy.start()
    redis_db = settings.redis_url.rsplit("/", 1)[1]
    server = ServerProcess(server_env(settings, redis_url=f"redis://127.0.0.1:{redis_proxy.port}/{redis_db}",
                                      redis_timeout=str(STUCK_FOR), drain_timeout=str(DRAIN_TIMEOUT),
                                      local_cache_ttl="0"))  # every authentication asks Redis
    await server.start()
    try:
        auth = {"Authorization": f"Bearer {user.access_token}"}
        idle = Connection("127.0.0.1", server.port)  # an idle keep-alive connection, as nginx keeps them
        status, _, _, _ = await idle.send(Request("profile", "GET", "/api/v1/profile", dict(auth)))
        assert status == 200
        stuck_reader, stuck_writer = await asyncio.open_connection("127.0.0.1", server.port)
        redis_proxy.freeze()  # Redis stops answering: the next authentication waits up to STUCK_FOR
        stuck_writer.write(f"GET /api/v1/profile HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}"
                           "\r\n\r\n".encode())
        await stuck_writer.drain()
        await asyncio.sleep(0.3)  # it is in prepare(), waiting on Redis
        sigterm = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        idle_closed, stuck_closed = await asyncio.gather(
            _eof_after(idle.reader, sigterm, STUCK_FOR + 5), _eof_after(stuck_reader, sigterm, STUCK_FOR + 5))
        code = await asyncio.to_thread(server.proc.wait, STUCK_FOR + 10)
        exited = time.monotonic() - sigterm
        idle.close()
        stuck_writer.transport.abort()
        # Before the fix the stuck request held the drain (Tornado's close_all_connections waits for each
        # connection's handler in turn) until its Redis call timed out: exit after ~STUCK_FOR.
        assert idle_closed < DRAIN_TIMEOUT + 1.0, (idle_closed, server.output()[-2000:])
        assert stuck_closed < DRAIN_TIMEOUT + 1.0, (stuck_closed, server.output()[-2000:])
        assert exited < DRAIN_TIMEOUT + 2.0, (exited, server.output()[-2000:])
        assert code == 0
        assert "drain timeout: closing 2 connections, 1 requests still in flight" in server.output()
    finally:
        redis_proxy.thaw()
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        await redis_proxy.cut()
