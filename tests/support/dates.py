"""Dates as the server counts them: "today" is the date in the server's time zone, never the machine's.

Ages, daily quotas and "midnight" are the server's (``settings.timezone``, Asia/Shanghai): a test that builds a
birthday from the machine's ``dt.date.today`` is off by a day whenever its date differs from Shanghai's (every day
from 16:00 to 24:00 UTC on a UTC machine). Every date a test builds comes from here, and the test settings and
server processes are given this same zone explicitly (``conftest.settings``, ``conftest.server_env``).

A day (or an hour) turns while a test runs once in a long while: ``on_one_server_day`` and ``within_one`` run a
test whose expectations hold only within one such period once more when its period turned and it failed.
"""
from __future__ import annotations

import datetime as dt
import functools
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from conf import Settings

SERVER_TIMEZONE = Settings.model_fields["timezone"].default  # the default; conftest passes it to the app and every server process
ZONE = zoneinfo.ZoneInfo(SERVER_TIMEZONE)


def server_now() -> dt.datetime:
    return dt.datetime.now(ZONE)


def server_today() -> dt.date:
    return server_now().date()


def years_before(day: dt.date, years: int) -> dt.date:
    """The same calendar day ``years`` earlier; 29 February becomes 28 February in a common year.

    That is the latest birthday making someone ``years`` old on ``day`` (ages count as services.profiles.age_on
    does: one born on 1 March is not yet a year older on 29 February).
    """
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February, and the year back is a common year
        return day.replace(year=day.year - years, day=28)


def years_ago(years: int, days: int = 0, *, today: dt.date | None = None) -> dt.date:
    """The birthday of someone who turned ``years`` today (the server's), moved ``days`` earlier (negative: later).

    ``years_ago(18, -1)`` turns 18 tomorrow (17 today); ``years_ago(101)`` turned 101 today.
    """
    return years_before(today or server_today(), years) - dt.timedelta(days=days)


def birthday_for_age(age: int, days_after: int = 10, *, today: dt.date | None = None) -> dt.date:
    """A birthday making someone ``age`` today, ``days_after`` days past their birthday: still ``age`` for days."""
    return years_before((today or server_today()) - dt.timedelta(days=days_after), age)


def next_midnight(moment: dt.datetime) -> dt.datetime:
    """The end of ``moment``'s day in the server's zone (what a quota's ``resets_at`` says)."""
    local = moment.astimezone(ZONE)
    return dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=ZONE)


def quota_day_key(moment: dt.datetime | None = None) -> str:
    """The day part of a quota key (``services.quotas.quota_day``): the server's date as YYYYMMDD."""
    return (moment or server_now()).astimezone(ZONE).strftime("%Y%m%d")


def current_hour() -> int:
    """The index of the current one-hour period, as ``services.jobs.run_exclusively`` counts periods of 3600 s."""
    return int(time.time() // 3600)


def within_one(period: Callable[[], Hashable]) -> Callable:
    """A decorator for tests whose expectations hold only within one ``period()`` (a day, an hour).

    If the test fails and ``period()`` changed while it ran, it runs once more: a period turns once, so that run
    starts and ends in the same period. A failure within one period is raised as it is.
    """
    def decorate(test: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(test)
        async def run(*args: Any, **kwargs: Any) -> Any:
            started = period()
            try:
                return await test(*args, **kwargs)
            except AssertionError:
                if period() == started:
                    raise
            return await test(*args, **kwargs)
        return run
    return decorate


on_one_server_day = within_one(server_today)
on_one_hour = within_one(current_hour)
