"""Periodic jobs: one run per period across processes, and what the membership job tidies."""
from __future__ import annotations

import asyncio
import datetime as dt
import secrets

from models import User
from models.base import utcnow
from services import jobs
from services.accounts import load_account
from tests.support.dates import on_one_hour


@on_one_hour  # "the same period" is one hour (3600 s periods): an hour turning mid-test makes a new one
async def test_each_period_runs_in_exactly_one_process(redis, schema):
    runs = []
    probe, another = f"probe-{secrets.token_hex(4)}", f"another-{secrets.token_hex(4)}"  # fresh on a second run

    async def job():
        runs.append(1)
        await asyncio.sleep(0.01)

    claimed = await asyncio.gather(*[jobs.run_exclusively(redis=redis, name=probe, period=3600, job=job)
                                     for _ in range(10)])
    assert claimed.count(True) == 1 and len(runs) == 1
    assert not await jobs.run_exclusively(redis=redis, name=probe, period=3600, job=job)  # same period, later
    assert await jobs.run_exclusively(redis=redis, name=another, period=3600, job=job)


async def test_expired_memberships_are_tidied(redis, settings, make_person):
    lapsed, current = await make_person(level=3), await make_person(level=2)
    await User.update(vip_expires_at=utcnow() - dt.timedelta(minutes=1)).where(User.id == lapsed.id).aio_execute()
    cached = await load_account(redis=redis, settings=settings, user_id=lapsed.id)
    assert cached.user.vip_level == 3  # the cache still holds the old row...
    assert await jobs.expire_memberships(redis=redis) >= 1
    fresh = await load_account(redis=redis, settings=settings, user_id=lapsed.id)
    assert (fresh.user.vip_level, fresh.user.vip_expires_at) == (0, None)  # ...which the job dropped
    assert (await User.aio_get(User.id == current.id)).vip_level == 2


async def test_expired_revocations_are_forgotten_and_live_ones_kept(schema):
    from models import SessionRevocation
    from services import tokens
    now = utcnow()
    old, live = secrets.token_hex(12), secrets.token_hex(12)
    await SessionRevocation.insert_many([
        {"family": old, "user_id": 1, "expires_at": now - dt.timedelta(seconds=1)},
        {"family": live, "user_id": 1, "expires_at": now + dt.timedelta(minutes=5)}]).aio_execute()
    assert not await tokens.revoked_in_mysql(old) and await tokens.revoked_in_mysql(live)
    while await tokens.forget_expired_revocations(batch=1000):
        pass
    remaining = {r.family for r in await SessionRevocation.select().where(
        SessionRevocation.family.in_([old, live])).aio_execute()}
    assert remaining == {live}
    await SessionRevocation.delete().where(SessionRevocation.family == live).aio_execute()
