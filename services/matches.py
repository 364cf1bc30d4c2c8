"""Matches: listing (newest first, cursor pages) and unmatching (for both sides; the swipes stay)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from conf import Settings
from models import Match, db
from services.accounts import load_users
from services.cursors import decode_cursor, encode_cursor
from services.errors import NotFoundError
from services.profiles import public_view
from services.swipes import pair

# Each side of the pair has its own index ((user_a, created_at) and (user_b, created_at)): two bounded range scans.
_PAGE = """
SELECT id, other, created_at FROM (
  (SELECT id, user_b AS other, created_at FROM `match` WHERE user_a = %(me)s {after}
   ORDER BY created_at DESC, id DESC LIMIT %(n)s)
  UNION ALL
  (SELECT id, user_a AS other, created_at FROM `match` WHERE user_b = %(me)s {after}
   ORDER BY created_at DESC, id DESC LIMIT %(n)s)
) AS mine ORDER BY created_at DESC, id DESC LIMIT %(n)s
"""
_AFTER = "AND (created_at < %(at)s OR (created_at = %(at)s AND id < %(id)s))"


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


async def list_matches(*, settings: Settings, user_id: int, limit: int, cursor: str | None,
                       origin: int | None = None) -> tuple[list[dict], str | None]:
    """``origin``: my search origin, for each item's ``distance_km``."""
    params: dict[str, Any] = {"me": user_id, "n": limit + 1}
    if cursor:
        position = decode_cursor(settings, cursor)
        params.update(at=dt.datetime.fromisoformat(position["at"]).replace(tzinfo=None), id=int(position["id"]))
    rows = await db.aio_execute_sql(_PAGE.format(after=_AFTER if cursor else ""), params, fetch_results=_fetchall)
    page, more = rows[:limit], len(rows) > limit
    users = await load_users([other for _, other, _ in page])
    items = [{**public_view(users[other], settings, origin), "matched_at": at.replace(tzinfo=dt.timezone.utc)}
             for _, other, at in page if other in users]
    next_cursor = encode_cursor(settings, {"at": page[-1][2].isoformat(), "id": page[-1][0]}) if more else None
    return items, next_cursor


async def unmatch(*, user_id: int, other_id: int) -> None:
    low, high = pair(user_id, other_id)
    deleted = await Match.delete().where((Match.user_a == low) & (Match.user_b == high)).aio_execute()
    if not deleted:
        raise NotFoundError("You are not matched with this user.")
