"""The suite's own machinery: a helper that is wrong makes every test built on it prove nothing."""
from __future__ import annotations

import datetime as dt
import errno
import re
import signal
import socket
from pathlib import Path

import pytest

from services.profiles import age_on, today as profiles_today
from services.quotas import quota_day
from tests.conftest import server_env
from tests.support import dates
from tests.support.client import Client
from tests.support.dates import (birthday_for_age, next_midnight, quota_day_key, server_today, within_one,
                                 years_ago, years_before)
from tests.support.processes import PortTaken, ServerProcess, free_port, listening_sockets, sockets_of

TESTS = Path(__file__).resolve().parent


# -- dates: the server's day, and birthdays that are right on 29 February -----------------------------------------

def every_day(first: dt.date, last: dt.date):
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


@pytest.mark.parametrize("years", [1, 4, 18, 45, 100, 101])
def test_years_before_is_the_last_birthday_of_that_age(years):
    """On every day of 2027-2029 (29 February 2028 included): born then, you are ``years``; a day later, not yet."""
    for day in every_day(dt.date(2027, 1, 1), dt.date(2029, 12, 31)):
        born = years_before(day, years)
        assert age_on(born, day) == years, (day, born)
        assert age_on(born + dt.timedelta(days=1), day) == years - 1, (day, born)


def test_the_leap_day_itself():
    leap = dt.date(2028, 2, 29)
    assert years_before(leap, 18) == dt.date(2010, 2, 28)
    assert years_before(leap, 4) == dt.date(2024, 2, 29)  # a leap year back: the same day
    assert years_ago(18, -1, today=leap) == dt.date(2010, 3, 1) and age_on(dt.date(2010, 3, 1), leap) == 17
    assert age_on(years_ago(101, today=leap), leap) == 101
    assert age_on(years_ago(101, -1, today=leap), leap) == 100
    for age in range(18, 46):
        assert age_on(birthday_for_age(age, today=leap), leap) == age
        assert age_on(birthday_for_age(age, today=leap), leap + dt.timedelta(days=9)) == age


def test_today_is_the_servers(settings):
    """The helpers, the app under test and the quota keys all count days in one zone."""
    assert settings.timezone == dates.SERVER_TIMEZONE
    before, theirs, after = server_today(), profiles_today(settings), server_today()
    assert theirs in {before, after}  # (a day may turn between the calls)
    moment = dt.datetime(2026, 12, 1, 16, 30, tzinfo=dt.timezone.utc)  # 00:30 on 2 December in Shanghai
    assert quota_day_key(moment) == quota_day(settings, moment).key == "20261202"
    assert next_midnight(moment) == quota_day(settings, moment).resets_at
    assert next_midnight(moment).isoformat() == "2026-12-03T00:00:00+08:00"


def test_no_test_takes_the_machines_date():
    """``dt.date.today()`` and a zone-less ``now()`` are the machine's date, not the server's."""
    machine_date = re.compile(r"\bdate\.today\(|datetime\.today\(|\.now\(\)|\blocaltime\(")
    offenders = [f"{path.relative_to(TESTS)}:{n}: {line.strip()}"
                 for path in sorted(TESTS.rglob("*.py")) if path != Path(__file__).resolve()
                 for n, line in enumerate(path.read_text().splitlines(), 1) if machine_date.search(line)]
    assert not offenders, "use tests/support/dates.py:\n" + "\n".join(offenders)


async def test_a_test_failing_as_its_period_turns_runs_once_more():
    runs: list[int] = []
    clock = iter([1, 2, 2, 2])  # the period turns during the first run

    @within_one(lambda: next(clock))
    async def flaky_at_the_turn():
        runs.append(1)
        assert len(runs) == 2, "the first run straddled two periods"

    await flaky_at_the_turn()
    assert len(runs) == 2


async def test_a_failure_within_one_period_is_not_retried():
    runs: list[int] = []

    @within_one(lambda: 7)
    async def broken():
        runs.append(1)
        raise AssertionError("a real failure")

    with pytest.raises(AssertionError, match="a real failure"):
        await broken()
    assert runs == [1]


# -- the slow-callback check on server processes ------------------------------------------------------------------

BLOCKING_SERVER = '''"""server.py, plus one blocking step (0.3 s of CPU) on its loop whenever it gets SIGUSR1."""
import argparse
import asyncio
import signal
import time

import server
from conf import load_settings_or_exit

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
port = parser.parse_args().port
settings = load_settings_or_exit("swiper")
server.configure_logging(settings)


def burn(seconds):
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, burn, 0.3)
    await server.serve(settings, port)

asyncio.run(main())  # the loop server.main runs when SWIPER_SLOW_CALLBACK_MS is set
'''


async def test_a_blocking_step_in_a_server_process_fails_the_test(settings, schema, tmp_path):
    """ServerProcess turns the server's slow-step log on, and stop() finds the line the server really writes."""
    script = tmp_path / "blocking_server.py"
    script.write_text(BLOCKING_SERVER)
    server = ServerProcess(server_env(settings), script=script)
    await server.start()
    try:
        server.proc.send_signal(signal.SIGUSR1)
        assert (await Client(server.base_url).get("/healthz")).status == 200
    finally:
        with pytest.raises(AssertionError, match=r"slow callbacks in server\.py:\n.* used [2-9]\d\d ms of CPU in \d+ ms"):
            server.stop()
    assert server.proc.returncode == 0


# -- ports: a server process never shares its port ---------------------------------------------------------------

def squatter(reuse_port: bool) -> socket.socket:
    """A socket listening on a fresh port, as another process's server (``reuse_port``, as server.py binds) or
    any other program would; it never accepts."""
    sock = socket.socket()
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def test_a_server_moves_off_a_port_that_is_taken_or_shared(settings, schema):
    shared, taken = squatter(reuse_port=True), squatter(reuse_port=False)
    try:
        candidates = iter([shared.getsockname()[1], taken.getsockname()[1]])
        server = ServerProcess(server_env(settings), pick_port=lambda: next(candidates, None) or free_port())
        assert server.port == shared.getsockname()[1]  # the first pick: a port that reuse_port would share
        await server.start()
        try:
            assert server.port not in {shared.getsockname()[1], taken.getsockname()[1]}
            assert listening_sockets(server.port) <= sockets_of(server.proc.pid)
            for _ in range(5):
                assert (await Client(server.base_url).get("/healthz")).status == 200
        finally:
            assert server.stop() == 0
        with pytest.raises(BlockingIOError):
            shared.accept()  # no connection ever went to the other listener
    finally:
        shared.close()
        taken.close()


async def test_a_given_port_that_is_shared_is_an_error(settings, schema):
    shared = squatter(reuse_port=True)
    try:
        server = ServerProcess(server_env(settings), port=shared.getsockname()[1])
        with pytest.raises(PortTaken, match="in use|shared"):  # server.py binds without SO_REUSEPORT
            await server.start()
        assert server.proc.poll() is not None  # the child was not left behind
    finally:
        shared.close()


async def test_nobody_can_take_the_port_of_a_running_server(settings, schema):
    """server.py binds without SO_REUSEPORT, so a second listener on its port (which nginx would send a share of
    the connections to, answered by nobody) cannot appear while it runs."""
    server = ServerProcess(server_env(settings))
    await server.start()
    late = socket.socket()
    try:
        late.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError) as refused:
            late.bind(("127.0.0.1", server.port))
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        late.close()
        assert server.stop() == 0