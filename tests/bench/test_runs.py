"""The benchmarks run end to end, at the smallest settings that still exercise every row and check, against a
scratch database and a private Redis prefix, and leave nothing running behind them.

They take time (real stacks come up and go down): about 30 s for the full bench, 33 s for the comparison,
10 s for the interrupted one-process bench and 40 s for the distance bench on this machine (marked ``bench_run``: ``-m "not bench_run"`` leaves
them out). No figure is asserted: only that each row was measured and checked.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from bench.lib.stack import Layout
from bench.lib.system import alive, find_port_block, git, port_free
from conf import parse_mysql_url
from tests.conftest import ROOT, TEST_MYSQL, TEST_REDIS, admin_connect, scratch_database

SMALL = ["--duration", "1", "--warmup", "1", "--robots", "3000", "--viewer-swipes", "100", "--swipers", "5",
         "--connections", "8"]


pytestmark = pytest.mark.bench_run


@pytest.fixture(scope="module")
def bench_env() -> Iterator[dict[str, str]]:
    """The bench's settings pointed at a scratch database and a private Redis prefix, both removed afterwards."""
    run = secrets.token_hex(3)
    url = parse_mysql_url(TEST_MYSQL)
    admin = f"mariadb -h{url.host} -P{url.port} -u{url.user}" + (f" -p{url.password}" if url.password else "")
    prefix = f"swiper_test_bench_{run}:"
    with scratch_database(f"bench{run}") as db_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWIPER_")}
        env.update(SWIPER_BENCH_MYSQL_URL=db_url, SWIPER_BENCH_MYSQL_ADMIN=admin, SWIPER_BENCH_REDIS_URL=TEST_REDIS,
                   SWIPER_BENCH_REDIS_PREFIX=prefix)
        try:
            yield env
        finally:
            client = redis_sync.Redis.from_url(TEST_REDIS)
            names = list(client.scan_iter(match=prefix + "*", count=1000))
            for start in range(0, len(names), 1000):
                client.delete(*names[start:start + 1000])
            client.close()


def worktrees() -> list[str]:
    """The temporary worktrees a bench of this checkout makes (under its var/bench/), by path: the repository's
    other worktrees, and other checkouts' benches (which add and remove theirs meanwhile), are not this test's."""
    mine = f"worktree {ROOT / 'var' / 'bench'}/"
    return [line for line in git("worktree", "list", "--porcelain").splitlines() if line.startswith(mine)]


def bench_dirs() -> set[Path]:
    base = ROOT / "var" / "bench"
    return set(base.iterdir()) if base.is_dir() else set()


def left_running(redis_prefix: str) -> list[str]:
    """Processes a bench started: their command line names a bench work directory (supervisord, nginx, the
    stub, wrk with a Lua script), or their environment has this test's settings (server.py, the fixtures)."""
    found = []
    work = str(ROOT / "var" / "bench") + "/"
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if work in cmdline or f"SWIPER_REDIS_PREFIX={redis_prefix}".encode() in environ:
            found.append(f"{proc.name}: {cmdline}")
    return found


def assert_nothing_left(env: dict[str, str], output: str, ports: range, dirs_before: set[Path],
                        worktrees_before: list[str]) -> None:
    pids = [int(p) for p in re.findall(r"^\| [^|]+ \| (\d+) \| [^|]+ \| [^|]+ \|$", output, re.M)]
    deadline = time.monotonic() + 10  # a daemon's last child may need a moment to be reaped by init
    while time.monotonic() < deadline and (any(alive(p) for p in pids) or not all(port_free(p) for p in ports)):
        time.sleep(0.2)
    assert [p for p in pids if alive(p)] == []
    assert [p for p in ports if not port_free(p)] == []
    assert left_running(env["SWIPER_BENCH_REDIS_PREFIX"]) == []
    assert bench_dirs() == dirs_before  # the work directory is gone
    assert worktrees() == worktrees_before


