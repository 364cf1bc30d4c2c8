"""Bans, by the operators (``scripts/manage.py ban USER --reason TEXT`` / ``unban USER``).

A ban, in one transaction with the user's row locked: the account's ``session_gen`` goes up (every token issued
before is dead: ``accounts.check_session`` compares it on every request, refresh and socket, in every process,
because the account cache is dropped everywhere at once), ``banned_at``/``ban_reason`` make every later request
and login 1013, the ``ban`` row hides them from everyone (``safety.visibility``), every match of theirs ends (the
other sides get ``unmatched``), and ``ban_event`` records who did it, when and why. They leave the hot ranking.
An unban lifts all that except the generation: tokens from before stay dead, the user logs in again; their hot
score is rebuilt from the swipes they received.
"""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from models import Ban, BanEvent, User, db
from models.base import utcnow
from models.db import with_retries
from services import keys
from services.accounts import changing_account
from services.chat import messages as chat
from services.chat.events import EventPublisher
from services.errors import InvalidParamsError, NotFoundError
from services.phones import normalize_phone

_HOT_SCORE = ("SELECT COALESCE(SUM(CASE action WHEN 1 THEN 5 WHEN 2 THEN 7 ELSE -5 END), 0) "
              "FROM swipe WHERE target_id = %s")


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


async def find_user(ref: str) -> User:
    """USER as operators write it: an id, or a phone in any form clients may send."""
    ref = ref.strip()
    if ref.isdigit() and len(ref) < 11:
        user = await User.aio_get_or_none(User.id == int(ref))
    else:
        try:
            phone = normalize_phone(ref)
        except ValueError:
            raise InvalidParamsError(f"USER {ref!r}: neither a user id nor a phone number.") from None
        user = await User.aio_get_or_none(User.phone == phone)
    if user is None:
        raise NotFoundError(f"No user {ref}.")
    return user


async def ban_user(*, redis: Redis, events: EventPublisher, ref: str, reason: str, operator: str) -> User:
    """Ban (again: a new reason, recorded too); returns the user as banned."""
    reason = reason.strip()
    if not reason:
        raise InvalidParamsError("A ban needs a reason.")
    if len(reason) > 500:
        raise InvalidParamsError("The reason must be at most 500 characters.")
    user = await find_user(ref)
    ended: list[int] = []

    async def transaction() -> None:
        ended.clear()
        async with db.aio_atomic():
            await User.select(User.id).where(User.id == user.id).for_update().aio_execute()
            now = utcnow()
            await User.update(session_gen=User.session_gen + 1, banned_at=now, ban_reason=reason,
                              updated_at=now).where(User.id == user.id).aio_execute()
            await (Ban.insert(user_id=user.id, reason=reason, banned_at=now)
                   .on_conflict(update={Ban.reason: reason}).aio_execute())
            await BanEvent.insert(user_id=user.id, action="ban", reason=reason, operator=operator,
                                  created_at=now).aio_execute()
            ended.extend(await chat.drop_all_conversations(user.id))

    async with changing_account(redis=redis, user_id=user.id):
        await with_retries(transaction)
    await redis.zrem(keys.hot_ranking(), str(user.id))
    for other in ended:
        await chat.announce_unmatched(events=events, a=user.id, b=other)
    return await User.aio_get(User.id == user.id)


async def unban_user(*, redis: Redis, ref: str, operator: str) -> User:
    """Lift a ban (not banned → 1005); the user's earlier tokens stay dead."""
    user = await find_user(ref)

    async def transaction() -> bool:
        async with db.aio_atomic():
            lifted = await Ban.delete().where(Ban.user_id == user.id).aio_execute()
            if not lifted:
                return False
            await User.update(banned_at=None, ban_reason=None, updated_at=utcnow()).where(
                User.id == user.id).aio_execute()
            await BanEvent.insert(user_id=user.id, action="unban", operator=operator,
                                  created_at=utcnow()).aio_execute()
            return True

    async with changing_account(redis=redis, user_id=user.id):
        if not await with_retries(transaction):
            raise NotFoundError(f"User {user.id} is not banned.")
    score = (await db.aio_execute_sql(_HOT_SCORE, (user.id,), fetch_results=_fetchall))[0][0]
    if score:
        await redis.zadd(keys.hot_ranking(), {str(user.id): int(score)})
    return await User.aio_get(User.id == user.id)


async def ban_history(user_id: int) -> list[BanEvent]:
    return list(await BanEvent.select().where(BanEvent.user_id == user_id).order_by(BanEvent.id).aio_execute())
