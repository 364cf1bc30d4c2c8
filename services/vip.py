"""VIP levels, memberships and permissions. An expired membership is level 0, whatever the row says."""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from decimal import Decimal

from redis.asyncio import Redis

from models import Permission, User, VipLevel, VipPermission, db
from models.base import utcnow
from services import model_cache
from services.errors import InvalidParamsError, NotFoundError, PermissionDeniedError

_CATALOG_TTL = 60.0


@dataclass(frozen=True)
class LevelInfo:
    level: int
    name: str
    price: Decimal
    permissions: tuple[str, ...]

    def view(self) -> dict:
        return {"level": self.level, "name": self.name, "price": float(self.price),
                "permissions": list(self.permissions)}


_catalog: tuple[float, dict[int, LevelInfo]] | None = None


async def load_catalog() -> dict[int, LevelInfo]:
    """The levels rarely change (only ``migrate`` writes them), so each process keeps them for a minute."""
    global _catalog
    if _catalog is not None and time.monotonic() - _catalog[0] < _CATALOG_TTL:
        return _catalog[1]
    grants: dict[int, list[str]] = {}
    query = (VipPermission.select(VipPermission.level, Permission.name).join(Permission)
             .order_by(Permission.id).tuples())
    for level, name in await query.aio_execute():
        grants.setdefault(level, []).append(name)
    levels = {row.level: LevelInfo(row.level, row.name, row.price, tuple(grants.get(row.level, ())))
              for row in await VipLevel.select().order_by(VipLevel.level).aio_execute()}
    _catalog = (time.monotonic(), levels)
    return levels


def forget_catalog() -> None:
    global _catalog
    _catalog = None


def effective_level(user: User, now: dt.datetime | None = None) -> int:
    if user.vip_level and (user.vip_expires_at is None or user.vip_expires_at > (now or utcnow())):
        return int(user.vip_level)
    return 0


async def membership_view(user: User) -> dict:
    catalog = await load_catalog()
    level = effective_level(user)
    info = catalog.get(level) or LevelInfo(level, f"VIP {level}", Decimal(0), ())
    return {"level": level, "name": info.name,
            "expires_at": user.vip_expires_at if level else None, "permissions": list(info.permissions)}


async def has_permission(user: User, permission: str) -> bool:
    catalog = await load_catalog()
    info = catalog.get(effective_level(user))
    return info is not None and permission in info.permissions


async def require_permission(user: User, permission: str) -> None:
    if not await has_permission(user, permission):
        raise PermissionDeniedError(permission)


async def grant_membership(*, redis: Redis, phone: str, level: int, until: dt.datetime | None) -> User:
    """Set a user's level until a time (naive UTC); level 0 ends a membership. Used by ``manage.py grant-vip``."""
    catalog = await load_catalog()
    if level not in catalog:
        raise InvalidParamsError.for_fields({"level": f"must be one of {sorted(catalog)}"})
    user_id = await User.select(User.id).where(User.phone == phone).aio_scalar()
    if user_id is None:
        raise NotFoundError(f"No user with phone {phone}.")
    async with model_cache.writing(redis=redis, name="User", pk=user_id), db.aio_atomic():
        user = await User.select().where(User.id == user_id).for_update().aio_first()
        user.vip_level = level
        user.vip_expires_at = until if level else None
        user.updated_at = utcnow()
        await user.aio_save(only=[User.vip_level, User.vip_expires_at, User.updated_at])
    return user
