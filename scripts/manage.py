"""Operator commands: ``python scripts/manage.py migrate | grant-vip PHONE LEVEL (--days D | --until TIME)
| create-robots N [--seed S] [--batch B] [--near LAT,LNG --radius KM | --cities [--radius KM]]
| reports [--open] | ban USER --reason TEXT | unban USER`` (USER: a user id or a phone)."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import os
import sys
import time
import warnings
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conf import Settings, load_settings_or_exit  # noqa: E402
from models import db, init_db  # noqa: E402
from models.migrations import migrate  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

from services import keys, tokens  # noqa: E402
from services.errors import AppError, InvalidParamsError  # noqa: E402
from services.redis_client import build_redis  # noqa: E402
from services.robots import (DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, Spread, create_robots,  # noqa: E402
                             timed_progress)
from services.chat.events import EventPublisher  # noqa: E402
from services.phones import mask_phone, normalize_phone  # noqa: E402
from services.safety import bans, reports  # noqa: E402
from services.vip import grant_membership  # noqa: E402


def parse_until(raw: str, settings: Settings) -> dt.datetime:
    """An ISO time; without an offset it is read in ``SWIPER_TIMEZONE``. Returned as naive UTC."""
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {raw}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(settings.timezone))
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)


async def run_migrate(settings: Settings) -> None:
    applied = await migrate()
    print(f"migrations applied: {', '.join(applied) if applied else 'none (schema up to date)'}")
    # Best effort: without Redis, authentication checks revocations in MySQL anyway, so a deploy goes on.
    redis = build_redis(settings)
    try:
        restored = await tokens.restore_revocations(redis)
        print(f"session revocations in force written to Redis: {restored}")
    except (RedisError, OSError) as exc:
        print(f"manage.py: warning: Redis unreachable, revocations not rewritten ({exc}); run migrate again "
              "once it is back", file=sys.stderr)
    finally:
        await redis.aclose()


async def run_grant_vip(settings: Settings, args: argparse.Namespace) -> None:
    if args.until:
        until = parse_until(args.until, settings)
    else:
        until = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(days=args.days)
    try:
        phone = normalize_phone(args.phone)
    except ValueError as exc:
        raise InvalidParamsError(f"PHONE {args.phone!r}: {exc}") from None
    redis = build_redis(settings)
    try:
        user = await grant_membership(redis=redis, phone=phone, level=args.level, until=until)
    finally:
        await redis.aclose()
    expiry = f"until {user.vip_expires_at.isoformat()}Z" if user.vip_expires_at else "(no membership)"
    print(f"user {user.id}: level {user.vip_level} {expiry}")


async def run_create_robots(settings: Settings, args: argparse.Namespace) -> None:
    today = dt.datetime.now(zoneinfo.ZoneInfo(settings.timezone)).date()
    start = time.monotonic()
    spread = None
    if args.near is not None or args.cities:
        spread = Spread(near=args.near, radius_km=args.radius or (CITY_RADIUS_KM if args.cities else NEAR_RADIUS_KM))
    created = await create_robots(count=args.count, seed=args.seed, batch_size=args.batch, today=today,
                                  spread=spread, progress=timed_progress(lambda line: print(line, flush=True)))
    print(f"created {created} robots in {time.monotonic() - start:.1f} s")


def operator_name() -> str:
    """Who ran the command, for the ban record: SWIPER_OPERATOR if set, else the login name."""
    try:
        return os.environ.get("SWIPER_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _when(moment: dt.datetime, settings: Settings) -> str:
    zone = zoneinfo.ZoneInfo(settings.timezone)
    return moment.replace(tzinfo=dt.timezone.utc).astimezone(zone).strftime("%Y-%m-%d %H:%M")


async def run_reports(settings: Settings, args: argparse.Namespace) -> None:
    cases = await reports.list_cases(only_open=args.open)
    header = ("case", "reporter", "reported", "phone", "reason", "count", "opened at", "state")
    rows = [header] + [(str(c.id), str(c.reporter_id), str(c.reported_id),
                        mask_phone(c.reported_phone) if args.mask and c.reported_phone else c.reported_phone or "-",
                        c.reason, str(c.filings), _when(c.opened_at, settings), c.state) for c in cases]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
    print(f"{len(cases)} {'open ' if args.open else ''}case{'' if len(cases) == 1 else 's'}")


async def run_report(settings: Settings, args: argparse.Namespace) -> None:
    """One case's evidence: its filings and the messages copied into it."""
    if args.command == "close-report":
        await reports.close_case(args.case)
        print(f"case {args.case} closed")
        return
    filings = await reports.case_filings(args.case)
    print(f"case {args.case}: {len(filings)} filing{'' if len(filings) == 1 else 's'}")
    for reason, detail, filed_at in filings:
        print(f"  {_when(filed_at, settings)}  {reason}: {detail or '(no detail)'}")
    copies = await reports.case_messages(args.case)
    print(f"messages copied: {len(copies)}")
    for _message_id, seq, sender_id, text, sent_at in copies:
        print(f"  #{seq} {_when(sent_at, settings)} from {sender_id}: {text}")


