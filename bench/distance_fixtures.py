"""Fixtures and SQL figures for the feed by distance: ``python -m bench.distance_fixtures --out DIR [options]``
(``bench.distance`` runs it for each data set).

Idempotent, like ``bench.fixtures`` (whose city-feed fixtures it leaves alone):

- **Robots.** At least ``--robots`` robots (phones ``154…``), every one with a position around its own city's
  centre (``services.robots`` with ``Spread(near=None, radius_km=--city-radius)``, default 30 km: 北京, 上海,
  深圳, 广州, 成都, 杭州, 武汉, 南京 by population weight). Robots without a position are given one.
- **Viewer** (``--viewer-phone``, default 13900000002): male, 28, looking for women aged 18..45 within
  ``min_distance=1..max_distance=--radius`` (default 50) km of a position in the centre of 北京, level 0. He
  has swiped exactly the ``--swipes`` (default 5,000) people his feed would otherwise show first (the walk of
  ``services.location.nearby`` with that limit), so every walk steps over all of them before it finds a page.
- **Figures** (printed and written to ``DIR/sql.txt``): every statement one walk and one cached-list page send,
  each re-run on its own connection with the session's ``Handler_read_*`` counters read before and after, and
  its time; the ``EXPLAIN`` of the first walk statement; and the walk's Python time with a cold coverage cache.
- **Files in DIR**: ``viewer.token``, ``viewer.id``, ``sql.txt``, ``summary.txt``.

Uses the ``SWIPER_*`` settings from the environment (run it with a bench database and Redis db/prefix only).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pymysql  # noqa: E402  (offline: the figures re-run statements on a connection of their own)
from peewee import SQL, fn  # noqa: E402

from conf import Settings, load_settings_or_exit  # noqa: E402
from models import Match, Preferences, Swipe, User, db, init_db  # noqa: E402
from models.base import utcnow  # noqa: E402
from services import keys, recommendations  # noqa: E402
from services.accounts import find_or_register, forget_account, load_account  # noqa: E402
from services.location import cells, nearby  # noqa: E402
from services.profiles import today  # noqa: E402
from services.redis_client import build_redis  # noqa: E402
from services.robots import (CITY_CENTRES, ROBOT_PHONE_PREFIX, Spread, create_robots, random_cell,  # noqa: E402
                             robot_phone, timed_progress)
from services.tokens import start_session  # noqa: E402

VIEWER_PHONE = "13900000002"
VIEWER_AGE = 28
ROBOT_SEED = 5


def log(message: str) -> None:
    print(f"distance_fixtures: {message}", file=sys.stderr, flush=True)


def robots_where():
    return User.phone.between(robot_phone(1), ROBOT_PHONE_PREFIX + "9" * (11 - len(ROBOT_PHONE_PREFIX)))


async def ensure_robots(wanted: int, radius: float, settings: Settings) -> int:
    have = await User.select(fn.COUNT(SQL("*"))).where(robots_where()).aio_scalar()
    if have < wanted:
        log(f"{have} robots stored, creating {wanted - have} with positions")
        start = time.monotonic()
        await create_robots(count=wanted - have, seed=ROBOT_SEED + have, today=today(settings),
                            spread=Spread(near=None, radius_km=radius),
                            progress=timed_progress(lambda line: log(line.strip())))
        log(f"created {wanted - have} robots in {time.monotonic() - start:.1f} s")
    import random
    rng = random.Random(ROBOT_SEED)
    while True:  # robots of an earlier, position-less run get one
        rows = await (User.select(User.id, User.location).where(robots_where() & User.geo_cell.is_null())
                      .limit(5000).tuples().aio_execute())
        if not rows:
            break
        for user_id, city in rows:
            cell = random_cell(rng, CITY_CENTRES.get(city, CITY_CENTRES["北京"]), radius)
            await User.update(geo_cell=cell, geo_coarse=cells.coarse(cell), geo_updated_at=utcnow()).where(
                User.id == user_id).aio_execute()
        log(f"gave {len(rows)} position-less robots a position")
    return await User.select(fn.COUNT(SQL("*"))).where(robots_where()).aio_scalar()


async def ensure_viewer(phone: str, radius: int, settings: Settings, redis) -> int:
    user_id, _ = await find_or_register(phone=phone)
    day = today(settings)
    birthday = day.replace(year=day.year - VIEWER_AGE) - dt.timedelta(days=100)
    cell = cells.snap(*CITY_CENTRES["北京"])
    async with db.aio_atomic():
        await (User.update(gender="male", birthday=birthday, location="北京", vip_level=0, vip_expires_at=None,
                           geo_cell=cell, geo_coarse=cells.coarse(cell), geo_updated_at=utcnow(),
                           passport_cell=None, updated_at=utcnow())
               .where(User.id == user_id).aio_execute())
        await (Preferences.update(dating_gender="female", location="北京", min_dating_age=18, max_dating_age=45,
                                  min_distance=1, max_distance=radius)
               .where(Preferences.user == user_id).aio_execute())
    await forget_account(redis=redis, user_id=user_id)
    return user_id


async def ensure_swipes(viewer_id: int, count: int, settings: Settings, redis) -> list[int]:
    """Swipe exactly the first ``count`` people of the viewer's feed order."""
    await Swipe.delete().where(Swipe.user_id == viewer_id).aio_execute()
    await Match.delete().where((Match.user_a == viewer_id) | (Match.user_b == viewer_id)).aio_execute()
    account = await load_account(redis=redis, settings=settings, user_id=viewer_id)
    feed = await recommendations.feed_filter(account, settings)
    wanted, _ = await nearby.walk(origin=feed.origin, min_km=feed.min_km, max_km=feed.max_km, me=viewer_id,
                                  genders=feed.genders, oldest=feed.oldest_birthday,
                                  youngest=feed.youngest_birthday, exclude=[], limit=count + 10)
    if len(wanted) < count + 10:
        raise SystemExit(f"distance_fixtures: only {len(wanted)} people in range; need {count} + a page")
    base = utcnow() - dt.timedelta(days=2)
    rows = [(viewer_id, target, 1 if i % 10 == 9 else 0, base + dt.timedelta(seconds=17 * i))
            for i, target in enumerate(wanted[:count])]
    for start in range(0, len(rows), 2000):
        await Swipe.insert_many(rows[start:start + 2000], fields=[Swipe.user_id, Swipe.target_id, Swipe.action,
                                                                  Swipe.created_at]).aio_execute()
    await redis.delete(keys.superlikers(viewer_id), keys.feed_candidates(viewer_id))
    log(f"viewer {viewer_id}: swiped the first {count} of his feed; next page starts at {wanted[count]}")
    return wanted


