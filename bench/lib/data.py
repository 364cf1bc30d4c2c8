"""The benchmarks' own database, Redis db and prefix, their settings, and the data set ``bench.fixtures`` makes.

Defaults: MySQL ``SWIPER_BENCH_MYSQL_URL`` (mysql://root:@127.0.0.1:3306/swiper_bench, created and migrated if
needed by ``SWIPER_BENCH_MYSQL_ADMIN``, default ``mariadb -uroot``, which also runs the row counts), Redis
``SWIPER_BENCH_REDIS_URL`` (redis://127.0.0.1:6379/14) under ``SWIPER_BENCH_REDIS_PREFIX`` (swiper_bench:). A
benchmark that needs another data set (a million users, say) points these at another database.
"""
from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.lib.session import Session
from bench.lib.stack import PYTHON
from bench.lib.system import BenchError

_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class BenchDb:
    mysql_url: str
    redis_url: str
    redis_prefix: str
    admin: tuple[str, ...]

    @classmethod
    def from_env(cls) -> BenchDb:
        return cls(os.environ.get("SWIPER_BENCH_MYSQL_URL", "mysql://root:@127.0.0.1:3306/swiper_bench"),
                   os.environ.get("SWIPER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
                   os.environ.get("SWIPER_BENCH_REDIS_PREFIX", "swiper_bench:"),
                   tuple(shlex.split(os.environ.get("SWIPER_BENCH_MYSQL_ADMIN", "mariadb -uroot"))))

    def with_database(self, name: str) -> BenchDb:
        """The same server with another database (a benchmark with a data set of its own: a million users, say)."""
        return dataclasses.replace(self, mysql_url=self.mysql_url.rsplit("/", 1)[0] + "/" + name)

    @property
    def name(self) -> str:
        return self.mysql_url.rsplit("/", 1)[-1]

    @property
    def user(self) -> str:
        return re.sub(r"^mysql://", "", self.mysql_url).split("@")[0].split(":")[0]

    @property
    def mysql_port(self) -> int:
        match = re.match(r"^mysql://[^/]*:(\d+)/", self.mysql_url)
        return int(match.group(1)) if match else 3306

    @property
    def redis_port(self) -> int:
        match = re.match(r"^redis://[^/]*:(\d+)(/.*)?$", self.redis_url)
        return int(match.group(1)) if match else 6379

    def sql(self, query: str, *, database: bool = True) -> list[list[str]]:
        """Rows of tab-separated output (no header) of the admin client."""
        argv = [*self.admin, "-N", "-B", *([self.name] if database else []), "-e", query]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"{shlex.join(self.admin)}: {exc} (set SWIPER_BENCH_MYSQL_ADMIN)") from None
        if out.returncode != 0:
            raise BenchError(f"{shlex.join(self.admin)} failed: {out.stderr.strip()[:500]}")
        return [line.split("\t") for line in out.stdout.splitlines()]

    def ensure(self) -> None:
        """The database exists and the URL's user may use it."""
        if not _NAME.match(self.name) or not _NAME.match(self.user):
            raise BenchError(f"bad database or user name in SWIPER_BENCH_MYSQL_URL: {self.mysql_url!r}")
        self.sql(f"CREATE DATABASE IF NOT EXISTS `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                 database=False)
        admin_user = self.sql("SELECT CURRENT_USER()", database=False)[0][0].split("@")[0]
        if self.user not in ("root", admin_user):
            for (host,) in self.sql(f"SELECT host FROM mysql.user WHERE user='{self.user}'", database=False):
                self.sql(f"GRANT ALL PRIVILEGES ON `{self.name}`.* TO '{self.user}'@'{host}'", database=False)

    def count(self, query: str) -> int:
        return int(self.sql(query)[0][0])


def settings(db: BenchDb, *, token_ttl: int, **extra: str) -> dict[str, str]:
    """The SWIPER_* settings of a bench session: the server processes and every Python step read the same ones
    (the tokens the fixtures issue must verify in the servers). Rate limits off, access lines off."""
    return {
        "SWIPER_ENV": "dev",
        "SWIPER_EVENT_LOOP": os.environ.get("SWIPER_EVENT_LOOP", "uvloop"),
        "SWIPER_MYSQL_URL": db.mysql_url,
        "SWIPER_REDIS_URL": db.redis_url,
        "SWIPER_REDIS_PREFIX": db.redis_prefix,
        "SWIPER_JWT_SECRET": "bench-" + secrets.token_hex(24),
        "SWIPER_LOG_LEVEL": os.environ.get("SWIPER_BENCH_LOG_LEVEL", "WARNING"),
        "SWIPER_RATE_LIMIT_ENABLED": "false",
        "SWIPER_DRAIN_TIMEOUT": "2",
        "SWIPER_ACCESS_TOKEN_TTL": str(token_ttl),
        "SWIPER_REFRESH_TOKEN_TTL": str(token_ttl + 3600),
        **extra,
    }


def step_env(values: dict[str, str]) -> dict[str, str]:
    """The environment of a Python step (fixtures, migrations): this one, minus other SWIPER_*, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWIPER_")}
    return {**env, **values, "PYTHONDONTWRITEBYTECODE": "1"}


def migrate(session: Session, trees: list[Path], values: dict[str, str]) -> None:
    """Each tree's own migrations, in order (they are additive and idempotent, so both revisions' schemas fit)."""
    for n, tree in enumerate(trees):
        session.run(f"migrate-{n}", [PYTHON, str(tree / "scripts" / "manage.py"), "migrate"], env=step_env(values),
                    cwd=tree, timeout=120)


@dataclass(frozen=True)
class World:
    """What ``bench.fixtures`` wrote: ids, tokens and the files the Lua scripts read."""
    dir: Path
    viewer_id: int
    viewer_token: str
    profile_token: str
    swiper_ids: str  # comma-separated, for SQL
    targets: int
    summary: str

    @property
    def tokens_file(self) -> Path:
        return self.dir / "swipers.tokens"

    @property
    def ranges_file(self) -> Path:
        return self.dir / "targets.ranges"


_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def make_world(session: Session, db: BenchDb, values: dict[str, str], *, robots: int, viewer_swipes: int,
               swipers: int, reset_logins: bool = False) -> World:
    out = session.work / "fixtures"
    session.say("setting up fixtures (the first run creates the robots: ~20 s per 100,000) ...")
    argv = [PYTHON, "-m", "bench.fixtures", "--out", str(out), "--robots", str(robots),
            "--viewer-swipes", str(viewer_swipes), "--swipers", str(swipers)]
    session.run("fixtures", argv + (["--reset-logins"] if reset_logins else []), env=step_env(values), timeout=900)
    for line in (session.out / "fixtures.err").read_text().splitlines():
        if " robots (" not in line:  # the robots' progress lines
            print("  " + line, file=sys.stderr)

    def read(name: str) -> str:
        return (out / name).read_text().strip()

    world = World(out, int(read("viewer.id")), read("viewer.token"), read("profile.token"), read("swipers.ids"),
                  int(read("targets.count")), read("summary.txt"))
    if not (_JWT.match(world.viewer_token) and _JWT.match(world.profile_token)):
        raise BenchError(f"no JWT in {out}/viewer.token or profile.token")
    if not re.fullmatch(r"[0-9,]+", world.swiper_ids):
        raise BenchError(f"bad swipers.ids in {out}")
    return world


def swipe_rows(db: BenchDb, world: World) -> int:
    return db.count(f"SELECT COUNT(*) FROM swipe WHERE user_id IN ({world.swiper_ids})")


def settled_swipe_rows(db: BenchDb, world: World) -> int:
    """The swipers' rows once the servers have finished the requests wrk left in flight."""
    last = swipe_rows(db, world)
    for _ in range(40):
        time.sleep(0.5)
        now = swipe_rows(db, world)
        if now == last:
            return now
        last = now
    raise BenchError("the swipe count did not settle within 20 s")


class Slices:
    """Disjoint runs of the swipe targets, one per swipe run of a session, so no (swiper, target) pair repeats
    across runs and every run's targets start cold (not cached by an earlier run)."""

    def __init__(self, targets: int, runs: int) -> None:
        self.size, self.next_first = targets // max(runs, 1), 0
        if self.size < 1:
            raise BenchError(f"{targets} targets cannot be split into {runs} swipe runs")

    def take(self) -> tuple[int, int]:
        first = self.next_first
        self.next_first += self.size
        return first, self.size


class PhoneBlocks:
    """Disjoint blocks of login phones (offsets after "155"), one per login run; 0..999,999 stay for checks."""

    FIRST, LAST = 1_000_000, 99_999_999

    def __init__(self, runs: int) -> None:
        self.size, self.next_first = (self.LAST + 1 - self.FIRST) // max(runs, 1), self.FIRST

    def take(self, threads: int) -> tuple[int, int]:
        """(first offset, offsets per wrk thread)."""
        first = self.next_first
        self.next_first += self.size
        return first, self.size // threads
