"""Readiness: can this process reach MySQL and Redis right now? Each probe is bounded by a short timeout."""
from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from models import db
from models.replicas import replicas

PROBE_TIMEOUT = 2.0


async def _probe_mysql() -> None:
    await db.aio_execute_sql("SELECT 1")


async def _probe_redis(redis: Redis) -> None:
    """A pooled connection that died with an outage fails once and is dropped; the answer is the second try's."""
    try:
        await redis.ping()
    except RedisConnectionError:
        await redis.ping()


def replica_states() -> dict[str, dict[str, str]]:
    """``{"replicas": {"host:port": "ok"|"lagging"|"down"}}`` when replicas are configured, else nothing."""
    return {"replicas": replicas.states()} if replicas.replicas else {}


async def check_dependencies(*, redis: Redis) -> dict[str, str]:
    """Return ``{"mysql": "ok"|"down", "redis": "ok"|"down"}``."""
    async def probe(check) -> str:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await check()
            return "ok"
        except Exception:
            return "down"
    mysql, cache = await asyncio.gather(probe(_probe_mysql), probe(lambda: _probe_redis(redis)))
    return {"mysql": mysql, "redis": cache}
