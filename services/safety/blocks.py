"""Blocks: one row per direction. Blocking ends a match in the same transaction (its conversation closes and both
sides get an ``unmatched`` event); unblocking only removes my row (we stay unmatched)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from redis.asyncio import Redis

from conf import Settings
from models import User, db
from models.base import utcnow
from models.db import with_retries
from services.chat import messages as chat
from services.chat.events import EventPublisher
from services.cursors import decode_cursor, encode_cursor
from services.errors import ConflictError, NotFoundError
from services import keys
from services.accounts import load_users
from services.profiles import public_views
from services.safety import visibility

_INSERT = "INSERT IGNORE INTO block (user_id, target_id, created_at) VALUES (%s, %s, %s)"


async def block_in_transaction(me: int, target_id: int) -> bool:
    """Inside the caller's transaction: record the block and end any match; True when a match ended."""
    await db.aio_execute_sql(_INSERT, (me, target_id, utcnow()))
    return await chat.drop_conversation(me, target_id)


async def _check_target(me: int, target_id: int) -> None:
    if target_id == me:
        raise ConflictError("You cannot block yourself.")
    if not await User.select(User.id).where(User.id == target_id).aio_exists():
        raise NotFoundError("No such user.")


async def forget_feeds(redis: Redis, *user_ids: int) -> None:
    """Drop these users' feed candidate lists, so a change of who may see whom shows on the next page (one key
    per command: each belongs to its own user's slot)."""
    for user_id in user_ids:
        await redis.delete(keys.feed_candidates(user_id))


async def block_user(*, redis: Redis, events: EventPublisher, me: int, target_id: int) -> None:
    """Idempotent: blocking again changes nothing."""
    await _check_target(me, target_id)

    async def transaction() -> bool:
        async with db.aio_atomic():
            return await block_in_transaction(me, target_id)

    ended = await with_retries(transaction)
    await forget_feeds(redis, me, target_id)
    if ended:
        await chat.announce_unmatched(events=events, a=me, b=target_id)


async def unblock_user(*, redis: Redis, me: int, target_id: int) -> None:
    """My block goes (theirs, if any, stays). Idempotent like the block: a user I have not blocked (or no longer)
    answers the same, so a retried DELETE is no error; only an id that is nobody's is 1005."""
    deleted = await db.aio_execute_sql("DELETE FROM block WHERE user_id = %s AND target_id = %s",
                                       (me, target_id), fetch_results=_rowcount)
    if not deleted:
        if not await User.select(User.id).where(User.id == target_id).aio_exists():
            raise NotFoundError("No such user.")
        return
    await forget_feeds(redis, me, target_id)


async def _rowcount(_db: Any, cursor: Any) -> int:
    return cursor.rowcount


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


_PAGE = ("SELECT b.target_id, b.created_at FROM block AS b JOIN user AS u ON u.id = b.target_id "
         "WHERE b.user_id = %s AND NOT EXISTS (SELECT 1 FROM ban WHERE ban.user_id = b.target_id) {after} "
         "ORDER BY b.created_at DESC, b.target_id DESC LIMIT %s")
_AFTER = "AND (b.created_at < %s OR (b.created_at = %s AND b.target_id < %s))"


async def list_blocks(*, settings: Settings, me: int, limit: int, cursor: str | None,
                      origin: int | None) -> tuple[list[dict[str, Any]], str | None]:
    """My blocks, newest first (``{"user": <PublicUser>, "blocked_at"}``), and the next cursor."""
    params: list[Any] = [me]
    after = ""
    if cursor:
        position = decode_cursor(settings, cursor)
        at = dt.datetime.fromisoformat(position["at"]).replace(tzinfo=None)
        params += [at, at, int(position["id"])]
        after = _AFTER
    rows = await db.aio_execute_sql(_PAGE.format(after=after), (*params, limit + 1), fetch_results=_fetchall)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(settings, {"at": page[-1][1].isoformat(), "id": page[-1][0]}) if more else None
    users = await load_users([row[0] for row in page])
    present = [row for row in page if row[0] in users]
    views = await public_views(settings, me, [users[row[0]] for row in present], origin)
    return [{"user": view, "blocked_at": row[1].replace(tzinfo=dt.timezone.utc)}
            for row, view in zip(present, views)], next_cursor


__all__ = ["block_user", "unblock_user", "list_blocks", "block_in_transaction", "visibility"]
