"""Robot users for load tests and demos: ``python scripts/manage.py create-robots N``.

Robots look like ordinary people to the rest of the system (Chinese names, both genders, ages 18..45, a handful
of big cities, preferences that would find each other) and are written fast: one multi-row INSERT per batch for
the users and one for their preferences, inside one transaction per batch.

Phones: every robot has a phone in the mainland number segment 154, which no carrier has ever been assigned, so
a robot can never take the number of a real person (who would then log into the robot's account). The 8 digits
after the prefix count up from the highest robot phone already stored, so repeated runs never collide.

Positions (``--near LAT,LNG --radius KM``, or ``--cities``: around each robot's own city's centre): drawn at
random within the radius, denser towards the centre, and stored only as their H3 cells (``services.location``),
like any user's.

Ids: with InnoDB's ``innodb_autoinc_lock_mode`` 0 or 1 (1 is the default) a multi-row INSERT of known size gets
consecutive ids starting at ``LAST_INSERT_ID()``, in the order of its rows. Each batch checks that this held (one
count over the primary-key range) and otherwise reads its ids back by phone, so a server in lock mode 2
(interleaved, as Galera needs) still gets correct preferences rows.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import peewee
from peewee import SQL, fn

from models import Preferences, User, db
from models.base import utcnow
from services.location.cells import coarse, snap

ROBOT_PHONE_PREFIX = "154"
_PHONE_DIGITS = 8  # after the prefix
_PHONE_MAX = 10 ** _PHONE_DIGITS - 1
MIN_AGE, MAX_AGE = 18, 45
DEFAULT_BATCH_SIZE = 2000  # rows per INSERT; 1,000..10,000 all run at about the same speed (Python-bound)
MAX_BATCH_SIZE = 10_000  # ~2.5 MB of SQL, well inside the default 16 MB max_allowed_packet
_ATTEMPTS = 5  # per batch, against unique-key races with concurrent writers and deadlocks

# ~Share of the population (per cent, 2020 census order); a few compound surnames for colour.
SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.7), ("刘", 5.4), ("陈", 4.6), ("杨", 3.1), ("黄", 2.4), ("赵", 2.2),
    ("吴", 2.0), ("周", 1.9), ("徐", 1.5), ("孙", 1.4), ("马", 1.3), ("朱", 1.3), ("胡", 1.2), ("郭", 1.2),
    ("何", 1.1), ("林", 1.0), ("高", 1.0), ("罗", 0.9), ("郑", 0.9), ("梁", 0.8), ("谢", 0.7), ("宋", 0.6),
    ("唐", 0.6), ("许", 0.6), ("韩", 0.6), ("冯", 0.6), ("邓", 0.6), ("曹", 0.5), ("彭", 0.5), ("曾", 0.5),
    ("肖", 0.5), ("田", 0.5), ("董", 0.5), ("袁", 0.4), ("潘", 0.4), ("于", 0.4), ("蒋", 0.4), ("蔡", 0.4),
    ("余", 0.4), ("杜", 0.4), ("叶", 0.4), ("程", 0.4), ("苏", 0.4), ("魏", 0.3), ("吕", 0.3), ("丁", 0.3),
    ("任", 0.3), ("沈", 0.3), ("姚", 0.3), ("卢", 0.3), ("姜", 0.3), ("崔", 0.3), ("钟", 0.3), ("谭", 0.3),
    ("陆", 0.2), ("汪", 0.2), ("范", 0.2), ("金", 0.2), ("石", 0.2), ("廖", 0.2), ("贾", 0.2), ("夏", 0.2),
    ("韦", 0.2), ("付", 0.2), ("方", 0.2), ("白", 0.2), ("邹", 0.2), ("孟", 0.1), ("熊", 0.1), ("秦", 0.1),
    ("邱", 0.1), ("江", 0.1), ("尹", 0.1), ("薛", 0.1), ("闫", 0.1), ("段", 0.1), ("雷", 0.1), ("侯", 0.1),
    ("龙", 0.1), ("史", 0.1), ("陶", 0.1), ("黎", 0.1), ("贺", 0.1), ("顾", 0.1), ("毛", 0.1), ("郝", 0.1),
    ("龚", 0.1), ("邵", 0.1), ("万", 0.1), ("钱", 0.1), ("严", 0.1), ("戴", 0.1), ("孔", 0.05), ("汤", 0.05),
    ("欧阳", 0.03), ("上官", 0.01), ("司马", 0.01), ("诸葛", 0.01),
)
# Given names: one character, or two (a first and a second from these pools).
GIVEN_NAMES: dict[str, tuple[str, str, str]] = {
    "male": (
        "伟强磊军洋勇杰涛明超辉鹏飞刚平斌浩宇帅亮峰凯龙健鑫毅波",
        "子浩宇俊博文明志建天泽嘉思一晨家振永国海德鹏立承皓梓昊锦宏云成少新世晓",
        "轩然杰宇涛辉强磊伟鹏飞勇军洋峰斌航晨阳睿豪凯毅诚彬龙超铭哲林远东平翔鑫",
    ),
    "female": (
        "芳娜敏静丽艳娟霞婷雪琳慧颖洁梅琴倩欣莉蕾璐丹燕萍玲",
        "思雨欣梓诗佳梦紫静晓雅子可婉若语心美文嘉丽秀一依佩书海春安映",
        "涵萱怡彤琪婷雪琳妍颖瑶馨悦洁蕾菲薇敏娜月晴然璐宁琦曦君华玉莹",
    ),
}
CITIES: tuple[tuple[str, float], ...] = (
    ("北京", 16), ("上海", 16), ("深圳", 13), ("广州", 12), ("成都", 11), ("杭州", 10), ("武汉", 8), ("南京", 7),
)
# Where each city is (WGS-84 city centres), for robots given positions by their city.
CITY_CENTRES: dict[str, tuple[float, float]] = {
    "北京": (39.9042, 116.4074), "上海": (31.2304, 121.4737), "深圳": (22.5431, 114.0579),
    "广州": (23.1291, 113.2644), "成都": (30.5728, 104.0668), "杭州": (30.2741, 120.1551),
    "武汉": (30.5928, 114.3055), "南京": (32.0603, 118.7969),
}
assert set(CITY_CENTRES) == {name for name, _ in CITIES}
KM_PER_DEGREE = 111.195


class Spread(NamedTuple):
    """Where robots get positions: around ``near`` (or, if None, their own city's centre) within ``radius_km``."""
    near: tuple[float, float] | None
    radius_km: float


# Relative weight of each age 18..45: dating apps skew to the twenties.
AGE_WEIGHTS: tuple[float, ...] = (2, 3, 4, 5, 7, 7, 7, 7, 7, 6, 6, 6, 6, 4, 4, 4, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1)
assert len(AGE_WEIGHTS) == MAX_AGE - MIN_AGE + 1

_SURNAMES, _SURNAME_CUM = zip(*SURNAMES)
_SURNAME_CUM = tuple(itertools.accumulate(_SURNAME_CUM))
_CITIES, _CITY_CUM = zip(*CITIES)
_CITY_CUM = tuple(itertools.accumulate(_CITY_CUM))
_AGES = tuple(range(MIN_AGE, MAX_AGE + 1))
_AGE_CUM = tuple(itertools.accumulate(AGE_WEIGHTS))
_OTHER = {"male": "female", "female": "male"}


class RobotUser(NamedTuple):
    """A ``user`` row, in the order of ``USER_FIELDS``."""
    phone: str
    nickname: str
    gender: str
    birthday: dt.date
    location: str
    vip_level: int
    created_at: dt.datetime
    updated_at: dt.datetime
    last_active_at: dt.datetime
    geo_cell: int | None = None
    geo_coarse: int | None = None
    geo_updated_at: dt.datetime | None = None


class RobotPrefs(NamedTuple):
    """A ``preferences`` row without its ``user_id``, in the order of ``PREFS_FIELDS[1:]``."""
    dating_gender: str
    location: str
    min_distance: int
    max_distance: int
    min_dating_age: int
    max_dating_age: int
    vibration: bool
    only_match: bool
    auto_play: bool


class Robot(NamedTuple):
    user: RobotUser
    prefs: RobotPrefs


USER_FIELDS = [User.phone, User.nickname, User.gender, User.birthday, User.location, User.vip_level,
               User.created_at, User.updated_at, User.last_active_at, User.geo_cell, User.geo_coarse,
               User.geo_updated_at]
PREFS_FIELDS = [Preferences.user, Preferences.dating_gender, Preferences.location, Preferences.min_distance,
                Preferences.max_distance, Preferences.min_dating_age, Preferences.max_dating_age,
                Preferences.vibration, Preferences.only_match, Preferences.auto_play]
assert [f.name for f in USER_FIELDS] == list(RobotUser._fields)
assert [f.name for f in PREFS_FIELDS[1:]] == list(RobotPrefs._fields)


def robot_phone(n: int) -> str:
    """The ``n``-th robot phone (1-based): ``15400000001``, ``15400000002``, ..."""
    if not 0 < n <= _PHONE_MAX:
        raise ValueError(f"robot phone number {n} out of range")
    return f"{ROBOT_PHONE_PREFIX}{n:0{_PHONE_DIGITS}d}"


def is_robot_phone(phone: str) -> bool:
    return len(phone) == 11 and phone.startswith(ROBOT_PHONE_PREFIX) and phone.isdigit()


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def random_cell(rng: random.Random, centre: tuple[float, float], radius_km: float) -> int:
    """The cell of a random point within ``radius_km`` of ``centre``, denser towards the centre (like a city)."""
    distance, bearing = radius_km * rng.random(), rng.random() * 2 * math.pi
    lat = centre[0] + distance * math.cos(bearing) / KM_PER_DEGREE
    lng = centre[1] + distance * math.sin(bearing) / (KM_PER_DEGREE * math.cos(math.radians(centre[0])))
    return snap(max(-90.0, min(90.0, lat)), (lng + 180.0) % 360.0 - 180.0)


def _name(rng: random.Random, gender: str) -> str:
    surname = rng.choices(_SURNAMES, cum_weights=_SURNAME_CUM)[0]
    single, first, second = GIVEN_NAMES[gender]
    if rng.random() < 0.3:
        return surname + rng.choice(single)
    return surname + rng.choice(first) + rng.choice(second)


def pick_nickname(rng: random.Random, gender: str, birthday: dt.date, taken: set[str]) -> str:
    """A name not in ``taken`` (a few fresh draws, then a suffixed one), added to ``taken``."""
    for _ in range(3):
        name = _name(rng, gender)
        if name not in taken:
            taken.add(name)
            return name
    return unique_nickname(rng, name, birthday, taken)


def unique_nickname(rng: random.Random, name: str, birthday: dt.date, taken: set[str]) -> str:
    """``name`` if free, else the way people pick a taken nickname: ``李娜98`` (birth year), ``李娜520``, ...

    Adds the result to ``taken``.
    """
    candidates = itertools.chain(
        (name, f"{name}{birthday.year % 100:02d}", f"{name}{birthday:%m%d}"),
        (f"{name}{rng.randrange(10 ** (2 + i // 8), 10 ** (3 + i // 8))}" for i in itertools.count()),
    )
    nickname = next(c for c in candidates if c not in taken)
    taken.add(nickname)
    return nickname


def generate_batch(rng: random.Random, *, first_phone: int, count: int, now: dt.datetime, today: dt.date,
                   taken: set[str], spread: Spread | None = None) -> list[Robot]:
    """``count`` robots with phones ``robot_phone(first_phone)`` onwards (ascending), touching no database.

    ``now`` is naive UTC (as every DATETIME column stores it); ``today`` the calendar date ages are counted from.
    Nicknames avoid ``taken`` (and each other) and are added to it. Birthdays keep a day's margin from the age
    limits so a robot is 18..45 in any time zone.
    """
    if first_phone + count - 1 > _PHONE_MAX:
        raise ValueError("the robot phone range is exhausted")
    youngest = _years_before(today, MIN_AGE) - dt.timedelta(days=1)  # latest birthday allowed
    oldest = _years_before(today, MAX_AGE + 1) + dt.timedelta(days=2)  # earliest birthday allowed
    random_ = rng.random
    robots = []
    for i in range(count):
        gender = "male" if random_() < 0.5 else "female"
        # An age by weight, then a birthday anywhere in that year of life.
        age = rng.choices(_AGES, cum_weights=_AGE_CUM)[0]
        latest = min(youngest, _years_before(today, age))
        earliest = max(oldest, _years_before(today, age + 1) + dt.timedelta(days=1))
        birthday = earliest + dt.timedelta(days=rng.randrange((latest - earliest).days + 1))
        city = rng.choices(_CITIES, cum_weights=_CITY_CUM)[0]
        # Active within the last 30 days, more of them recently; joined up to ~2 years before that.
        last_active = now - dt.timedelta(seconds=30 * 86400 * random_() ** 1.5)
        created = last_active - dt.timedelta(seconds=5 * 60 + 730 * 86400 * random_() ** 2)
        updated = created + (last_active - created) * random_()
        nickname = pick_nickname(rng, gender, birthday, taken)
        # Men tend to look for younger partners, women for older ones.
        if gender == "male":
            low, high = age - rng.randint(2, 8), age + rng.randint(0, 5)
        else:
            low, high = age - rng.randint(0, 4), age + rng.randint(2, 10)
        low, high = _clamp(low, 18, 100), _clamp(high, 18, 100)
        cell = None
        if spread is not None:
            cell = random_cell(rng, spread.near or CITY_CENTRES[city], spread.radius_km)
        robots.append(Robot(
            RobotUser(robot_phone(first_phone + i), nickname, gender, birthday, city, 0, created, updated,
                      last_active, cell, coarse(cell) if cell else None, updated if cell else None),
            RobotPrefs(_OTHER[gender] if random_() < 0.93 else gender, city, 1, 10, min(low, high), max(low, high),
                       True, True, True),
        ))
    return robots


async def _next_phone_number() -> int:
    """One more than the highest robot phone stored (1 when there is none)."""
    highest = await (User.select(fn.MAX(User.phone))
                     .where(User.phone.between(robot_phone(1), robot_phone(_PHONE_MAX))).aio_scalar())
    return int(highest[len(ROBOT_PHONE_PREFIX):]) + 1 if highest else 1


async def _fix_taken_nicknames(rng: random.Random, robots: list[Robot], taken: set[str]) -> list[Robot]:
    """Rename the robots whose nickname a stored user already has (a real user, or a robot of an earlier run).

    The first time a robot's name is found stored it gets a fresh draw; if that is stored too, a suffix (after a
    big earlier run most fresh draws are taken as well, and each round costs a query).
    """
    renamed = robots
    for round_ in itertools.count():
        stored = {row[0] for row in await User.select(User.nickname)
                  .where(User.nickname.in_([r.user.nickname for r in renamed])).tuples().aio_execute()}
        if not stored:
            break
        taken |= stored
        replacements = {}
        for r in renamed:
            if r.user.nickname not in stored:
                continue
            if round_ == 0:
                nickname = pick_nickname(rng, r.user.gender, r.user.birthday, taken)
            else:
                base = r.user.nickname.rstrip("0123456789") or r.user.nickname
                nickname = unique_nickname(rng, base, r.user.birthday, taken)
            replacements[r.user.phone] = nickname
        robots = [r._replace(user=r.user._replace(nickname=replacements[r.user.phone]))
                  if r.user.phone in replacements else r for r in robots]
        renamed = [r for r in robots if r.user.phone in replacements]
    return robots


async def batch_ids(first_id: int, robots: list[Robot]) -> Sequence[int]:
    """The ids of the just-inserted ``robots`` (in order), given the ``LAST_INSERT_ID()`` of their INSERT."""
    n = len(robots)
    low_phone, high_phone = robots[0].user.phone, robots[-1].user.phone
    # The phones of a batch are n consecutive numbers, so rows in [first_id, first_id + n) with a phone in
    # [low, high] can only be this batch's: n of them means the ids are consecutive, in row order.
    ours = await (User.select(fn.COUNT(SQL("*")))
                  .where(User.id.between(first_id, first_id + n - 1)
                         & User.phone.between(low_phone, high_phone)).aio_scalar())
    if ours == n:
        return range(first_id, first_id + n)
    by_phone = dict(await User.select(User.phone, User.id)
                    .where(User.phone.between(low_phone, high_phone)).tuples().aio_execute())
    return [by_phone[r.user.phone] for r in robots]


async def _insert_batch(robots: list[Robot]) -> None:
    """The users, then their preferences, in one transaction."""
    async with db.aio_atomic():
        first_id = await User.insert_many([r.user for r in robots], fields=USER_FIELDS).aio_execute()
        ids = await batch_ids(first_id, robots)
        await Preferences.insert_many([(user_id, *r.prefs) for user_id, r in zip(ids, robots)],
                                      fields=PREFS_FIELDS).aio_execute()


def _retryable(exc: peewee.DatabaseError) -> bool:
    if isinstance(exc, peewee.IntegrityError):
        return True  # a phone or nickname taken meanwhile by another writer: pick new ones
    code = exc.args[0] if exc.args else None  # (errno, message), as PyMySQL raised it
    return code in (1205, 1213)  # lock wait timeout, deadlock


async def create_robots(*, count: int, seed: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                        today: dt.date | None = None, spread: Spread | None = None,
                        progress: Callable[[int, int], None] | None = None) -> int:
    """Add ``count`` robot users with their preferences; return how many were created.

    ``seed`` makes the names, genders, ages, cities and times repeatable (phones always continue from the
    stored ones). ``today`` is the date ages are counted from (default: the local date; robots keep a day's
    margin anyway). ``spread`` gives them positions. ``progress(created, count)`` is called after each batch.
    """
    if count < 0 or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"count must be >= 0 and batch_size 1..{MAX_BATCH_SIZE}")
    rng = random.Random(seed)
    today = today or dt.date.today()
    taken: set[str] = set()
    created = next_phone = 0
    while created < count:
        n = min(batch_size, count - created)
        for attempt in range(_ATTEMPTS):
            # Cheap (the index answers it), and keeps a concurrent run from colliding batch after batch.
            next_phone = max(next_phone, await _next_phone_number())
            now = utcnow()
            robots = generate_batch(rng, first_phone=next_phone, count=n, now=now, today=today, taken=taken,
                                    spread=spread)
            robots = await _fix_taken_nicknames(rng, robots, taken)
            try:
                await _insert_batch(robots)
                break
            except (peewee.IntegrityError, peewee.OperationalError) as exc:
                if not _retryable(exc) or attempt == _ATTEMPTS - 1:
                    raise
        next_phone += n
        created += n
        if progress is not None:
            progress(created, count)
    return created


def timed_progress(write: Callable[[str], object] = print) -> Callable[[int, int], None]:
    """A ``progress`` callback printing ``created/total`` and the rate so far."""
    start = time.monotonic()

    def report(created: int, total: int) -> None:
        elapsed = time.monotonic() - start
        rate = created / elapsed if elapsed > 0 else 0.0
        write(f"  {created}/{total} robots ({elapsed:.1f} s, {rate:,.0f}/s)")

    return report
