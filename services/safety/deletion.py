"""Deleting an account (``DELETE /api/v1/profile``): the person's data goes from MySQL, Redis and storage.

MySQL, in one transaction with the user's row locked: every match ends (the others get ``unmatched``), its
messages with it; swipes, blocks, report cases either way (their filings and copied messages cascade), bans,
photos, preferences, revocations and the user row go; orders stay for the bookkeeping law with the user id
replaced by 0 (the amounts, plans and provider's transaction numbers are the books, nothing names the person);
the stored objects (avatar, photos) are queued in ``storage_deletion`` and deleted after the answer
(``storage.StorageCleanup``; the periodic jobs retry). Every token is dead at once in every process: the account
cache is dropped everywhere (``changing_account``) and the row is gone, so authentication answers 1001. The
phone is free to register again, as a new user.

Redis: every key of the user (caches, quotas, queues, rate windows, the event stream, the feed list) and their
entries in others' structures (the hot ranking, the superlike queues of the people they superliked). The SMS send
windows of the phone (``sms:cooldown/hour/day``, at most a day) stay: they limit what the phone may be sent, not
who the person was.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from redis.asyncio import Redis

from conf import Settings
from models import User, db
from models.db import with_retries
from services import keys, quotas
from services.accounts import changing_account
from services.chat import messages as chat
from services.chat.events import EventPublisher
from services.errors import NotAuthenticatedError
from services.storage import StorageCleanup, schedule_deletions

# (statement, how many times the user id goes in)
_DELETES: list[tuple[str, int]] = [
    ("DELETE FROM swipe WHERE user_id = %s", 1),
    ("DELETE FROM swipe WHERE target_id = %s", 1),
    ("DELETE FROM swipe_pair WHERE low_id = %s", 1),
    ("DELETE FROM swipe_pair WHERE high_id = %s", 1),
    ("DELETE FROM block WHERE user_id = %s", 1),
    ("DELETE FROM block WHERE target_id = %s", 1),
    ("DELETE FROM report_case WHERE reporter_id = %s", 1),
    ("DELETE FROM report_case WHERE reported_id = %s", 1),
    ("DELETE FROM ban WHERE user_id = %s", 1),
    ("DELETE FROM ban_event WHERE user_id = %s", 1),
    ("DELETE FROM photo WHERE user_id = %s", 1),
    ("DELETE FROM session_revocation WHERE user_id = %s", 1),
    ("UPDATE vip_order SET user_id = 0 WHERE user_id = %s", 1),
    ("DELETE FROM preferences WHERE user_id = %s", 1),
    ("DELETE FROM user WHERE id = %s", 1),
]
QUOTAS = ("likes", "rewinds")
USER_RATE_SCOPES = ("user", "message")


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


async def delete_account(*, redis: Redis, settings: Settings, events: EventPublisher, cleanup: StorageCleanup,
                         user_id: int) -> None:
    """Delete everything of the user's; the storage objects go after the answer (``cleanup``)."""
    ended: list[int] = []
    superliked: list[int] = []
    objects: list[str] = []
    phone: list[str] = []

    async def transaction() -> None:
        ended.clear(), superliked.clear(), objects.clear()
        async with db.aio_atomic():
            user = await User.select().where(User.id == user_id).for_update().aio_first()
            if user is None:
                raise NotAuthenticatedError("The account no longer exists.")
            phone[:] = [user.phone]
            if user.avatar_key:
                objects.append(user.avatar_key)
            objects.extend(row[0] for row in await db.aio_execute_sql(
                "SELECT `key` FROM photo WHERE user_id = %s", (user_id,), fetch_results=_fetchall))
            superliked.extend(row[0] for row in await db.aio_execute_sql(
                "SELECT target_id FROM swipe WHERE user_id = %s AND action = 2", (user_id,), fetch_results=_fetchall))
            ended.extend(await chat.drop_all_conversations(user_id))
            for statement, times in _DELETES:
                await db.aio_execute_sql(statement, (user_id,) * times)
            await schedule_deletions(objects)

    async with changing_account(redis=redis, user_id=user_id):
        await with_retries(transaction)
    await _forget_in_redis(redis, settings, user_id, superliked, phone[0])
    if ended:  # to the others only: the deleted user's stream is gone and stays gone
        await events.publish_many([(other, {"type": "unmatched", "user_id": user_id}) for other in ended])
    if objects:
        cleanup.soon(objects)


async def _forget_in_redis(redis: Redis, settings: Settings, user_id: int, superliked: list[int],
                           phone: str) -> None:
    """One key per command (each in its own user's slot), sent in one round trip."""
    now = dt.datetime.now(dt.timezone.utc)
    days = {quotas.quota_day(settings, now + dt.timedelta(days=offset)).key for offset in (-2, -1, 0, 1)}
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.hot_ranking(), str(user_id))
        for target in superliked:
            pipe.zrem(keys.superlikers(target), str(user_id))
        for key in (keys.model_cache("User", user_id), keys.model_cache_version("User", user_id),
                    keys.superlikers(user_id), keys.active(user_id), keys.feed_candidates(user_id),
                    keys.location_cells(user_id), keys.event_stream(user_id), keys.sms_code(phone),
                    *(keys.rate_limit(scope, str(user_id)) for scope in USER_RATE_SCOPES),
                    *(keys.quota(name, user_id, day) for name in QUOTAS for day in days)):
            pipe.delete(key)
        await pipe.execute()
