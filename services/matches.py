"""Matches: the list (latest activity first — the match or its newest message —, cursor pages, each with its
conversation's state) and unmatching (for both sides; the swipes stay)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from conf import Settings
from models.replicas import reader
from services.accounts import load_users
from services.chat import messages as chat
from services.chat.events import EventPublisher
from services.cursors import decode_cursor, encode_cursor
from services.errors import NotFoundError, NotMatchedError
from services.profiles import public_views
from services.safety import visibility

# Each side of the pair has its own index ((user_a, last_activity_at, id) and (user_b, ...)): two bounded scans.
_SIDE = """(SELECT id, {other} AS other, created_at, last_activity_at, last_seq, {mine}_read_seq AS my_read,
    {theirs}_read_seq AS their_read FROM `match` WHERE {me} = %(me)s AND {visible} {after}
   ORDER BY last_activity_at DESC, id DESC LIMIT %(n)s)"""
_PAGE = f"""
SELECT id, other, created_at, last_activity_at, last_seq, my_read, their_read FROM (
  {_SIDE.format(other="user_b", mine="a", theirs="b", me="user_a", after="{after}",
                visible=visibility.visible_sql("user_b").replace("%s", "%(me)s"))}
  UNION ALL
  {_SIDE.format(other="user_a", mine="b", theirs="a", me="user_b", after="{after}",
                visible=visibility.visible_sql("user_a").replace("%s", "%(me)s"))}
) AS mine ORDER BY last_activity_at DESC, id DESC LIMIT %(n)s
"""
_AFTER = "AND (last_activity_at < %(at)s OR (last_activity_at = %(at)s AND id < %(id)s))"


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.timezone.utc)


async def list_matches(*, settings: Settings, user_id: int, limit: int, cursor: str | None,
                       origin: int | None = None) -> tuple[list[dict], str | None]:
    """``origin``: my search origin, for each item's ``distance_km``."""
    params: dict[str, Any] = {"me": user_id, "n": limit + 1}
    if cursor:
        position = decode_cursor(settings, cursor)
        params.update(at=dt.datetime.fromisoformat(position["at"]).replace(tzinfo=None), id=int(position["id"]))
    rows = await reader().aio_execute_sql(_PAGE.format(after=_AFTER if cursor else ""), params, fetch_results=_fetchall)
    page, more = rows[:limit], len(rows) > limit
    users = await load_users([row[1] for row in page])
    newest = await chat.last_messages([(row[0], row[4]) for row in page])
    present = [row for row in page if row[1] in users]
    views = await public_views(settings, user_id, [users[row[1]] for row in present], origin)
    items = [{**view, "matched_at": _utc(created_at), "last_message": newest.get(match_id),
              "unread_count": max(0, last_seq - my_read), "read_seq": their_read}
             for (match_id, other, created_at, _active, last_seq, my_read, their_read), view in zip(present, views)]
    next_cursor = (encode_cursor(settings, {"at": page[-1][3].isoformat(), "id": page[-1][0]}) if more else None)
    return items, next_cursor


async def unmatch(*, events: EventPublisher, user_id: int, other_id: int) -> None:
    """Both sides lose the match and its conversation, and are told (an ``unmatched`` event)."""
    try:
        await chat.close_conversation(events=events, user_id=user_id, other_id=other_id)
    except NotMatchedError:
        raise NotFoundError("You are not matched with this user.") from None
