"""Robot users: realistic rows from a pure generator, inserted in batches against the real MariaDB."""
from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import sys
from collections import Counter

import pytest

from models import Preferences, User, db
from models.base import utcnow
from services.phones import normalize_phone
from services.profiles import age_on
from h3.api import basic_int as h3

from services.robots import (CITIES, CITY_CENTRES, ROBOT_PHONE_PREFIX, USER_FIELDS, Spread, batch_ids,
                             create_robots, generate_batch, is_robot_phone, robot_phone)
from tests.conftest import new_phone, server_env
from tests.support.dates import server_today
from tests.support.processes import ROOT

NAME = re.compile(r"[\u4e00-\u9fff]{2,4}[0-9]{0,4}")
CITY_NAMES = {city for city, _ in CITIES}


def check_robot(user: tuple, prefs: tuple, *, today: dt.date, now: dt.datetime) -> None:
    """One robot's user row ``(phone, nickname, gender, birthday, location, vip_level, created_at, updated_at,
    last_active_at)`` and preferences ``(dating_gender, location, min_distance, max_distance, min_dating_age,
    max_dating_age, vibration, only_match, auto_play)`` are what a realistic person would have."""
    phone, nickname, gender, birthday, location, vip_level, created, updated, last_active, *position = user
    assert position in ([], [None, None, None]) or (position[1] == h3.cell_to_parent(position[0], 5)
                                                   and position[2] == updated)
    assert normalize_phone(phone) == phone and is_robot_phone(phone)
    assert NAME.fullmatch(nickname), nickname
    assert gender in ("male", "female") and location in CITY_NAMES and vip_level == 0
    for day in (today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)):  # any time zone
        assert 18 <= age_on(birthday, day) <= 45, (birthday, day)
    assert now - dt.timedelta(days=30, seconds=5) <= last_active <= now + dt.timedelta(seconds=5)
    assert created <= updated <= last_active and created < last_active
    dating_gender, pref_location, min_distance, max_distance, min_age, max_age, *flags = prefs
    assert dating_gender in ("male", "female") and pref_location == location
    assert (min_distance, max_distance) == (1, 10) and all(flags)
    # Around their own age: this also proves each preferences row belongs to its own user.
    assert 18 <= min_age <= age_on(birthday, today) <= max_age <= 100, (birthday, min_age, max_age)


def test_robots_get_positions_as_cells_near_a_point_or_their_city():
    today, now = dt.date(2027, 5, 1), dt.datetime(2027, 5, 1, 4, 30)
    centre = (31.2304, 121.4737)
    near = generate_batch(random.Random(5), first_phone=1, count=2000, now=now, today=today, taken=set(),
                          spread=Spread(near=centre, radius_km=12))
    cells = [r.user.geo_cell for r in near]
    assert all(h3.get_resolution(c) == 8 and h3.cell_to_parent(c, 5) == r.user.geo_coarse
               for c, r in zip(cells, near))
    distances = [h3.great_circle_distance(centre, h3.cell_to_latlng(c), unit="km") for c in cells]
    assert max(distances) <= 12.5 and min(distances) < 1 and len(set(cells)) > 300
    inner, outer = sum(d < 4 for d in distances) / 4 ** 2, sum(8 <= d < 12 for d in distances) / (12 ** 2 - 8 ** 2)
    assert inner > 2 * outer  # more people per km² towards the centre
    spread = generate_batch(random.Random(5), first_phone=1, count=2000, now=now, today=today, taken=set(),
                            spread=Spread(near=None, radius_km=30))
    for robot in spread:
        home = CITY_CENTRES[robot.user.location]
        assert h3.great_circle_distance(home, h3.cell_to_latlng(robot.user.geo_cell), unit="km") <= 30.5
    plain = generate_batch(random.Random(5), first_phone=1, count=10, now=now, today=today, taken=set())
    assert {(r.user.geo_cell, r.user.geo_coarse, r.user.geo_updated_at) for r in plain} == {(None, None, None)}


def check_population(users: list[tuple], prefs: list[tuple]) -> None:
    genders = Counter(u[2] for u in users)
    assert 0.4 < genders["male"] / len(users) < 0.6
    assert len({u[4] for u in users}) >= 6
    opposite = sum(1 for u, p in zip(users, prefs) if p[0] != u[2])
    assert opposite / len(users) > 0.85
    assert len({u[3] for u in users}) > len(users) / 10  # birthdays spread out


