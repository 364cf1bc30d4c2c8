"""Membership arithmetic, as pure functions of the current membership, the purchase and the time.

- A month is a calendar month in ``SWIPER_TIMEZONE``: the same day of the next month, clamped to its last day
  (Jan 31 + 1 month = Feb 28/29), at the same wall-clock time.
- The same level extends from the current expiry; with no active membership it starts now.
- A higher level starts now and adds the unused time of the lower one converted at old 1-month price ÷ new
  1-month price, rounded down to whole days.
- A lower level paid while a higher one is active (the order was made before an upgrade; the money came, so it
  counts) adds its months converted the same way into the higher level.
- A refund takes back the time the order added (``granted_seconds`` at ``granted_level``), from the current
  expiry; if the user has moved to a higher level since, converted at the same ratio; if the membership has
  lapsed or is of a lower level, that time was used up and nothing is taken. A membership whose expiry falls to
  now or earlier ends at once.
"""
from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

DAY = 86400


@dataclass(frozen=True)
class Membership:
    level: int  # effective: 0 when none or lapsed
    expires_at: dt.datetime | None  # naive UTC; None with a level > 0 is a membership without end (grant-vip)


@dataclass(frozen=True)
class Grant:
    level: int
    expires_at: dt.datetime | None
    granted_level: int
    granted_seconds: int


def add_months(moment: dt.datetime, months: int, tz: dt.tzinfo) -> dt.datetime:
    """``moment`` (naive UTC) plus calendar months in ``tz``, clamped to the month's last day; naive UTC."""
    local = moment.replace(tzinfo=dt.timezone.utc).astimezone(tz)
    carry, month_index = divmod(local.month - 1 + months, 12)
    year, month = local.year + carry, month_index + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    moved = local.replace(tzinfo=None).replace(year=year, month=month, day=day).replace(tzinfo=tz)
    return moved.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _seconds(delta: dt.timedelta) -> int:
    return max(0, int(delta.total_seconds()))


def converted_days(seconds: int, from_price: int, to_price: int) -> int:
    """Whole days of the ``to`` level worth ``seconds`` of the ``from`` level, rounded down."""
    return seconds * from_price // (to_price * DAY)


def extend(current: Membership, *, level: int, months: int, now: dt.datetime, tz: dt.tzinfo,
           prices: dict[int, int]) -> Grant:
    """The membership after paying for ``months`` of ``level``."""
    if current.level == 0:
        ends = add_months(now, months, tz)
        return Grant(level, ends, level, _seconds(ends - now))
    if current.expires_at is None:  # no end: more time changes nothing
        return Grant(max(level, current.level), None, max(level, current.level), 0)
    if current.level == level:
        ends = add_months(current.expires_at, months, tz)
        return Grant(level, ends, level, _seconds(ends - current.expires_at))
    if level > current.level:
        bought_until = add_months(now, months, tz)
        carried = converted_days(_seconds(current.expires_at - now), prices[current.level], prices[level])
        return Grant(level, bought_until + dt.timedelta(days=carried), level, _seconds(bought_until - now))
    bought = _seconds(add_months(now, months, tz) - now)
    added = converted_days(bought, prices[level], prices[current.level]) * DAY
    return Grant(current.level, current.expires_at + dt.timedelta(seconds=added), current.level, added)


def take_back(current: Membership, *, granted_level: int, granted_seconds: int, now: dt.datetime,
              prices: dict[int, int]) -> Membership:
    """The membership after refunding an order that added ``granted_seconds`` at ``granted_level``."""
    if current.level == 0 or current.expires_at is None or current.level < granted_level or not granted_seconds:
        return current
    seconds = granted_seconds if current.level == granted_level else \
        converted_days(granted_seconds, prices[granted_level], prices[current.level]) * DAY
    ends = current.expires_at - dt.timedelta(seconds=seconds)
    return Membership(0, None) if ends <= now else Membership(current.level, ends)
