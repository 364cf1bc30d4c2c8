"""Who liked me: people who liked or superliked me and whom I have not swiped yet."""
from __future__ import annotations

import datetime as dt

import peewee
from peewee import fn

from conf import Settings
from models import Swipe
from models.replicas import reader
from models.social import ACTION_NAMES
from services.accounts import load_users
from services.cursors import decode_cursor, encode_cursor
from services.profiles import public_views
from services.safety import visibility


def _pending_likes(user_id: int) -> peewee.ModelSelect:
    mine = Swipe.alias("mine")
    answered = mine.select(peewee.SQL("1")).where((mine.user_id == user_id) & (mine.target_id == Swipe.user_id))
    return Swipe.select().where((Swipe.target_id == user_id) & (Swipe.action > 0) & ~fn.EXISTS(answered)
                                & visibility.visible_expr(user_id, Swipe.user_id))


async def count_likes_received(*, user_id: int) -> int:
    return await _pending_likes(user_id).aio_count()


async def list_likes_received(*, settings: Settings, user_id: int, limit: int, cursor: str | None,
                              origin: int | None = None) -> tuple[list[dict], str | None]:
    """``origin``: my search origin, for each item's ``distance_km``."""
    query = _pending_likes(user_id)
    if cursor:
        position = decode_cursor(settings, cursor)
        at, last_id = dt.datetime.fromisoformat(position["at"]).replace(tzinfo=None), int(position["id"])
        query = query.where((Swipe.created_at < at) | ((Swipe.created_at == at) & (Swipe.id < last_id)))
    rows = list(await query.order_by(Swipe.created_at.desc(), Swipe.id.desc()).limit(limit + 1).aio_execute(reader()))
    page, more = rows[:limit], len(rows) > limit
    users = await load_users([row.user_id for row in page])
    present = [row for row in page if row.user_id in users]
    views = await public_views(settings, user_id, [users[row.user_id] for row in present], origin)
    items = [{**view, "action": ACTION_NAMES[row.action], "swiped_at": row.created_at.replace(tzinfo=dt.timezone.utc)}
             for row, view in zip(present, views)]
    next_cursor = (encode_cursor(settings, {"at": page[-1].created_at.isoformat(), "id": page[-1].id})
                   if more else None)
    return items, next_cursor