def test_generate_batch_makes_realistic_people():
    today, now = dt.date(2028, 2, 29), dt.datetime(2028, 2, 29, 4, 30)  # a leap day, to test the age limits
    taken: set[str] = set()
    robots = generate_batch(random.Random(7), first_phone=41, count=3000, now=now, today=today, taken=taken)
    assert [r.user.phone for r in robots] == [robot_phone(41 + i) for i in range(3000)]
    assert robots[0].user.phone == ROBOT_PHONE_PREFIX + "00000041"
    nicknames = [r.user.nickname for r in robots]
    assert len(set(nicknames)) == 3000 and taken == set(nicknames)
    assert sum(1 for n in nicknames if n[-1].isdigit()) < 300  # a suffix only when a name is taken
    for robot in robots:
        check_robot(robot.user, robot.prefs, today=today, now=now)
    check_population([r.user for r in robots], [r.prefs for r in robots])
    assert {age_on(r.user.birthday, today) for r in robots} == set(range(18, 46))


def test_generate_batch_is_repeatable_and_avoids_taken_names():
    today, now = dt.date(2026, 11, 21), dt.datetime(2026, 11, 21)
    first = generate_batch(random.Random(3), first_phone=1, count=500, now=now, today=today, taken=set())
    again = generate_batch(random.Random(3), first_phone=1, count=500, now=now, today=today, taken=set())
    assert first == again
    taken = {r.user.nickname for r in first}
    other = generate_batch(random.Random(3), first_phone=501, count=500, now=now, today=today, taken=taken)
    assert not {r.user.nickname for r in other} & {r.user.nickname for r in first}
    assert all(NAME.fullmatch(r.user.nickname) for r in other)


def test_robot_phones_are_valid_and_bounded():
    assert robot_phone(1) == "15400000001" and robot_phone(99_999_999) == "15499999999"
    assert normalize_phone(robot_phone(12345)) == robot_phone(12345)
    for bad in (0, 100_000_000):
        with pytest.raises(ValueError):
            robot_phone(bad)
    with pytest.raises(ValueError):
        generate_batch(random.Random(), first_phone=99_999_999, count=2, now=utcnow(), today=server_today(),
                       taken=set())


async def highest_robot_phone() -> str:
    return await (User.select(User.phone).where(User.phone.between(robot_phone(1), robot_phone(99_999_999)))
                  .order_by(User.phone.desc()).limit(1).aio_scalar()) or robot_phone(1)[:-1] + "0"


@pytest.fixture(scope="module")
async def robots_cleanup(schema):
    """Delete the robots these tests made, so other tests' feeds (same cities) do not fill with strangers."""
    before = await highest_robot_phone()
    yield
    await User.delete().where((User.phone > before) & (User.phone <= robot_phone(99_999_999))).aio_execute()


async def robots_after(phone: str) -> list[tuple[tuple, tuple]]:
    """``(user, prefs)`` rows (in ``check_robot``'s order) of the robots with a phone above ``phone``."""
    pref_fields = [Preferences.dating_gender, Preferences.location, Preferences.min_distance,
                   Preferences.max_distance, Preferences.min_dating_age, Preferences.max_dating_age,
                   Preferences.vibration, Preferences.only_match, Preferences.auto_play]
    rows = await (User.select(*USER_FIELDS, *pref_fields)
                  .join(Preferences, on=(Preferences.user == User.id))
                  .where((User.phone > phone) & (User.phone <= robot_phone(99_999_999)))
                  .order_by(User.phone).tuples().aio_execute())
    n = len(USER_FIELDS)
    return [(row[:n], row[n:]) for row in rows]


