"""The recommendation feed.

Who: users of my ``dating_gender`` (either, if I have not chosen), in my city — my preferred one only with
``anylocation`` — aged within my dating ages, with a gender and birthday, never me, never anyone I swiped.
Order: first those who superliked me and whom I have not swiped (newest superlike first), then the most recently
active. The main query walks the ``user_feed`` index (location, gender, last_active_at, birthday) newest first,
reading ids only, and stops at ``limit`` rows that pass the age filter and the anti-join on my swipes, so its cost
is bounded by the page plus the swiped users it steps over, never by the number of users; the page's rows are
then read by primary key.
"""
from __future__ import annotations

import datetime as dt

import peewee
from peewee import fn
from redis.asyncio import Redis

from conf import Settings
from models import Swipe, User
from services import keys, vip
from services.accounts import Account
from services.profiles import GENDERS, today

FEED_FIELDS = (User.id, User.nickname, User.gender, User.birthday, User.avatar_key, User.location)


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


async def feed_filter(account: Account, settings: Settings) -> peewee.Expression | None:
    """The WHERE clause of my feed, or None when I have no city to search in."""
    me, prefs = account.user, account.prefs
    city = me.location
    if prefs.location and await vip.has_permission(me, "anylocation"):
        city = prefs.location
    if not city:
        return None
    day = today(settings)
    oldest_birthday = _years_before(day, prefs.max_dating_age + 1) + dt.timedelta(days=1)
    youngest_birthday = _years_before(day, prefs.min_dating_age)
    genders = [prefs.dating_gender] if prefs.dating_gender else list(GENDERS)
    swiped = Swipe.select(peewee.SQL("1")).where((Swipe.user_id == me.id) & (Swipe.target_id == User.id))
    return ((User.location == city) & User.gender.in_(genders)
            & User.birthday.between(oldest_birthday, youngest_birthday)
            & (User.id != me.id) & ~fn.EXISTS(swiped))


async def recommend(*, redis: Redis, settings: Settings, account: Account, limit: int) -> list[User]:
    where = await feed_filter(account, settings)
    if where is None:
        return []
    superliker_ids = [int(m) for m in await redis.zrevrange(keys.superlikers(account.user.id), 0, limit - 1)]
    first: list[User] = []
    if superliker_ids:
        rows = await User.select(*FEED_FIELDS).where(where & User.id.in_(superliker_ids)).aio_execute()
        by_id = {row.id: row for row in rows}
        first = [by_id[user_id] for user_id in superliker_ids if user_id in by_id]
    if len(first) >= limit:
        return first
    rest_where = where & User.id.not_in([u.id for u in first]) if first else where
    # Two steps: the walk selects only ids, so it stays inside the user_feed index (InnoDB keeps the primary key
    # in it) and every swiped user it steps over costs no row read; then the page's rows by primary key.
    ids = [row.id for row in await (User.select(User.id).where(rest_where).order_by(User.last_active_at.desc())
                                    .limit(limit - len(first)).aio_execute())]
    rows = {row.id: row for row in await User.select(*FEED_FIELDS).where(User.id.in_(ids)).aio_execute()} if ids else {}
    return first + [rows[user_id] for user_id in ids if user_id in rows]
