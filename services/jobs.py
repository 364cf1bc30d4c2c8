"""Periodic work inside the server processes, each run executed by exactly one of them.

Every process ticks; the first to claim the period's key in Redis (SET NX, with a token and a TTL of two periods)
runs the job, the others skip it. No task queue is involved.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from models import User
from models.base import utcnow
from services import keys, model_cache

log = logging.getLogger("swiper.jobs")
EXPIRE_BATCH = 500


async def run_exclusively(*, redis: Redis, name: str, period: int, job: Callable[[], Awaitable[object]]) -> bool:
    """Run ``job`` if this process is the first to claim the current period; True when it ran here."""
    token = secrets.token_hex(8)
    claimed = await redis.set(keys.job_run(name, int(time.time() // period)), token, nx=True, ex=2 * period)
    if not claimed:
        return False
    await job()
    return True


async def expire_memberships(*, redis: Redis) -> int:
    """Turn memberships past their end into level 0 rows (reads already treat them so) and drop their caches."""
    expired_total = 0
    while True:
        ids = [row.id for row in await (User.select(User.id)
                                        .where((User.vip_level > 0) & (User.vip_expires_at < utcnow()))
                                        .limit(EXPIRE_BATCH).aio_execute())]
        if not ids:
            return expired_total
        await (User.update(vip_level=0, vip_expires_at=None, updated_at=utcnow())
               .where(User.id.in_(ids) & (User.vip_expires_at < utcnow())).aio_execute())
        for user_id in ids:
            await model_cache.invalidate(redis=redis, name="User", pk=user_id)
        expired_total += len(ids)
        log.info("expired %d memberships", len(ids))
