"""Seed a Swiper database for a load run, with the settings of an env file; prints JSON.

    python -m tests.ops.seed ENV_FILE --swipers 20 --targets 200

Creates ``targets`` robot users (scripts/manage.py's generator) and ``swipers`` users in 北京 with a profile, each
with a fresh access token: ``{"swipers": [{"id": 1, "token": "..."}], "targets": [ids]}``. Runs in its own
process (the app's database handle is a module global, which a pytest session already uses for its own DB).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from conf import load_settings  # noqa: E402
from models import Match, User, db, init_db  # noqa: E402
from models.base import utcnow  # noqa: E402
from services import keys, tokens  # noqa: E402
from services.accounts import find_or_register, forget_account  # noqa: E402
from services.redis_client import build_redis  # noqa: E402
from services.robots import create_robots  # noqa: E402
from tests.ops.stack import read_env_file  # noqa: E402

warnings.filterwarnings("ignore", module="aiomysql")


async def seed(env_file: Path, swipers: int, targets: int, pairs: int = 0) -> dict:
    settings = load_settings(read_env_file(env_file))
    keys.configure(settings.redis_prefix)
    init_db(settings)
    redis = build_redis(settings)
    try:
        before = await User.select(User.id).order_by(User.id.desc()).limit(1).aio_scalar() or 0
        await create_robots(count=targets, seed=7)
        target_ids = [row.id for row in await User.select(User.id).where(User.id > before).aio_execute()]
        out = []
        base = secrets.randbelow(10**6)
        for i in range(swipers):
            user_id, _ = await find_or_register(phone=f"137{(base * 100 + i) % 10**8:08d}")
            await User.update(gender="male", birthday=dt.date(1995, 5, 5), location="北京"
                              ).where(User.id == user_id).aio_execute()
            await forget_account(redis=redis, user_id=user_id)
            pair = await tokens.start_session(redis=redis, settings=settings, user_id=user_id)
            out.append({"id": user_id, "token": pair.access_token})
        matched = []
        for i in range(pairs):  # matched people, for the chat load (their match row is their conversation)
            people = []
            for side in (0, 1):
                user_id, _ = await find_or_register(phone=f"136{(base * 100 + 2 * i + side) % 10**8:08d}")
                session = await tokens.start_session(redis=redis, settings=settings, user_id=user_id)
                people.append({"id": user_id, "token": session.access_token})
            low, high = sorted(p["id"] for p in people)
            now = utcnow()
            await Match.insert(user_a=low, user_b=high, created_at=now, last_activity_at=now).on_conflict_ignore(
            ).aio_execute()
            matched.append(people)
        return {"swipers": out, "targets": target_ids, "pairs": matched}
    finally:
        await redis.aclose()
        if db.is_connected:
            await db.aio_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_file", type=Path)
    parser.add_argument("--swipers", type=int, default=20)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=0, help="matched pairs (chat load)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(seed(args.env_file, args.swipers, args.targets, args.pairs))))


if __name__ == "__main__":
    main()
