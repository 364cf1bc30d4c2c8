"""The benchmarks' data set: ``python -m bench.fixtures --out DIR [options]`` (run with the bench settings only).

Idempotent: every run leaves the same state, whatever was there before.

- **Robots.** At least ``--robots`` (default 100,000) users with a robot phone (prefix ``154``, as
  ``services.robots`` defines it); the missing ones are made with ``services.robots.create_robots``.
- **Viewer** (``--viewer-phone``, default 13900000001): male, 28 years old, in the robots' biggest city (北京),
  looking for women aged 18..45 there, level 0 (so the feed searches his own city). He has swiped exactly the
  ``--viewer-swipes`` (default 5,000) robots that his feed would otherwise show first, i.e. the most recently active
  robots matching his filter, so every feed request has to step over all of them before it finds a page: the worst
  case of the ``user_feed`` walk. The swipes are inserted directly (9 in 10 dislikes, every 10th a like; robots
  never swipe back, so there are no matches and no quotas involved).
- **Swipers** (``--swipers``, default 100; phones 13900100001, ...): level 2 (unlimited likes) until 30 days from
  now, no profile (so they never show up in the viewer's feed). Their swipes from earlier runs are deleted, so
  each run starts from the same table, and every robot's cached account (``cache:User:<id>`` in Redis) is
  dropped, so a swipe's target is read from MySQL the first time it is swiped, as it usually is for real.
- **The profile user** (``--profile-phone``, default 13900000000): a plain account whose token reads the profile.
- **Login users** (``--reset-logins``): the previous run's login users (phones 155 + 8 digits, see
  ``bench/lua/login.lua``) are deleted with their swipes and matches, and their Redis keys (codes, SMS limits,
  cached accounts), so every run logs in new users.
- **Files in DIR** for the benchmarks and ``bench/lua/swipes.lua``: ``viewer.token``, ``viewer.id``,
  ``profile.token``, ``swiped.ids`` (the viewer's swiped robots, one a line), ``swipers.tokens`` (one access token
  a line, in the order of ``swipers.ids``), ``swipers.ids`` (comma-separated), ``targets.ranges`` (robot ids as
  ``low high`` runs of consecutive ids, ascending), ``targets.count``, ``feed.sql`` (the main feed query of the
  viewer, as ``services.recommendations`` builds it, with its parameters inlined, for EXPLAIN),
  ``feed_covering.sql`` and ``feed_watermark.sql`` (two rewrites to compare it with, see ``feed_sqls``) and
  ``summary.txt``.

Tokens live ``SWIPER_ACCESS_TOKEN_TTL`` seconds (the caller sets it long enough). Uses the ``SWIPER_*`` settings
from the environment: run it with the bench database and Redis db/prefix only.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a file too

from peewee import SQL, fn  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from conf import Settings, load_settings_or_exit  # noqa: E402
from models import Match, Preferences, Swipe, User, db, init_db  # noqa: E402
from models.base import utcnow  # noqa: E402
from services import keys, recommendations  # noqa: E402
from services.accounts import find_or_register, forget_account, load_account  # noqa: E402
from bench.feed_sql import feed_sqls  # noqa: E402
from services.profiles import today  # noqa: E402
from services.redis_client import build_redis  # noqa: E402
from services.robots import ROBOT_PHONE_PREFIX, create_robots, robot_phone, timed_progress  # noqa: E402
from services.tokens import start_session  # noqa: E402
from services.vip import grant_membership  # noqa: E402

VIEWER_PHONE = "13900000001"
PROFILE_PHONE = "13900000000"
LOGIN_PHONES = ("15500000000", "15599999999")  # bench/lua/login.lua's range
VIEWER_CITY = "北京"  # the robots' most common city (services.robots.CITIES)
VIEWER_AGE = 28
SWIPER_PHONE_BASE = 13900100000  # swiper i (1-based) has phone SWIPER_PHONE_BASE + i
ROBOT_SEED = 3


def log(message: str) -> None:
    print(f"bench.fixtures: {message}", file=sys.stderr, flush=True)


def years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def robot_phone_range():
    """Robot phones: the prefix and 8 digits (services.robots), as a range the phone's unique key answers."""
    return User.phone.between(robot_phone(1), ROBOT_PHONE_PREFIX + "9" * (11 - len(ROBOT_PHONE_PREFIX)))


