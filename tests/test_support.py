"""The suite's own machinery: a helper that is wrong makes every test built on it prove nothing."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from services.profiles import age_on, today as profiles_today
from services.quotas import quota_day
from tests.support import dates
from tests.support.dates import (birthday_for_age, next_midnight, quota_day_key, server_today, within_one,
                                 years_ago, years_before)

TESTS = Path(__file__).resolve().parent


# -- dates: the server's day, and birthdays that are right on 29 February -----------------------------------------

def every_day(first: dt.date, last: dt.date):
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


@pytest.mark.parametrize("years", [1, 4, 18, 45, 100, 101])
def test_years_before_is_the_last_birthday_of_that_age(years):
    """On every day of 2027-2029 (29 February 2028 included): born then, you are ``years``; a day later, not yet."""
    for day in every_day(dt.date(2027, 1, 1), dt.date(2029, 12, 31)):
        born = years_before(day, years)
        assert age_on(born, day) == years, (day, born)
        assert age_on(born + dt.timedelta(days=1), day) == years - 1, (day, born)


def test_the_leap_day_itself():
    leap = dt.date(2028, 2, 29)
    assert years_before(leap, 18) == dt.date(2010, 2, 28)
    assert years_before(leap, 4) == dt.date(2024, 2, 29)  # a leap year back: the same day
    assert years_ago(18, -1, today=leap) == dt.date(2010, 3, 1) and age_on(dt.date(2010, 3, 1), leap) == 17
    assert age_on(years_ago(101, today=leap), leap) == 101
    assert age_on(years_ago(101, -1, today=leap), leap) == 100
    for age in range(18, 46):
        assert age_on(birthday_for_age(age, today=leap), leap) == age
        assert age_on(birthday_for_age(age, today=leap), leap + dt.timedelta(days=9)) == age


def test_today_is_the_servers(settings):
    """The helpers, the app under test and the quota keys all count days in one zone."""
    assert settings.timezone == dates.SERVER_TIMEZONE
    before, theirs, after = server_today(), profiles_today(settings), server_today()
    assert theirs in {before, after}  # (a day may turn between the calls)
    moment = dt.datetime(2026, 12, 1, 16, 30, tzinfo=dt.timezone.utc)  # 00:30 on 2 December in Shanghai
    assert quota_day_key(moment) == quota_day(settings, moment).key == "20261202"
    assert next_midnight(moment) == quota_day(settings, moment).resets_at
    assert next_midnight(moment).isoformat() == "2026-12-03T00:00:00+08:00"


def test_no_test_takes_the_machines_date():
    """``dt.date.today()`` and a zone-less ``now()`` are the machine's date, not the server's."""
    machine_date = re.compile(r"\bdate\.today\(|datetime\.today\(|\.now\(\)|\blocaltime\(")
    offenders = [f"{path.relative_to(TESTS)}:{n}: {line.strip()}"
                 for path in sorted(TESTS.rglob("*.py")) if path != Path(__file__).resolve()
                 for n, line in enumerate(path.read_text().splitlines(), 1) if machine_date.search(line)]
    assert not offenders, "use tests/support/dates.py:\n" + "\n".join(offenders)


async def test_a_test_failing_as_its_period_turns_runs_once_more():
    runs: list[int] = []
    clock = iter([1, 2, 2, 2])  # the period turns during the first run

    @within_one(lambda: next(clock))
    async def flaky_at_the_turn():
        runs.append(1)
        assert len(runs) == 2, "the first run straddled two periods"

    await flaky_at_the_turn()
    assert len(runs) == 2


async def test_a_failure_within_one_period_is_not_retried():
    runs: list[int] = []

    @within_one(lambda: 7)
    async def broken():
        runs.append(1)
        raise AssertionError("a real failure")

    with pytest.raises(AssertionError, match="a real failure"):
        await broken()
    assert runs == [1]
