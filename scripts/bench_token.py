"""Print one valid access token for ``scripts/bench.sh``: ``python scripts/bench_token.py [--phone P]``.

Uses the settings from the environment (``SWIPER_*``) and the app's own services: finds or registers the bench
phone, opens a session (a token family in Redis) and prints only the access token on stdout. No SMS is involved.
The token lives ``SWIPER_ACCESS_TOKEN_TTL`` seconds; the caller sets it long enough for its run.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conf import Settings, load_settings_or_exit  # noqa: E402
from models import db, init_db  # noqa: E402
from services import keys  # noqa: E402
from services.accounts import find_or_register  # noqa: E402
from services.redis_client import build_redis  # noqa: E402
from services.tokens import start_session  # noqa: E402

BENCH_PHONE = "13900000000"


async def issue(settings: Settings, phone: str) -> str:
    keys.configure(settings.redis_prefix)
    init_db(settings)
    redis = build_redis(settings)
    try:
        user_id, _ = await find_or_register(phone=phone)
        pair = await start_session(redis=redis, settings=settings, user_id=user_id)
    finally:
        await redis.aclose()
        if db.is_connected:
            await db.aio_close()
    return pair.access_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print one access token for the bench user.")
    parser.add_argument("--phone", default=BENCH_PHONE, help=f"bench user's phone (default {BENCH_PHONE})")
    args = parser.parse_args(argv)
    settings = load_settings_or_exit("bench_token.py")
    warnings.filterwarnings("ignore", module="aiomysql")
    try:
        token = asyncio.run(issue(settings, args.phone))
    except OSError as exc:
        print(f"bench_token.py: cannot reach a dependency: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
