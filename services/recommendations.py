"""The recommendation feed.

Who: users of my ``dating_gender`` (either, if I have not chosen), in my city — my preferred one only with
``anylocation`` — aged within my dating ages, with a gender and birthday, never me, never anyone I swiped,
never anyone blocked either way or banned (``safety.visibility``: probes by primary key, in the walk and the page).
Order: first those who superliked me and whom I have not swiped (newest superlike first), then the most recently
active.

Finding the most recently active people I have not swiped means stepping over everyone I swiped who is more recently
active (5,000 swipes: about 7 ms of MariaDB). So that walk runs rarely: it walks the ``user_feed`` index (location,
gender, last_active_at, birthday) newest first, reading ids only, and keeps the next ``CANDIDATES`` ids in Redis
for ``CANDIDATES_TTL`` seconds, shared by every process. Each page then reads the candidates' rows by primary key
in one statement that applies the whole filter again, my swipes included (one unique-key probe per candidate), so
a page is exact about who may appear even when the list is older than my latest swipes or their latest edits.
What the list can miss for up to ``CANDIDATES_TTL`` seconds: people who became active, or matching, since the walk.
The walk runs again when the list is used up, when it expires, and when my filter changes.

With a search origin (my position, or my passport: ``services.location``) the feed is by distance instead of by
city: people with a position whose ``distance_km`` from my origin lies in my ``min_distance..max_distance``,
walked by ``services.location.nearby`` (nearest rings first, then the most recently active); the list, the pages
and their re-check work the same way, the re-check comparing each candidate's current cell with the range.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import peewee
from peewee import fn
from redis.asyncio import Redis

from conf import Settings
from models import Swipe, User
from models.replicas import reader
from services import keys, vip
from services.accounts import Account
from services.location import nearby
from services.location.cells import distance_km
from services.location.positions import search_origin
from services.profiles import GENDERS, today
from services.safety import visibility

CANDIDATES = 100
CANDIDATES_TTL = 30
CHUNK = 20  # candidates checked per statement: rows cost more to decode than a round trip
PAGE_COLUMNS = ("id", "nickname", "gender", "birthday", "avatar_key", "location", "geo_cell", "photo_count")
_GEO_CELL = PAGE_COLUMNS.index("geo_cell")
# The page: candidates by primary key, the filter applied again, my swipes left out by a probe of swipe_pair.
_PAGE_SQL = """
SELECT u.id, u.nickname, u.gender, u.birthday, u.avatar_key, u.location, u.geo_cell, u.photo_count FROM user AS u
LEFT JOIN swipe AS s ON s.user_id = %s AND s.target_id = u.id
WHERE u.id IN ({ids}) AND s.user_id IS NULL AND u.id != %s AND {place} AND u.gender IN ({genders})
  AND u.birthday BETWEEN %s AND %s AND {visible}
