"""How many lag-tolerant reads a read replica takes under a mixed workload, with read-your-writes checked.

    .venv/bin/python -m bench.replicas [--users N] [--rounds R] [--delay S] [--window S]

Starts a MariaDB primary and a GTID replica of it in temporary datadirs (tests/support/replication.py), replication
held ``--delay`` seconds behind (``MASTER_DELAY``, a replica that answers but lags), migrates, runs one
``server.py`` with ``SWIPER_MYSQL_REPLICA_URLS`` (``--window``: the read-your-writes window, default 5 s; 0 turns it
off, to watch the checks fail; max lag at its default, 5 s), the
Aliyun SMS stub and the machine's Redis (db 14, its own prefix). N users sign in; half of them have liked their
partner. Each round every user reads their matches list and the hot ranking; in one round of four, a quarter of
the not-yet-matched users like their partner back and read their matches list at once: the new match must be
there (their own write, while the replica is still behind). Prints the lag-tolerant reads by target (from
``/metrics``), the replica's share, and the read-your-writes checks; exits 1 if any check failed.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from tests.stubs.aliyun_sms import AliyunSmsStub  # noqa: E402
from tests.support.client import Client  # noqa: E402
from tests.support.processes import ServerProcess  # noqa: E402
from tests.support.replication import replicated_pair, run, wait_caught_up  # noqa: E402

KEY_ID, KEY_SECRET = "LTAI-bench", "bench-secret-" + secrets.token_hex(4)
REDIS_URL = os.environ.get("SWIPER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


async def _forget(url: str, prefix: str) -> None:
    """Delete every key the run made."""
    client = Redis.from_url(url)
    try:
        batch = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


async def sign_in(client: Client, stub: AliyunSmsStub, phone: str) -> tuple[int, str]:
    headers = {"X-Real-IP": f"10.9.{secrets.randbelow(250)}.{secrets.randbelow(250)}"}
    assert (await client.post("/api/v1/sms-codes", {"phone": phone}, headers=headers)).status == 200
    answer = await client.post("/api/v1/sessions", {"phone": phone, "code": stub.last_code(phone)}, headers=headers)
    return answer.data["user"]["id"], answer.data["access_token"]


async def reads(client: Client) -> dict[str, float]:
    await asyncio.sleep(1.05)  # /metrics renders at most once a second
    text = (await client.get("/metrics")).body.decode()
    return {t: float(v) for t, v in re.findall(r'^swiper_mysql_lag_tolerant_reads_total{target="(\w+)"} (\S+)$',
                                                  text, re.M)}


async def workload(base_url: str, stub: AliyunSmsStub, users: int, rounds: int, window: float
                   ) -> tuple[dict, int, int]:
    client = Client(base_url, check_contract=False)
    people = [await sign_in(client, stub, f"166{secrets.randbelow(10**8):08d}") for _ in range(users - users % 2)]
    pairs = list(zip(people[0::2], people[1::2]))
    for (a_id, _), (_, b_token) in pairs:  # b has liked a; a likes back later
        assert (await client.post("/api/v1/swipes", {"user_id": a_id, "action": "like"}, token=b_token)).status == 200
    await asyncio.sleep(window + 1)  # past everyone's read-your-writes window: reads may go to the replica
    start = await reads(client)
    waiting, checks, failures = list(pairs), 0, 0

    async def like_back(a, b) -> bool:
        liked = await client.post("/api/v1/swipes", {"user_id": b[0], "action": "like"}, token=a[1])
        assert liked.status == 200 and liked.data["matched"], liked.body
        mine = await client.get("/api/v1/matches", token=a[1])
        return [m["id"] for m in mine.data["items"]] == [b[0]]

    for round_no in range(rounds):
        await asyncio.gather(*(client.get(path, token=token) for _, token in people
                               for path in ("/api/v1/matches", "/api/v1/rankings/hot")))
        if round_no % 4 == 0 and waiting:
            batch, waiting = waiting[:max(1, len(pairs) // 4)], waiting[max(1, len(pairs) // 4):]
            results = await asyncio.gather(*(like_back(a, b) for a, b in batch))
            checks += len(results)
            failures += results.count(False)
    end = await reads(client)
    return {t: end.get(t, 0) - start.get(t, 0) for t in ("primary", "replica")}, checks, failures


async def main_async(args: argparse.Namespace) -> int:
    stub = AliyunSmsStub(KEY_ID, KEY_SECRET)
    await stub.start()
    try:
        with replicated_pair() as (primary, replica):
            env = {**os.environ, "SWIPER_MYSQL_URL": primary.url, "SWIPER_ENV": "test"}
            subprocess.run([sys.executable, "scripts/manage.py", "migrate"], cwd=ROOT, env=env, check=True,
                           capture_output=True, timeout=120)
            wait_caught_up(primary, replica)
            run(replica, "STOP SLAVE", f"CHANGE MASTER TO MASTER_DELAY={args.delay}", "START SLAVE")
            prefix = f"bench_replicas_{os.getpid()}:"
            server = ServerProcess({
                "SWIPER_ENV": "test", "SWIPER_MYSQL_URL": primary.url, "SWIPER_MYSQL_REPLICA_URLS": replica.url,
                "SWIPER_READ_YOUR_WRITES_WINDOW": str(args.window),
                "SWIPER_REDIS_URL": REDIS_URL, "SWIPER_REDIS_PREFIX": prefix,
                "SWIPER_JWT_SECRET": "bench-replicas-secret-long-enough-0123456789", "SWIPER_SMS_BACKEND": "aliyun",
                "SWIPER_ALIYUN_ACCESS_KEY_ID": KEY_ID, "SWIPER_ALIYUN_ACCESS_KEY_SECRET": KEY_SECRET,
                "SWIPER_ALIYUN_SMS_ENDPOINT": stub.endpoint, "SWIPER_ALIYUN_SMS_PROTOCOL": "http",
                "SWIPER_RATE_LIMIT_ENABLED": "false", "SWIPER_SMS_IP_DAY_LIMIT": "100000"})
            await server.start()
            try:
                began = time.monotonic()
                counts, checks, failures = await workload(server.base_url, stub, args.users, args.rounds,
                                                         args.window)
                took = time.monotonic() - began
            finally:
                server.stop()
                await _forget(REDIS_URL, prefix)
    finally:
        await stub.stop()
    total = counts["primary"] + counts["replica"]
    print(f"\n`.venv/bin/python -m bench.replicas --users {args.users} --rounds {args.rounds} --delay {args.delay} --window {args.window:g}`"
          f" ({took:.0f} s)\n")
    print("| lag-tolerant reads on the primary | on the replica | replica share | read-your-writes checks | failed |")
    print("|---|---|---|---|---|")
    print(f"| {counts['primary']:.0f} | {counts['replica']:.0f} | {counts['replica'] / max(total, 1):.1%} | "
          f"{checks} | {failures} |")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--delay", type=int, default=2, help="seconds the replica is held behind (MASTER_DELAY)")
    parser.add_argument("--window", type=float, default=5.0, help="SWIPER_READ_YOUR_WRITES_WINDOW (0: off)")
    raise SystemExit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