async def ensure_robots(wanted: int, settings: Settings) -> int:
    have = await User.select(fn.COUNT(SQL("*"))).where(robot_phone_range()).aio_scalar()
    if have < wanted:
        log(f"{have} robots (phones {ROBOT_PHONE_PREFIX}xxxxxxxx) stored, creating {wanted - have}")
        start = time.monotonic()
        await create_robots(count=wanted - have, seed=ROBOT_SEED + have, today=today(settings),
                            progress=timed_progress(lambda line: log(line.strip())))
        log(f"created {wanted - have} robots in {time.monotonic() - start:.1f} s")
        have = wanted
    else:
        log(f"{have} robots stored (wanted {wanted}): none created")
    return have


async def ensure_viewer(phone: str, settings: Settings, redis) -> int:
    user_id, _ = await find_or_register(phone=phone)
    birthday = years_before(today(settings), VIEWER_AGE) - dt.timedelta(days=100)
    now = utcnow()
    async with db.aio_atomic():
        await (User.update(gender="male", birthday=birthday, location=VIEWER_CITY, vip_level=0, vip_expires_at=None,
                           updated_at=now)
               .where(User.id == user_id).aio_execute())
        await (Preferences.update(dating_gender="female", location=VIEWER_CITY, min_dating_age=18, max_dating_age=45)
               .where(Preferences.user == user_id).aio_execute())
    await forget_account(redis=redis, user_id=user_id)
    return user_id


def feed_candidates_query(account, settings: Settings):
    """The viewer's feed filter without the swipe anti-join, in feed order (mirrors services.recommendations)."""
    me, prefs = account.user, account.prefs
    day = today(settings)
    oldest = years_before(day, prefs.max_dating_age + 1) + dt.timedelta(days=1)
    youngest = years_before(day, prefs.min_dating_age)
    return (User.select(User.id, User.last_active_at)
            .where((User.location == me.location) & User.gender.in_([prefs.dating_gender])
                   & User.birthday.between(oldest, youngest) & (User.id != me.id))
            .order_by(User.last_active_at.desc()))


async def ensure_viewer_swipes(viewer_id: int, count: int, settings: Settings, redis) -> tuple[list[int], int]:
    """Swipe exactly the ``count`` first users of the viewer's unswiped feed order; returns them and the pool size."""
    account = await load_account(redis=redis, settings=settings, user_id=viewer_id)
    query = feed_candidates_query(account, settings)
    pool = await User.select(fn.COUNT(SQL("*"))).from_(query.order_by().alias("q")).aio_scalar()
    if pool < count + 100:
        raise SystemExit(f"bench.fixtures: only {pool} users match the viewer's feed; need {count} + a page")
    wanted = [row[0] for row in await query.limit(count).tuples().aio_execute()]
    wanted_set = set(wanted)
    have = {row[0] for row in await Swipe.select(Swipe.target_id).where(Swipe.user_id == viewer_id)
            .tuples().aio_execute()}
    extra = have - wanted_set
    missing = [t for t in wanted if t not in have]
    if extra:
        await Swipe.delete().where((Swipe.user_id == viewer_id) & Swipe.target_id.in_(list(extra))).aio_execute()
        await Match.delete().where(((Match.user_a == viewer_id) | (Match.user_b == viewer_id))).aio_execute()
    if missing:
        base = utcnow() - dt.timedelta(days=2)
        rows = [(viewer_id, target, 1 if i % 10 == 9 else 0, base + dt.timedelta(seconds=17 * i))
                for i, target in enumerate(missing)]
        for start in range(0, len(rows), 2000):
            await (Swipe.insert_many(rows[start:start + 2000],
                                     fields=[Swipe.user_id, Swipe.target_id, Swipe.action, Swipe.created_at])
                   .on_conflict_ignore().aio_execute())
    log(f"viewer {viewer_id}: {pool} users match the feed filter; swipes on the first {count}: "
        f"{len(missing)} inserted, {len(extra)} stray ones deleted")
    await redis.delete(keys.superlikers(viewer_id))
    return wanted, pool