"""
_IN_CITY = "u.location = %s"
_POSITIONED = "u.geo_cell IS NOT NULL"  # the distance itself is compared in Python, with distance_km


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


@dataclass(frozen=True)
class FeedFilter:
    me: int
    city: str
    genders: tuple[str, ...]
    oldest_birthday: dt.date
    youngest_birthday: dt.date
    origin: int | None = None  # a search origin: by distance from it, whatever the city
    min_km: int = 0
    max_km: int = 0

    def fingerprint(self) -> str:
        place = f"@{self.origin}:{self.min_km}-{self.max_km}" if self.origin is not None else self.city
        return f"{place}|{','.join(self.genders)}|{self.oldest_birthday}|{self.youngest_birthday}"

    def in_range(self, cell: int | None) -> bool:
        """Whether someone in ``cell`` may be shown: by their bucket from my origin (the city feed: anyone)."""
        if self.origin is None:
            return True
        km = distance_km(self.origin, cell)
        return km is not None and self.min_km <= km <= self.max_km

    def where(self) -> peewee.Expression:
        """The filter as a WHERE clause, for the walk."""
        swiped = Swipe.select(peewee.SQL("1")).where((Swipe.user_id == self.me) & (Swipe.target_id == User.id))
        return ((User.location == self.city) & User.gender.in_(list(self.genders))
                & User.birthday.between(self.oldest_birthday, self.youngest_birthday)
                & (User.id != self.me) & ~fn.EXISTS(swiped) & visibility.visible_expr(self.me, User.id))


async def feed_filter(account: Account, settings: Settings) -> FeedFilter | None:
    """Whom my feed may show, or None when I have neither a search origin nor a city to search in."""
    me, prefs = account.user, account.prefs
    origin = await search_origin(me)
    city = me.location or ""
    if origin is None and prefs.location and await vip.has_permission(me, "anylocation"):
        city = prefs.location
    if origin is None and not city:
        return None
    day = today(settings)
    return FeedFilter(me=me.id, city="" if origin is not None else city,
                      genders=(prefs.dating_gender,) if prefs.dating_gender else tuple(GENDERS),
                      oldest_birthday=_years_before(day, prefs.max_dating_age + 1) + dt.timedelta(days=1),
                      youngest_birthday=_years_before(day, prefs.min_dating_age),
                      origin=origin, min_km=prefs.min_distance, max_km=prefs.max_distance)


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


async def _eligible_rows(feed: FeedFilter, ids: list[int]) -> dict[int, tuple]:
    """Those of ``ids`` the feed may show now, as rows of ``PAGE_COLUMNS``."""
    if not ids:
        return {}
    place, city = (_IN_CITY, (feed.city,)) if feed.origin is None else (_POSITIONED, ())
    sql = _PAGE_SQL.format(ids=",".join(["%s"] * len(ids)), place=place,
                           genders=",".join(["%s"] * len(feed.genders)), visible=visibility.visible_sql("u.id"))
    params = (feed.me, *ids, feed.me, *city, *feed.genders, feed.oldest_birthday, feed.youngest_birthday,
              *visibility.params(feed.me))
    rows = await reader().aio_execute_sql(sql, params, fetch_results=_fetchall)
    return {row[0]: row for row in rows if feed.in_range(row[_GEO_CELL])}


async def _walk(feed: FeedFilter, exclude: list[int]) -> tuple[list[int], bool]:
    """The next candidates in feed order, and whether that is everyone. Ids only, so the walk stays in an index."""
    if feed.origin is not None:
        return await nearby.walk(origin=feed.origin, min_km=feed.min_km, max_km=feed.max_km, me=feed.me,
                                 genders=feed.genders, oldest=feed.oldest_birthday,
                                 youngest=feed.youngest_birthday, exclude=exclude, limit=CANDIDATES)
    where = feed.where() & User.id.not_in(exclude) if exclude else feed.where()
    query = User.select(User.id).where(where).order_by(User.last_active_at.desc()).limit(CANDIDATES)
    walked = [row.id for row in await query.aio_execute(reader())]
    return walked, len(walked) < CANDIDATES


def _stored(raw: str | None, feed: FeedFilter) -> tuple[list[int], bool] | None:
    """The candidate list kept in Redis (and whether the walk reached the end), if it was made for this filter."""
    if not raw:
        return None
    fingerprint, _, rest = raw.partition("\n")
    complete, _, ids = rest.partition("\n")
    if fingerprint != feed.fingerprint():
        return None
    return [int(i) for i in ids.split(",") if i], complete == "1"


async def _first_eligible(feed: FeedFilter, candidates: list[int], wanted: int) -> tuple[list[tuple], list[int]]:
    """The first ``wanted`` eligible rows in list order, checking ``CHUNK`` candidates per statement; also the
    candidates found ineligible on the way (swiped since the walk, or no longer matching)."""
    page: list[tuple] = []
    dropped: list[int] = []
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start:start + CHUNK]
        rows = await _eligible_rows(feed, chunk)
        for user_id in chunk:
            if user_id not in rows:
                dropped.append(user_id)
            elif len(page) < wanted:
                page.append(rows[user_id])
        if len(page) >= wanted:
            break
    return page, dropped


def _candidates_value(feed: FeedFilter, ids: list[int], complete: bool) -> str:
    return f"{feed.fingerprint()}\n{int(complete)}\n{','.join(map(str, ids))}"


async def recommend(*, redis: Redis, settings: Settings, account: Account, limit: int) -> list[User]:
    feed = await feed_filter(account, settings)
    if feed is None:
        return []
    key = keys.feed_candidates(feed.me)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrevrange(keys.superlikers(feed.me), 0, limit - 1)
        pipe.get(key)
        superliker_raw, stored_raw = await pipe.execute()
    superliker_ids = [int(m) for m in superliker_raw]
    rows = await _eligible_rows(feed, superliker_ids)
    page = [rows[user_id] for user_id in superliker_ids if user_id in rows]
    shown = {row[0] for row in page}
    stored = _stored(stored_raw, feed)
    if len(page) < limit and stored is not None:
        ids, complete = stored
        fresh, dropped = await _first_eligible(feed, [i for i in ids if i not in shown], limit - len(page))
        if dropped:  # so the next page does not check them again
            gone = set(dropped)
            await redis.set(key, _candidates_value(feed, [i for i in ids if i not in gone], complete), keepttl=True)
        if len(page) + len(fresh) >= limit or complete:  # enough, or nobody else to find
            return _users(page + fresh)
    if len(page) < limit:
        walked, complete = await _walk(feed, list(shown))
        await redis.set(key, _candidates_value(feed, walked, complete), ex=CANDIDATES_TTL)
        rows = await _eligible_rows(feed, walked[:limit - len(page)])
        page += [rows[user_id] for user_id in walked[:limit - len(page)] if user_id in rows]
    return _users(page)


def _users(rows: list[tuple]) -> list[User]:
    return [User(**dict(zip(PAGE_COLUMNS, row))) for row in rows]