class Recorder:
    """Every statement ``db.aio_execute_sql`` sends while active (for replaying them with counters)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple]] = []
        self._original = db.aio_execute_sql

    def __enter__(self) -> "Recorder":
        async def recording(sql, params=None, *args, **kwargs):
            self.statements.append((sql, tuple(params or ())))
            return await self._original(sql, params, *args, **kwargs)
        db.aio_execute_sql = recording  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc) -> None:
        db.aio_execute_sql = self._original  # type: ignore[method-assign]


def handler_reads(cur) -> dict[str, int]:
    """The session's ``Handler_read_*`` counters (a difference of two readings needs no RELOAD privilege, which
    ``FLUSH STATUS`` would)."""
    cur.execute("SHOW SESSION STATUS LIKE 'Handler_read%'")
    return {name: int(value) for name, value in cur.fetchall()}


def replay(settings: Settings, statements: list[tuple[str, tuple]], explain_first: bool) -> list[str]:
    url = settings.mysql
    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           database=url.database, charset="utf8mb4", autocommit=True)
    lines = []
    try:
        with conn.cursor() as cur:
            first = handler_reads(cur)
            second = handler_reads(cur)
            overhead = {name: second[name] - first.get(name, 0) for name in second}  # what one SHOW itself reads
            for index, (sql, params) in enumerate(statements):
                text = cur.mogrify(sql, params)
                if explain_first:
                    cur.execute("EXPLAIN " + text)
                    lines.append(f"EXPLAIN of statement {index + 1}:")
                    lines += ["  " + " ".join(str(v) for v in row) for row in cur.fetchall()]
                times = []
                for _ in range(7):
                    before = handler_reads(cur)
                    started = time.perf_counter()
                    cur.execute(text)
                    rows = cur.fetchall()
                    times.append(time.perf_counter() - started)
                    after = handler_reads(cur)
                    counters = {name: n for name in after
                                if (n := after[name] - before.get(name, 0) - overhead.get(name, 0)) > 0}
                times.sort()
                lines.append(f"statement {index + 1}: {len(text)} bytes, {text.count('UNION ALL') + 1} subqueries, "
                             f"{len(rows)} rows, median {times[3] * 1000:.2f} ms (client-side, 7 runs); "
                             f"{counters}")
    finally:
        conn.close()
    return lines


async def figures(viewer_id: int, settings: Settings, redis) -> list[str]:
    from services.location import coverage
    account = await load_account(redis=redis, settings=settings, user_id=viewer_id)
    await redis.delete(keys.feed_candidates(viewer_id))
    coverage._part.cache_clear()
    coverage._reach.cache_clear()
    started = time.perf_counter()
    with Recorder() as walk:
        page = await recommendations.recommend(redis=redis, settings=settings, account=account, limit=10)
    walk_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    with Recorder() as cached:
        again = await recommendations.recommend(redis=redis, settings=settings, account=account, limit=10)
    page_ms = (time.perf_counter() - started) * 1000
    swiped = {row[0] for row in await Swipe.select(Swipe.target_id).where(Swipe.user_id == viewer_id)
              .tuples().aio_execute()}
    if len(page) != 10 or swiped & {u.id for u in page} or [u.id for u in again] != [u.id for u in page]:
        raise SystemExit(f"distance_fixtures: feed check failed: {[u.id for u in page]}")
    lines = [f"first page (walk, cold coverage cache): {walk_ms:.1f} ms end to end in this process, "
             f"{len(walk.statements)} statements",
             *replay(settings, walk.statements, explain_first=True),
             f"next page (candidate list in Redis): {page_ms:.1f} ms end to end, {len(cached.statements)} statements",
             *replay(settings, cached.statements, explain_first=True)]
    return lines


async def run(settings: Settings, args: argparse.Namespace) -> None:
    keys.configure(settings.redis_prefix)
    init_db(settings, query_timeout=3600)
    redis = build_redis(settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        robots = await ensure_robots(args.robots, args.city_radius, settings)
        viewer_id = await ensure_viewer(args.viewer_phone, args.radius, settings, redis)
        await ensure_swipes(viewer_id, args.swipes, settings, redis)
        lines = await figures(viewer_id, settings, redis)
        await redis.delete(keys.feed_candidates(viewer_id))
        token = (await start_session(redis=redis, settings=settings, user_id=viewer_id)).access_token
        (out / "viewer.id").write_text(f"{viewer_id}\n")
        (out / "viewer.token").write_text(token + "\n")
        (out / "sql.txt").write_text("\n".join(lines) + "\n")
        summary = f"robots={robots} viewer_id={viewer_id} swipes={args.swipes} radius_km={args.radius}"
        (out / "summary.txt").write_text(summary + "\n")
        print(summary)
        print("\n".join(lines))
    finally:
        await redis.aclose()
        if db.is_connected:
            await db.aio_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fixtures and SQL figures for the feed by distance (idempotent).")
    parser.add_argument("--out", required=True)
    parser.add_argument("--robots", type=int, default=100_000)
    parser.add_argument("--city-radius", type=float, default=30.0, help="km around each city's centre (30)")
    parser.add_argument("--viewer-phone", default=VIEWER_PHONE)
    parser.add_argument("--swipes", type=int, default=5000)
    parser.add_argument("--radius", type=int, default=50, help="the viewer's max_distance in km (50)")
    args = parser.parse_args(argv)
    settings = load_settings_or_exit("bench.distance_fixtures")
    warnings.filterwarnings("ignore", module="aiomysql")
    asyncio.run(run(settings, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