async def check_feed(viewer_id: int, swiped: list[int], settings: Settings, redis) -> list[int]:
    """The real service's first page: 10 unswiped users, none more recently active than the least recent swiped."""
    account = await load_account(redis=redis, settings=settings, user_id=viewer_id)
    page = await recommendations.recommend(redis=redis, settings=settings, account=account, limit=10)
    ids = [u.id for u in page]
    swiped_set = set(swiped)
    if len(ids) != 10 or swiped_set & set(ids):
        raise SystemExit(f"bench.fixtures: feed check failed: page {ids}")
    if not swiped:
        return ids
    oldest_swiped = await User.select(fn.MIN(User.last_active_at)).where(User.id.in_(swiped)).aio_scalar()
    newest_shown = await User.select(fn.MAX(User.last_active_at)).where(User.id.in_(ids)).aio_scalar()
    if newest_shown > oldest_swiped:
        raise SystemExit("bench.fixtures: the feed shows someone more recently active than a swiped user; "
                         "the swipes are not the feed's head")
    return ids


async def ensure_swipers(n: int, redis) -> list[int]:
    ids = []
    until = utcnow() + dt.timedelta(days=30)
    for i in range(1, n + 1):
        phone = str(SWIPER_PHONE_BASE + i)
        user_id, _ = await find_or_register(phone=phone)
        row = await (User.select(User.vip_level, User.vip_expires_at, User.location).where(User.id == user_id)
                     .aio_first())
        if row.vip_level != 2 or row.vip_expires_at is None or row.vip_expires_at < utcnow() + dt.timedelta(days=1):
            await grant_membership(redis=redis, phone=phone, level=2, until=until)
        ids.append(user_id)
    # Earlier runs' swipes go, so each run writes into the same table; no swiper ever gets a match (robots
    # never swipe), but clear any anyway.
    deleted = await Swipe.delete().where(Swipe.user_id.in_(ids)).aio_execute()
    await Match.delete().where(Match.user_a.in_(ids) | Match.user_b.in_(ids)).aio_execute()
    for user_id in ids:
        await forget_account(redis=redis, user_id=user_id)  # so the run reads the level-2 rows
    log(f"{n} swipers (ids {min(ids)}..{max(ids)}, level 2); {deleted} swipes of earlier runs deleted")
    return ids


async def robot_ids() -> list[int]:
    return [row[0] for row in await User.select(User.id).where(robot_phone_range()).order_by(User.id)
            .tuples().aio_execute()]


def ranges(ids: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in ids:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


async def drop_cached_accounts(redis, ids: list[int]) -> int:
    dropped = 0
    for start in range(0, len(ids), 5000):
        names = [keys.model_cache("User", i) for i in ids[start:start + 5000]]
        dropped += await redis.unlink(*names)
    return dropped


async def reset_logins(redis) -> None:
    """Delete the previous runs' login users (with what refers to them) and their Redis keys."""
    in_range = User.phone.between(*LOGIN_PHONES)
    ids = [row[0] for row in await User.select(User.id).where(in_range).tuples().aio_execute()]
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        await Swipe.delete().where(Swipe.user_id.in_(chunk) | Swipe.target_id.in_(chunk)).aio_execute()
        await Match.delete().where(Match.user_a.in_(chunk) | Match.user_b.in_(chunk)).aio_execute()
    await User.delete().where(in_range).aio_execute()  # preferences go with them (ON DELETE CASCADE)
    names = []
    for pattern in (keys.sms_code("155*"), keys.sms_cooldown("155*"), keys.sms_hour("155*"), keys.sms_day("155*"),
                    keys.sms_ip_day("*")):
        names += [name async for name in redis.scan_iter(match=pattern, count=1000)]
    for user_id in ids:
        names += [keys.model_cache("User", user_id), keys.model_cache_version("User", user_id), keys.active(user_id)]
    deleted = 0
    for start in range(0, len(names), 1000):
        deleted += await redis.delete(*names[start:start + 1000])
    log(f"deleted {len(ids)} login users of the previous run and {deleted} of their Redis keys")


@contextlib.asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Redis]:
    """The app's keys, database and a Redis client for a fixtures step; both closed at the end."""
    keys.configure(settings.redis_prefix)
    init_db(settings)
    redis = build_redis(settings)
    try:
        yield redis
    finally:
        await redis.aclose()
        if db.is_connected:
            await db.aio_close()


