"""What the load does: a mix of reads and writes by seeded users, and the check of the writes in MySQL."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pymysql

from conf import parse_mysql_url
from tests.ops.load import Record, Request
from tests.ops.stack import ROOT, clean_env

# op: share of requests. The writes are dislikes (no daily quota), each (swiper, target) pair used once, so
# every 2xx answer is exactly one new row in `swipe` and every row has an answer.
MIX = {"swipe": 0.30, "profile": 0.25, "feed": 0.15, "user": 0.20, "hot": 0.10}
# For hunting races that only writes show (nginx never replays a POST it has sent).
WRITE_HEAVY = {"swipe": 0.80, "profile": 0.20}


def seed(env_file: Path, swipers: int = 20, targets: int = 200, pairs: int = 0) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "tests.ops.seed", str(env_file), "--swipers", str(swipers),
                          "--targets", str(targets), "--pairs", str(pairs)], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"seeding failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Workload:
    def __init__(self, seeded: dict[str, Any], seed: int = 1, mix: dict[str, float] | None = None) -> None:
        self.swipers = seeded["swipers"]
        self.targets = seeded["targets"]
        pairs = [(s["id"], s["token"], t) for s in self.swipers for t in self.targets]
        random.Random(seed).shuffle(pairs)
        self._pairs = iter(pairs)
        mix = mix or MIX
        self._ops = list(mix)
        self._weights = list(mix.values())

    def next_request(self, rng: random.Random) -> Request:
        op = rng.choices(self._ops, self._weights)[0]
        swiper = rng.choice(self.swipers)
        auth = {"Authorization": f"Bearer {swiper['token']}"}
        if op == "swipe":
            pair = next(self._pairs, None)
            if pair is None:
                op = "profile"
            else:
                user_id, token, target = pair
                body = json.dumps({"user_id": target, "action": "dislike"}).encode()
                return Request("swipe", "POST", "/api/v1/swipes", {"Authorization": f"Bearer {token}",
                               "Content-Type": "application/json"}, body, key=(user_id, target))
        if op == "profile":
            return Request(op, "GET", "/api/v1/profile", auth)
        if op == "feed":
            return Request(op, "GET", "/api/v1/recommendations?limit=5", auth)
        if op == "user":
            return Request(op, "GET", f"/api/v1/users/{rng.choice(self.targets)}", auth)
        return Request("hot", "GET", "/api/v1/rankings/hot?limit=5", auth)


# Issue 10 item 8's workload (a rolling restart once left requests hanging under it): the signed-in user's
# profile read and edited, and the public VIP catalogue. The PATCH is a write nginx never replays once sent.
PROFILE_MIX = {"profile": 0.50, "patch": 0.25, "levels": 0.25}


class ProfileWorkload:
    """GET and PATCH /api/v1/profile by the seeded users, GET /api/v1/vip/levels (no authentication)."""

    def __init__(self, seeded: dict[str, Any], mix: dict[str, float] | None = None) -> None:
        self.swipers = seeded["swipers"]
        mix = mix or PROFILE_MIX
        self._ops = list(mix)
        self._weights = list(mix.values())

    def next_request(self, rng: random.Random) -> Request:
        op = rng.choices(self._ops, self._weights)[0]
        auth = {"Authorization": f"Bearer {rng.choice(self.swipers)['token']}"}
        if op == "patch":
            # Always valid (min_distance stays 1): every answer should be 200.
            body = json.dumps({"preferences": {"max_distance": rng.randint(10, 1000)}}).encode()
            return Request("patch", "PATCH", "/api/v1/profile", {**auth, "Content-Type": "application/json"}, body)
        if op == "levels":
            return Request("levels", "GET", "/api/v1/vip/levels")
        return Request("profile", "GET", "/api/v1/profile", auth)


def answered_writes(records: list[Record]) -> set[tuple[int, int]]:
    return {r.key for r in records if r.op == "swipe" and r.status is not None and 200 <= r.status < 300}


def stored_writes(mysql_url: str, swiper_ids: list[int]) -> set[tuple[int, int]]:
    url = parse_mysql_url(mysql_url)
    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           database=url.database, autocommit=True)
    try:
        with conn.cursor() as cur:
            marks = ",".join(["%s"] * len(swiper_ids))
            cur.execute(f"SELECT user_id, target_id FROM swipe WHERE user_id IN ({marks})", swiper_ids)
            return {(int(a), int(b)) for a, b in cur.fetchall()}
    finally:
        conn.close()
