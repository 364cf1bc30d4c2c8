"""Membership arithmetic: calendar months in SWIPER_TIMEZONE, stacking, upgrades at the price ratio, refunds."""
from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from models.migrations import VIP_LEVELS, VIP_PLANS
from services.payments.membership import DAY, Membership, add_months, extend, take_back

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
PRICES = {1: 1200, 2: 3000, 3: 6800}
NOW = dt.datetime(2026, 3, 10, 4, 0, 0)  # naive UTC: 12:00 in Shanghai


def utc(local: str) -> dt.datetime:
    """A Shanghai wall-clock time as naive UTC."""
    return dt.datetime.fromisoformat(local).replace(tzinfo=SHANGHAI).astimezone(dt.timezone.utc).replace(tzinfo=None)


@pytest.mark.parametrize("start, months, expected", [
    ("2026-01-31 10:00", 1, "2026-02-28 10:00"),   # clamped to February's last day
    ("2028-01-31 10:00", 1, "2028-02-29 10:00"),   # a leap year
    ("2026-03-31 23:30", 1, "2026-04-30 23:30"),
    ("2026-01-15 00:10", 1, "2026-02-15 00:10"),   # 16:10 UTC the day before: the day is Shanghai's
    ("2026-11-30 08:00", 3, "2027-02-28 08:00"),   # across a year
    ("2026-05-20 12:00", 12, "2027-05-20 12:00"),
])
def test_a_month_is_a_calendar_month_in_the_time_zone(start, months, expected):
    assert add_months(utc(start), months, SHANGHAI) == utc(expected)


def test_a_first_purchase_starts_now():
    grant = extend(Membership(0, None), level=2, months=1, now=NOW, tz=SHANGHAI, prices=PRICES)
    assert (grant.level, grant.expires_at) == (2, utc("2026-04-10 12:00"))
    assert grant.granted_seconds == 31 * DAY and grant.granted_level == 2


def test_the_same_level_stacks_from_the_current_expiry():
    current = Membership(2, utc("2026-03-31 09:00"))
    grant = extend(current, level=2, months=1, now=NOW, tz=SHANGHAI, prices=PRICES)
    assert (grant.level, grant.expires_at) == (2, utc("2026-04-30 09:00"))
    assert grant.granted_seconds == 30 * DAY
    again = extend(Membership(2, grant.expires_at), level=2, months=3, now=NOW, tz=SHANGHAI, prices=PRICES)
    assert again.expires_at == utc("2026-07-30 09:00")


def test_an_upgrade_starts_now_and_converts_the_unused_days_at_the_price_ratio():
    # 10 days and 6 hours of silver (12 yuan/month) left; gold is 30: 10.25 × 12/30 = 4.1 → 4 whole days
    current = Membership(1, NOW + dt.timedelta(days=10, hours=6))
    grant = extend(current, level=2, months=1, now=NOW, tz=SHANGHAI, prices=PRICES)
    assert grant.level == 2
    assert grant.expires_at == utc("2026-04-10 12:00") + dt.timedelta(days=4)
    assert grant.granted_seconds == 31 * DAY  # what the order bought; the carried days are the old membership's
    # 100 days of gold into diamond (68): 100 × 30/68 = 44.1 → 44
    diamond = extend(Membership(2, NOW + dt.timedelta(days=100)), level=3, months=12, now=NOW, tz=SHANGHAI,
                     prices=PRICES)
    assert diamond.expires_at == utc("2027-03-10 12:00") + dt.timedelta(days=44)


def test_a_lapsed_membership_counts_as_none():
    grant = extend(Membership(0, None), level=1, months=3, now=NOW, tz=SHANGHAI, prices=PRICES)
    assert grant.expires_at == utc("2026-06-10 12:00")


def test_a_lower_level_paid_during_a_higher_one_adds_its_months_converted():
    current = Membership(3, NOW + dt.timedelta(days=20))
    grant = extend(current, level=1, months=1, now=NOW, tz=SHANGHAI, prices=PRICES)
    # 31 days of silver at 12/68 = 5.47 → 5 days of diamond
    assert (grant.level, grant.expires_at) == (3, NOW + dt.timedelta(days=25))
    assert (grant.granted_level, grant.granted_seconds) == (3, 5 * DAY)


def test_a_refund_takes_exactly_the_bought_time_back():
    stacked = Membership(2, utc("2026-06-30 09:00"))
    after = take_back(stacked, granted_level=2, granted_seconds=30 * DAY, now=NOW, prices=PRICES)
    assert after == Membership(2, utc("2026-05-31 09:00"))


def test_a_refund_after_an_upgrade_takes_the_time_back_converted():
    diamond = Membership(3, NOW + dt.timedelta(days=300))
    after = take_back(diamond, granted_level=2, granted_seconds=31 * DAY, now=NOW, prices=PRICES)
    assert after.expires_at == NOW + dt.timedelta(days=300 - 13)  # 31 × 30/68 = 13.7 → 13


def test_a_refund_that_reaches_now_ends_the_membership_and_a_lapsed_one_loses_nothing():
    short = Membership(2, NOW + dt.timedelta(days=3))
    assert take_back(short, granted_level=2, granted_seconds=31 * DAY, now=NOW, prices=PRICES) == Membership(0, None)
    assert take_back(Membership(0, None), granted_level=2, granted_seconds=31 * DAY, now=NOW,
                     prices=PRICES) == Membership(0, None)
    lower = Membership(1, NOW + dt.timedelta(days=40))  # the gold time was used up; later silver is not touched
    assert take_back(lower, granted_level=2, granted_seconds=31 * DAY, now=NOW, prices=PRICES) == lower


def test_plans_cover_every_paid_level_and_match_the_catalogue_monthly_price():
    monthly = {level: int(price * 100) for level, _name, price, _perms in VIP_LEVELS if level}
    plans = {(level, months): price for _id, level, months, price in VIP_PLANS}
    for level, price in monthly.items():
        assert {months for (lvl, months) in plans if lvl == level} == {1, 3, 12}
        assert plans[(level, 1)] == price
        assert plans[(level, 3)] < 3 * price and plans[(level, 12)] < 12 * plans[(level, 1)]
    assert ("gold-1m", 2, 1, 3000) in VIP_PLANS  # API.md's example