async def test_create_robots_in_batches_twice(robots_cleanup):
    today = server_today()
    users_before, before = await User.select().aio_count(), await highest_robot_phone()
    calls: list[tuple[int, int]] = []
    created = await create_robots(count=3000, seed=11, batch_size=1000, today=today,
                                  progress=lambda done, total: calls.append((done, total)))
    assert created == 3000 and calls == [(1000, 3000), (2000, 3000), (3000, 3000)]
    assert await User.select().aio_count() == users_before + 3000
    rows = await robots_after(before)
    assert len(rows) == 3000  # every robot has its preferences row
    now = utcnow()
    for user, prefs in rows:
        check_robot(user, prefs, today=today, now=now)
    check_population([u for u, _ in rows], [p for _, p in rows])
    phones = [u[0] for u, _ in rows]
    assert len(set(phones)) == 3000 and int(phones[0][3:]) == int(before[3:]) + 1  # counting on from before

    # The same seed again draws the same names: they are stored now, so they must be renamed, not collide.
    middle = phones[-1]
    assert await create_robots(count=3000, seed=11, batch_size=1000, today=today) == 3000
    assert await User.select().aio_count() == users_before + 6000
    more = await robots_after(middle)
    assert len(more) == 3000 and int(more[0][0][0][3:]) == int(middle[3:]) + 1
    now = utcnow()
    for user, prefs in more:
        check_robot(user, prefs, today=today, now=now)
    nicknames = [u[1] for u, _ in rows + more]
    assert len(set(nicknames)) == 6000
    assert sum(1 for n in nicknames if n[-1].isdigit()) < 6000 / 2  # still mostly plain names


async def test_a_stored_users_nickname_is_never_reused(robots_cleanup):
    today = server_today()
    planned = generate_batch(random.Random(2024), first_phone=1, count=300, now=utcnow(), today=today,
                             taken=set())
    real = [planned[0].user.nickname, planned[150].user.nickname]
    for nickname in real:
        if not await User.select().where(User.nickname == nickname).aio_exists():
            await User.insert(phone=new_phone(), nickname=nickname).aio_execute()
    before = await highest_robot_phone()
    assert await create_robots(count=300, seed=2024, batch_size=300, today=today) == 300
    robots = await robots_after(before)
    assert len(robots) == 300 and not {u[1] for u, _ in robots} & set(real)


async def test_batch_ids_reads_ids_back_by_phone_when_they_are_not_consecutive(robots_cleanup):
    before = await highest_robot_phone()
    robots = generate_batch(random.Random(5), first_phone=int(before[3:]) + 1, count=5, now=utcnow(),
                            today=server_today(), taken=set())

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with db.aio_atomic():
            first_id = await User.insert_many([r.user for r in robots], fields=USER_FIELDS).aio_execute()
            stored = [row[0] for row in await User.select(User.id).where(
                User.phone.in_([r.user.phone for r in robots])).order_by(User.phone).tuples().aio_execute()]
            assert stored == list(range(first_id, first_id + 5))  # this server gives consecutive ids
            assert list(await batch_ids(first_id, robots)) == stored
            assert list(await batch_ids(first_id + 1, robots)) == stored  # a wrong guess is caught
            raise Undo
    assert await highest_robot_phone() == before


async def test_manage_create_robots(settings, robots_cleanup):
    before = await highest_robot_phone()
    env = {**server_env(settings), "PATH": "/usr/bin:/bin"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "manage.py"), "create-robots", "25", "--batch", "10", "--seed", "1",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await proc.communicate())[0].decode()
    assert proc.returncode == 0, out
    assert "10/25 robots" in out and "25/25 robots" in out and re.search(r"created 25 robots in [0-9.]+ s", out)
    assert len(await robots_after(before)) == 25

    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "manage.py"), "create-robots", "0", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await proc.communicate())[0].decode()
    assert proc.returncode == 2 and "at least 1" in out

    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "manage.py"), "create-robots", "5", "--batch", "20000", cwd=ROOT,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await proc.communicate())[0].decode()
    assert proc.returncode == 2 and "at most 10000" in out


async def test_manage_create_robots_near_a_point(settings, robots_cleanup):
    from tests.test_manage import manage
    before = await highest_robot_phone()
    code, out = await manage(settings, "create-robots", "40", "--near=-78.5,12.25", "--radius", "3")
    assert code == 0 and "created 40 robots" in out, out
    rows = await (User.select(User.geo_cell, User.geo_coarse).where(
        (User.phone > before) & (User.phone <= robot_phone(99_999_999))).tuples().aio_execute())
    assert len(rows) == 40
    for cell, parent in rows:
        assert h3.cell_to_parent(cell, 5) == parent
        assert h3.great_circle_distance((-78.5, 12.25), h3.cell_to_latlng(cell), unit="km") <= 3.5
    for bad in (["--near", "91,0"], ["--near", "nan,0"], ["--near", "1"], ["--radius", "3"],
                ["--cities", "--radius", "0"], ["--near", "1,2", "--cities"]):
        code, out = await manage(settings, "create-robots", "5", *bad)
        assert code == 2 and "usage" in out, (bad, out)
