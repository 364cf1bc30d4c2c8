"""My position and my passport: stored only as cells, moved within an hourly budget of distinct cells.

The budget (``SWIPER_LOCATION_CELLS_PER_HOUR``, default 12) counts every cell my position or my passport enters
within a sliding hour, the first one included; sending the cell I am already in costs nothing. It is what stops
someone walking an account across a target's cell edge to find where the number steps (Bumble, 2021). The
window holds keyed hashes of the cells, so Redis keeps no trail of where I have been. Changes are made under a
lock on my ``user`` row, so two concurrent moves are counted and stored one after the other.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from redis.asyncio import Redis

from conf import Settings
from models import User, db
from models.base import utcnow
from services import keys, ratelimit, vip
from services.accounts import forget_account
from services.location.cells import coarse, snap

BUDGET_WINDOW = 3600
_CURRENT = "SELECT geo_cell, passport_cell FROM user WHERE id = %s FOR UPDATE"


async def _first_row(_db: object, cursor: object) -> tuple | None:
    return await cursor.fetchone()  # type: ignore[attr-defined]


def _budget_member(settings: Settings, cell: int) -> str:
    return hashlib.blake2b(str(cell).encode(), key=settings.jwt_secret.encode()[:64], digest_size=12,
                           person=b"swiper-cells").hexdigest()


async def _enter(*, redis: Redis, settings: Settings, user_id: int, cell: int, current: int | None) -> None:
    if cell == current:
        return
    await ratelimit.admit_distinct(redis=redis, key=keys.location_cells(user_id), member=_budget_member(settings, cell),
                                   limit=settings.location_cells_per_hour, window=BUDGET_WINDOW,
                                   scope="location_cells")


async def set_position(*, redis: Redis, settings: Settings, user_id: int, lat: float, lng: float) -> dt.datetime:
    """Snap and store my position; returns when. 1006 once this hour's budget of new cells is spent."""
    cell = snap(lat, lng)
    now = utcnow()
    try:
        async with db.aio_atomic():
            row = await db.aio_execute_sql(_CURRENT, (user_id,), fetch_results=_first_row)
            await _enter(redis=redis, settings=settings, user_id=user_id, cell=cell, current=row[0] if row else None)
            await (User.update(geo_cell=cell, geo_coarse=coarse(cell), geo_updated_at=now)
                   .where(User.id == user_id).aio_execute())
    finally:
        await forget_account(redis=redis, user_id=user_id)
    return now.replace(tzinfo=dt.timezone.utc)


async def forget_position(*, redis: Redis, user_id: int) -> None:
    """Forget my position: my feed goes back to my city, and nobody sees a distance to me."""
    await User.update(geo_cell=None, geo_coarse=None, geo_updated_at=None).where(User.id == user_id).aio_execute()
    await forget_account(redis=redis, user_id=user_id)


async def set_passport(*, redis: Redis, settings: Settings, user_id: int, lat: float, lng: float) -> None:
    """Move my search origin (the caller checked ``anylocation``); it spends the same budget as my position."""
    cell = snap(lat, lng)
    try:
        async with db.aio_atomic():
            row = await db.aio_execute_sql(_CURRENT, (user_id,), fetch_results=_first_row)
            await _enter(redis=redis, settings=settings, user_id=user_id, cell=cell, current=row[1] if row else None)
            await User.update(passport_cell=cell).where(User.id == user_id).aio_execute()
    finally:
        await forget_account(redis=redis, user_id=user_id)


async def end_passport(*, redis: Redis, user_id: int) -> None:
    await User.update(passport_cell=None).where(User.id == user_id).aio_execute()
    await forget_account(redis=redis, user_id=user_id)


async def search_origin(user: User) -> int | None:
    """Where my feed and the distances I see are measured from: my passport while I have ``anylocation``, else my
    own position, else nowhere (the city feed)."""
    if user.passport_cell is not None and await vip.has_permission(user, "anylocation"):
        return user.passport_cell
    return user.geo_cell