def run_step(prog: str, run: Callable[[Settings, argparse.Namespace], Awaitable[None]],
             args: argparse.Namespace) -> int:
    """A fixtures step's main: the bench settings from the environment, then ``run``; 1 for a dead dependency."""
    settings = load_settings_or_exit(prog)
    warnings.filterwarnings("ignore", module="aiomysql")
    try:
        asyncio.run(run(settings, args))
    except OSError as exc:
        print(f"{prog}: cannot reach a dependency: {exc}", file=sys.stderr)
        return 1
    return 0


async def run(settings: Settings, args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    async with connected(settings) as redis:
        if args.reset_logins:
            await reset_logins(redis)
        robots = await ensure_robots(args.robots, settings)
        viewer_id = await ensure_viewer(args.viewer_phone, settings, redis)
        swiped, pool = await ensure_viewer_swipes(viewer_id, args.viewer_swipes, settings, redis)
        page = await check_feed(viewer_id, swiped, settings, redis)
        swiper_ids = await ensure_swipers(args.swipers, redis)
        targets = await robot_ids()
        dropped = await drop_cached_accounts(redis, targets)
        log(f"{len(targets)} robot targets; {dropped} cached robot accounts dropped from Redis")
        viewer_token = (await start_session(redis=redis, settings=settings, user_id=viewer_id)).access_token
        swiper_tokens = [(await start_session(redis=redis, settings=settings, user_id=i)).access_token
                         for i in swiper_ids]
        profile_id, _ = await find_or_register(phone=args.profile_phone)
        profile_token = (await start_session(redis=redis, settings=settings, user_id=profile_id)).access_token
        (out / "profile.token").write_text(profile_token + "\n")
        (out / "targets.count").write_text(f"{len(targets)}\n")
        (out / "viewer.id").write_text(f"{viewer_id}\n")
        (out / "viewer.token").write_text(viewer_token + "\n")
        (out / "swiped.ids").write_text("".join(f"{i}\n" for i in swiped))
        (out / "swipers.ids").write_text(",".join(map(str, swiper_ids)) + "\n")
        (out / "swipers.tokens").write_text("".join(t + "\n" for t in swiper_tokens))
        (out / "targets.ranges").write_text("".join(f"{lo} {hi}\n" for lo, hi in ranges(targets)))
        for name, text in (await feed_sqls(viewer_id, swiped, settings, redis)).items():
            (out / f"{name}.sql").write_text(text + "\n")
        summary = (f"robots={robots} viewer_id={viewer_id} feed_pool={pool} viewer_swipes={len(swiped)} "
                   f"swipers={len(swiper_ids)} targets={len(targets)} first_page={','.join(map(str, page))}")
        (out / "summary.txt").write_text(summary + "\n")
        log(summary)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fixtures",
                                     description="The benchmarks' data set (idempotent).")
    parser.add_argument("--out", required=True, help="directory for the tokens, ids and SQL files")
    parser.add_argument("--robots", type=int, default=100_000, help="robots to have at least (default 100000)")
    parser.add_argument("--viewer-phone", default=VIEWER_PHONE, help=f"default {VIEWER_PHONE}")
    parser.add_argument("--viewer-swipes", type=int, default=5000, help="swipes of the viewer (default 5000)")
    parser.add_argument("--swipers", type=int, default=100, help="users for the swipe benchmark (default 100)")
    parser.add_argument("--profile-phone", default=PROFILE_PHONE, help=f"default {PROFILE_PHONE}")
    parser.add_argument("--reset-logins", action="store_true", help="delete the previous runs' login users")
    args = parser.parse_args(argv)
    if args.robots < 1 or args.viewer_swipes < 0 or not 1 <= args.swipers <= 9999:
        parser.error("--robots >= 1, --viewer-swipes >= 0, --swipers 1..9999")
    return run_step("bench.fixtures", run, args)


if __name__ == "__main__":
    sys.exit(main())