async def run_ban(settings: Settings, args: argparse.Namespace) -> None:
    redis = build_redis(settings)
    try:
        if args.command == "ban":
            user = await bans.ban_user(redis=redis, events=EventPublisher(redis), ref=args.user, reason=args.reason,
                                       operator=operator_name())
            print(f"user {user.id} ({mask_phone(user.phone)}) banned at {_when(user.banned_at, settings)}: "
                  f"{user.ban_reason}; every session ended")
        else:
            user = await bans.unban_user(redis=redis, ref=args.user, operator=operator_name())
            print(f"user {user.id} ({mask_phone(user.phone)}) unbanned; they log in again")
    finally:
        await redis.aclose()


async def run(settings: Settings, args: argparse.Namespace) -> None:
    keys.configure(settings.redis_prefix)
    init_db(settings, query_timeout=3600)  # schema changes and bulk inserts may take long; nothing waits on them
    try:
        if args.command == "migrate":
            await run_migrate(settings)
        elif args.command == "grant-vip":
            await run_grant_vip(settings, args)
        elif args.command == "create-robots":
            await run_create_robots(settings, args)
        elif args.command == "reports":
            await run_reports(settings, args)
        elif args.command in ("report", "close-report"):
            await run_report(settings, args)
        elif args.command in ("ban", "unban"):
            await run_ban(settings, args)
    finally:
        if db.is_connected:
            await db.aio_close()


NEAR_RADIUS_KM, CITY_RADIUS_KM = 10.0, 30.0


def _lat_lng(raw: str) -> tuple[float, float]:
    try:
        lat, lng = (float(part) for part in raw.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LNG in degrees: {raw}") from None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):  # also refuses nan
        raise argparse.ArgumentTypeError(f"LAT must be within -90..90 and LNG within -180..180: {raw}")
    return lat, lng


def _radius(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw}") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1000 km: {raw}")
    return value


def _positive_int(raw: str, highest: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {raw}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {raw}")
    if highest is not None and value > highest:
        raise argparse.ArgumentTypeError(f"must be at most {highest}: {raw}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manage.py", description="Swiper operator commands.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the schema and the VIP catalogue (idempotent)")
    grant = sub.add_parser("grant-vip", help="set a user's VIP level (level 0 ends a membership)")
    grant.add_argument("phone")
    grant.add_argument("level", type=int)
    when = grant.add_mutually_exclusive_group(required=True)
    when.add_argument("--days", type=int, help="membership length from now")
    when.add_argument("--until", help="end time (ISO 8601; SWIPER_TIMEZONE if no offset; past = expired)")
    robots = sub.add_parser("create-robots", help="add N random users (phones 154xxxxxxxx) with preferences")
    robots.add_argument("count", type=_positive_int, metavar="N")
    robots.add_argument("--seed", type=int, help="make the generated people repeatable")
    robots.add_argument("--batch", type=lambda raw: _positive_int(raw, MAX_BATCH_SIZE), default=DEFAULT_BATCH_SIZE,
                        help=f"rows per INSERT statement, 1..{MAX_BATCH_SIZE} (default {DEFAULT_BATCH_SIZE})")
    where = robots.add_mutually_exclusive_group()
    where.add_argument("--near", type=_lat_lng, metavar="LAT,LNG",
                       help="give the robots positions around this point (stored as H3 cells only); "
                            "write --near=LAT,LNG when LAT is negative")
    where.add_argument("--cities", action="store_true",
                       help="give each robot a position around its own city's centre")
    robots.add_argument("--radius", type=_radius, metavar="KM",
                        help=f"how far from the centre (default {NEAR_RADIUS_KM:g} with --near, "
                             f"{CITY_RADIUS_KM:g} with --cities)")
    listing = sub.add_parser("reports", help="report cases, newest first (one line per case)")
    listing.add_argument("--open", action="store_true", help="only the cases still open")
    listing.add_argument("--mask", action="store_true", help="show phones masked (138****8000)")
    for name, what in (("report", "one case's filings (reason, detail) and the messages copied into it"),
                       ("close-report", "close a case (a later report of the same user opens a new one)")):
        one = sub.add_parser(name, help=what)
        one.add_argument("case", metavar="CASE", type=_positive_int, help="the case id (the first column of reports)")
    ban = sub.add_parser("ban", help="ban a user: every session ends at once, logins answer 1013, hidden from all")
    ban.add_argument("user", metavar="USER", help="a user id or a phone")
    ban.add_argument("--reason", required=True, help="why (shown to the user as data.reason, and recorded)")
    unban = sub.add_parser("unban", help="lift a ban (tokens from before it stay dead: the user logs in again)")
    unban.add_argument("user", metavar="USER", help="a user id or a phone")
    args = parser.parse_args(argv)
    if args.command == "create-robots" and args.radius is not None and args.near is None and not args.cities:
        parser.error("--radius needs --near or --cities")
    settings = load_settings_or_exit("manage.py")
    warnings.filterwarnings("ignore", module="aiomysql")
    try:
        asyncio.run(run(settings, args))
    except AppError as exc:
        print(f"manage.py: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"manage.py: cannot reach a dependency: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
