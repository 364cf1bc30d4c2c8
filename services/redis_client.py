"""The one way to get Redis: a bounded, blocking pool with short timeouts so a dead server fails fast."""
from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

from conf import Settings


def build_redis(settings: Settings) -> Redis:
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool_size,
        timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout,
        health_check_interval=30,
        decode_responses=True,
    )
    return Redis(connection_pool=pool)
