"""The one way to get Redis: a bounded, blocking pool with short timeouts so a dead server fails fast."""
from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

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


def pool_exhausted(exc: BaseException) -> bool:
    """redis-py's BlockingConnectionPool gives up waiting for a free connection with this error: this process is
    overloaded, Redis may be fine, so such a request is shed (503), never served by a fallback."""
    return isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, TimeoutError)


def unreachable(exc: BaseException) -> bool:
    """Redis itself cannot be reached or did not answer in time (a fallback may serve the request)."""
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError)) and not pool_exhausted(exc)