def run_bench(module: str, args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def table_rows(output: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in output.splitlines()
            if line.startswith("| ") and not line.startswith("| path") and not line.startswith("| process")]


def test_the_full_bench_measures_every_row_checks_them_and_stops_everything(bench_env: dict[str, str]) -> None:
    base = find_port_block(Layout(0, 2).size + 1)
    dirs, trees = bench_dirs(), worktrees()
    out = run_bench("bench.full", [*SMALL, "--base-port", str(base)], bench_env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {row[0]: row for row in table_rows(out.stdout) if len(row) == 6}
    assert list(rows) == ["ceiling: bare Tornado `GET /` (2 procs, same nginx)", "`GET /api/v1/profile`",
                          "`GET /api/v1/recommendations?limit=10` (viewer with 100 swipes)",
                          "`POST /api/v1/swipes` (new pair each)",
                          "login: `POST /api/v1/sms-codes` + `POST /api/v1/sessions` (both kinds; new phone each)"]
    for row in rows.values():
        assert float(row[1]) > 0 and row[2].endswith("ms") or row[2].endswith("s")
    assert rows["ceiling: bare Tornado `GET /` (2 procs, same nginx)"][5] == "1.00"
    assert re.search(r"^Swipe check: OK \(this \w+\): wrk counted \d+ responses, [1-9]\d* 2xx", out.stdout, re.M)
    assert re.search(r"^Login check: OK \(this \w+\): [1-9]\d* logins", out.stdout, re.M)
    assert f"Command: .venv/bin/python -m bench.full {' '.join(SMALL)} --base-port {base}" in out.stdout
    assert f"Code: {git('rev-parse', '--short', 'HEAD')}" in out.stdout
    assert "server.py stderr during the run (this" in out.stdout and ": 0 lines" in out.stdout
    assert len(re.findall(r"^\| server\.py swiper_0[12] \| \d+ \| [\d.]+ MB \| [\d.]+ MB \|$", out.stdout, re.M)) == 2
    assert_nothing_left(bench_env, out.stdout, range(base + 1, base + Layout(0, 2).size + 2), dirs, trees)


def test_compare_runs_both_revisions_in_alternating_rounds_from_a_temporary_worktree(
        bench_env: dict[str, str]) -> None:
    head = git("rev-parse", "--short", "HEAD")
    dirs, trees = bench_dirs(), worktrees()
    out = run_bench("bench.full", [*SMALL, "--procs", "1", "--only", "profile", "--compare", "HEAD", "--repeat", "2"],
                    bench_env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"| path | round | base {head}: req/s |" in out.stdout and f"| this {head}: req/s |" in out.stdout
    rows = [row for row in table_rows(out.stdout) if len(row) == 13]
    assert [(r[0].split(":")[0].split(" ")[0], r[1]) for r in rows] == [
        ("ceiling", "1"), ("ceiling", "2"), ("`GET", "1"), ("`GET", "2")]
    assert all(re.fullmatch(r"[+-]\d\.\d\d \([+-][\d.]+%\)", r[12]) for r in rows[2:])
    assert "Median over the rounds:" in out.stdout
    cpu = out.stdout.split("CPU of the servers under test per answer", 1)[1]
    assert re.search(r"^\| `GET /api/v1/profile` \| \d+, \d+ \| \d+, \d+ \| [+-]", cpu, re.M), cpu
    order = re.findall(r"wrk (\w+)-(base|this)-(\d): ", out.stderr)
    assert [(stack, rnd) for row, stack, rnd in order if row == "profile"] == [
        ("base", "1"), ("this", "1"), ("base", "2"), ("this", "2")]
    assert f"Code: base: {head} (--compare HEAD" in out.stdout
    assert_nothing_left(bench_env, out.stdout, range(0), dirs, trees)


def test_an_interrupted_bench_stops_everything_it_started(bench_env: dict[str, str]) -> None:
    """bench.social this time: its set-up, query plan and pre-run checks run, then SIGTERM during a wrk run."""
    port = find_port_block(1) + 1
    dirs, trees = bench_dirs(), worktrees()
    proc = subprocess.Popen([sys.executable, "-m", "bench.social", *SMALL, "--duration", "30", "--port", str(port)],
                            cwd=ROOT, env=bench_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "wrk feed:" in line:  # the server, and wrk, are running
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, "".join(seen) + err
    assert "pre-run: the feed answers 200 with 10 items" in "".join(seen)
    assert "interrupted (SIGTERM)" in err
    assert_nothing_left(bench_env, "", range(port, port + 1), dirs, trees)


def test_the_distance_bench_measures_both_feeds_at_two_sizes_and_drops_nothing_it_keeps_elsewhere(
        bench_env: dict[str, str]) -> None:
    """bench.distance at two small sizes: each size's data set in a database named after the scratch one (dropped
    here), both feeds measured next to the ceiling, the flatness line and the SQL figures printed."""
    sizes = (6000, 8000)
    base = find_port_block(Layout(0, 1).size + 1)
    dirs, trees = bench_dirs(), worktrees()
    scratch = parse_mysql_url(bench_env["SWIPER_BENCH_MYSQL_URL"]).database
    try:
        out = run_bench("bench.distance", ["--users", ",".join(map(str, sizes)), "--viewer-swipes", "200",
                                           "--duration", "1", "--warmup", "1", "--connections", "8", "--procs", "1"],
                        bench_env, timeout=300)
    finally:
        with admin_connect() as conn, conn.cursor() as cur:
            for size in sizes:
                cur.execute(f"DROP DATABASE IF EXISTS `{scratch}_users{size}`")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = [row for row in table_rows(out.stdout) if len(row) == 6]
    assert [row[0].split(":")[0] for row in rows] == [f"{n:,} users" for n in sizes for _ in range(3)]
    for row in rows:
        assert float(row[1]) > 0 and row[4] == "0", row
    assert re.search(r"^Flatness \(8,000 users over 6,000\): distance: req/s [\d.]+, p99 [\d.]+; city: ", out.stdout,
                     re.M)
    assert out.stdout.count("SQL of the feed by distance at ") == 2
    cpu = out.stdout.split("CPU of the servers under test per answer", 1)[1]
    assert len(re.findall(r"^\| [\d,]+ users: .* \| \d+ \|$", cpu, re.M)) == 6, cpu
    # every statement's rows touched were counted (the page: a primary-key read and a swipe probe per candidate)
    assert re.search(r"^statement \d+: .*\{'Handler_read_key': [1-9]\d*", out.stdout, re.M)
    assert_nothing_left(bench_env, out.stdout, range(0), dirs, trees)


def test_the_replicas_bench_runs_at_its_smallest_and_holds_read_your_writes() -> None:
    """bench.replicas: its own primary and replica, one server, a few users; the table and zero failed checks."""
    out = run_bench("bench.replicas", ["--users", "4", "--rounds", "4", "--delay", "1"], dict(os.environ))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    row = [cell.strip() for cell in out.stdout.strip().splitlines()[-1].strip("|").split("|")]
    primary, replica, _share, checks, failed = row
    assert int(replica) > 0 and int(checks) > 0 and failed == "0", out.stdout
