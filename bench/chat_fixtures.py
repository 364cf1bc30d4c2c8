"""The chat benchmark's data set: ``python -m bench.chat_fixtures --out DIR --pairs P`` (bench settings only).

Idempotent: every run leaves the same state, whatever was there before.

- **Pairs.** ``--pairs`` matched pairs of plain users (phones ``156`` + 8 digits: pair i is 156000(2i+1) and
  156000(2i+2), zero-padded), each pair one ``match`` row (the conversation). Pairs beyond ``--pairs`` that an
  earlier, larger run made are left alone (they get no tokens, so no socket).
- **A clean conversation.** The pairs' messages of earlier runs are deleted and their conversations' ``last_seq``
  and read positions reset to 0, and the users' event streams (``keys.event_stream``) deleted, so every run
  starts from seq 1 with no replay and Redis does not grow from run to run.
- **Files in DIR:** ``pairs.tsv``, one pair a line: ``a_id a_token b_id b_token`` (``a`` the lower id), and
  ``summary.txt``.

Tokens live ``SWIPER_ACCESS_TOKEN_TTL`` seconds (the caller sets it long enough). Uses the ``SWIPER_*`` settings
from the environment: run it with the bench database and Redis db/prefix only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a file too

from bench.fixtures import connected, run_step  # noqa: E402
from conf import Settings  # noqa: E402
from models import Match, Message  # noqa: E402
from models.base import utcnow  # noqa: E402
from services import keys  # noqa: E402
from services.accounts import find_or_register, forget_account  # noqa: E402
from services.tokens import start_session  # noqa: E402

PHONE_PREFIX = "156"
MAX_PAIRS = 49_999_999


def log(message: str) -> None:
    print(f"bench.chat_fixtures: {message}", file=sys.stderr, flush=True)


def phone(n: int) -> str:
    """The n-th chat user's phone (1-based): 156 and 8 digits."""
    return f"{PHONE_PREFIX}{n:08d}"


async def ensure_pairs(count: int, redis) -> list[tuple[int, int, int]]:
    """(match id, lower user id, higher user id) of each pair, made where missing."""
    pairs = []
    for i in range(count):
        a, _ = await find_or_register(phone=phone(2 * i + 1))
        b, _ = await find_or_register(phone=phone(2 * i + 2))
        low, high = min(a, b), max(a, b)
        match_id = await Match.select(Match.id).where((Match.user_a == low) & (Match.user_b == high)).aio_scalar()
        if match_id is None:
            now = utcnow()
            match_id = await (Match.insert(user_a=low, user_b=high, created_at=now, last_activity_at=now)
                              .on_conflict_ignore().aio_execute())
            if not match_id:
                match_id = await (Match.select(Match.id).where((Match.user_a == low) & (Match.user_b == high))
                                  .aio_scalar())
        pairs.append((match_id, low, high))
    return pairs


async def reset_conversations(pairs: list[tuple[int, int, int]], redis) -> int:
    ids = [m for m, _, _ in pairs]
    deleted = 0
    for start in range(0, len(ids), 2000):
        chunk = ids[start:start + 2000]
        deleted += await Message.delete().where(Message.match_id.in_(chunk)).aio_execute()
        await (Match.update(last_seq=0, a_read_seq=0, b_read_seq=0).where(Match.id.in_(chunk)).aio_execute())
    users = [u for _, a, b in pairs for u in (a, b)]
    for start in range(0, len(users), 1000):
        await redis.delete(*[keys.event_stream(u) for u in users[start:start + 1000]])
    for user_id in users:
        await forget_account(redis=redis, user_id=user_id)
    return deleted


async def run(settings: Settings, args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    async with connected(settings) as redis:
        started = time.monotonic()
        pairs = await ensure_pairs(args.pairs, redis)
        deleted = await reset_conversations(pairs, redis)
        lines = []
        for _, a, b in pairs:
            token_a = (await start_session(redis=redis, settings=settings, user_id=a)).access_token
            token_b = (await start_session(redis=redis, settings=settings, user_id=b)).access_token
            lines.append(f"{a} {token_a} {b} {token_b}\n")
        (out / "pairs.tsv").write_text("".join(lines))
        summary = (f"pairs={len(pairs)} users={2 * len(pairs)} (phones {phone(1)}..{phone(2 * len(pairs))}) "
                   f"messages_of_earlier_runs_deleted={deleted} seconds={time.monotonic() - started:.1f}")
        (out / "summary.txt").write_text(summary + "\n")
        log(summary)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_fixtures",
                                     description="The chat benchmark's matched pairs (idempotent).")
    parser.add_argument("--out", required=True, help="directory for pairs.tsv and summary.txt")
    parser.add_argument("--pairs", type=int, required=True, help="matched pairs to have")
    args = parser.parse_args(argv)
    if not 1 <= args.pairs <= MAX_PAIRS:
        parser.error(f"--pairs 1..{MAX_PAIRS}")
    return run_step("bench.chat_fixtures", run, args)


if __name__ == "__main__":
    sys.exit(main())
