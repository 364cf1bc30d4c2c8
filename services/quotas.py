"""Daily quotas (likes, rewinds) as Redis counters per user and day in ``SWIPER_TIMEZONE``.

Taking is one Lua script (increment, and give back at once if over the limit), so concurrent requests can never
take more than the limit between them.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from redis.asyncio import Redis

from conf import Settings
from services import keys
from services.errors import QuotaExceededError

_TAKE = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], 172800) end
if used > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]); return -1 end
return used
"""
_GIVE_BACK = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Day:
    """A quota day: its key part and the moment it ends (the next midnight, with the zone's offset)."""
    key: str
    resets_at: dt.datetime


def quota_day(settings: Settings, moment: dt.datetime | None = None) -> Day:
    zone = zoneinfo.ZoneInfo(settings.timezone)
    local = (moment or dt.datetime.now(dt.timezone.utc)).astimezone(zone)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return Day(key=local.strftime("%Y%m%d"), resets_at=midnight)


async def take(*, redis: Redis, name: str, user_id: int, day: Day, limit: int) -> int:
    """Use one unit; returns how many are used now, or raises 1007 when the day's quota is gone."""
    used = await redis.eval(_TAKE, 1, keys.quota(name, user_id, day.key), limit)
    if used < 0:
        raise QuotaExceededError(name, limit=limit, resets_at=day.resets_at)
    return int(used)


async def give_back(*, redis: Redis, name: str, user_id: int, day: Day) -> None:
    await redis.eval(_GIVE_BACK, 1, keys.quota(name, user_id, day.key))


async def used(*, redis: Redis, name: str, user_id: int, day: Day) -> int:
    return int(await redis.get(keys.quota(name, user_id, day.key)) or 0)
