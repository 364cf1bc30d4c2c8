"""The chat benchmark: its exactly-once count on made-up deliveries, and one run end to end at its smallest
(``bench_run``: ~30 s, a real stack and the bare relay), which must count every delivery once and stop
everything it started. No figure is asserted."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.chat_load import Sent, Worker
from bench.lib.stack import Layout
from bench.lib.system import find_port_block
from tests.bench.test_runs import (assert_nothing_left, bench_dirs, bench_env, run_bench,  # noqa: F401 (fixture)
                                   worktrees)

TINY = ["--sockets", "16", "--devices", "2", "--workers", "2", "--senders", "2", "--duration", "1", "--warmup", "1",
        "--drain", "5", "--settle", "1"]


def worker(tmp_path: Path) -> Worker:
    plan = {"state": str(tmp_path), "host": "127.0.0.1", "ports": [1, 2], "target": "swiper", "devices": 2,
            "pairs": [[[10, "ta", 11, "tb", 0], [12, "tc", 13, "td", 1]]], "senders": 1}
    w = Worker(plan, 0)
    for sock in w.socks:
        sock.conn = object()  # held
    return w


def test_the_count_finds_a_missing_a_duplicated_and_a_misdirected_delivery(tmp_path: Path) -> None:
    w = worker(tmp_path)
    assert [(s.user, s.device, s.port_index) for s in w.socks[:4]] == [(10, 0, 0), (10, 1, 1), (11, 0, 1),
                                                                        (11, 1, 0)]
    a, b = [s.index for s in w.by_user[10]], [s.index for s in w.by_user[11]]
    other = w.by_user[12][0].index
    good = Sent(0.0, 0, 10, 11, acked=True, seq=1, match_key=(10, 11),
                deliveries=[(i, 0.001) for i in a + b])
    w.sent = {"good": good}
    out = w.check(1.0)
    assert (out["expected"], out["once"], out["missing"], out["duplicated"], out["unexpected"]) == (4, 4, 0, 0, 0)
    assert len(out["cross_ms"]) == 2 and len(out["same_ms"]) == 2  # two sockets on each process
    bad = Sent(0.0, 1, 11, 10, acked=True, seq=3, match_key=(10, 11),  # seq 3 after 1: a gap
               deliveries=[(a[0], 0.002), (a[0], 0.003), (b[0], 0.002), (other, 0.002)])  # a[1], b[1] missing
    unacked = Sent(0.0, 0, 12, 13, deliveries=[(other, 0.004)])
    w.sent = {"good": good, "bad": bad, "unacked": unacked}
    out = w.check(1.0)
    assert (out["expected"], out["once"], out["missing"], out["duplicated"], out["unexpected"]) == (8, 5, 2, 1, 1)
    assert (out["acked"], out["unacked_delivered"], out["seq_gaps"], out["conversations"]) == (2, 1, 1, 1)


@pytest.mark.bench_run
def test_the_chat_bench_counts_every_delivery_once_and_stops_everything(
        bench_env: dict[str, str]) -> None:  # noqa: F811 (the fixture imported above)
    size = Layout(0, 2).size + 1
    base = find_port_block(size)
    dirs, trees = bench_dirs(), worktrees()
    out = run_bench("bench.chat", [*TINY, "--base-port", str(base)], bench_env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    checks = re.findall(r"^Exactly-once check: OK \((.+?)\): ([1-9]\d*) messages acknowledged of (\d+) sent .*?; "
                        r"(\d+) deliveries owed to held sockets, (\d+) delivered once, 0 missing, 0 duplicated, "
                        r"0 to a socket not owed, 0 of an unknown client_id, 0 of unacknowledged sends; "
                        r"4 conversations, 0 whose seqs are not 1..n$", out.stdout, re.M)
    assert [c[0] for c in checks] == ["ceiling: bare Tornado relay (1 proc)", "Swiper (2 procs)"]
    for _, acked, _, owed, once in checks:
        assert int(owed) == int(once) == 4 * int(acked)  # 2 users × 2 devices, every socket held
    assert re.search(r"^\| Swiper \(2 procs\) \| 16 \| 16 \| 0 \| 0 \| 8 \+ 8 \|", out.stdout, re.M)
    assert len(re.findall(r"^\| server\.py swiper_0[12] \| \d+ \| 8 \| ([\d.]+ MB \| ){5}[\d.]+ KB \|$", out.stdout,
                          re.M)) == 2
    assert "server.py stderr during the run: 0 lines" in out.stdout
    assert f"Command: .venv/bin/python -m bench.chat {' '.join(TINY)} --base-port {base}" in out.stdout
    pids = [int(p) for p in re.findall(r"^\| (?:server\.py \w+|bench/bare_chat\.py) \| (\d+) \|", out.stdout, re.M)]
    assert len(pids) == 3
    table = "\n".join(f"| p | {pid} | x | y |" for pid in pids)  # the shape assert_nothing_left reads pids from
    assert_nothing_left(bench_env, table, range(base + 1, base + size + 1), dirs, trees)
