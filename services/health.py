"""Readiness: can this process reach MySQL and Redis right now? Each probe is bounded by a short timeout."""
from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from models import db

PROBE_TIMEOUT = 2.0


async def _probe_mysql() -> None:
    await db.aio_execute_sql("SELECT 1")


async def check_dependencies(*, redis: Redis) -> dict[str, str]:
    """Return ``{"mysql": "ok"|"down", "redis": "ok"|"down"}``."""
    async def probe(check) -> str:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await check()
            return "ok"
        except Exception:
            return "down"
    mysql, cache = await asyncio.gather(probe(_probe_mysql), probe(redis.ping))
    return {"mysql": mysql, "redis": cache}
