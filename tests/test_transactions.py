"""Transactions against real InnoDB locks: ``with_retries`` on a real deadlock (retried; given up after the last
attempt), and the like quota of a swipe whose transaction deadlocks (retried) or fails: given back exactly once."""
from __future__ import annotations

import asyncio

import peewee
import pytest

from models import Swipe, db
from models.db import with_retries
from services import keys
from tests.handlers.test_swipes import swipe
from tests.support.client import assert_error
from tests.support.dates import on_one_server_day, quota_day_key
from tests.support.locks import LockHolder, connect, lock_holder, wait_until_running

DEADLOCK = 1213


@pytest.fixture(scope="module")
async def tables(schema):
    """Two rows to lock in opposite orders, and a table for the lock holders' ballast."""
    await db.aio_execute_sql("CREATE TABLE retry_probe (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
    await db.aio_execute_sql("CREATE TABLE ballast (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB")
    yield
    await db.aio_execute_sql("DROP TABLE IF EXISTS retry_probe, ballast")


@pytest.fixture
async def rows(tables):
    await db.aio_execute_sql("DELETE FROM retry_probe")
    await db.aio_execute_sql("INSERT INTO retry_probe VALUES (1, 0), (2, 0)")


@pytest.fixture
async def monitor(database_url):
    """A connection that only reads which statements the app's connections run, and kills one."""
    conn = await connect(database_url)
    yield conn
    conn.close()


async def _fetch_all(_db, cursor):
    return await cursor.fetchall()


async def values() -> list[int]:
    return [v for v, in await db.aio_execute_sql("SELECT v FROM retry_probe ORDER BY id", fetch_results=_fetch_all)]


async def lock_row(row: int) -> None:
    """In the app's transaction (``db.aio_atomic``), as the app's own statements run."""
    await db.aio_execute_sql("SELECT v FROM retry_probe WHERE id = %s FOR UPDATE", (row,))


async def holding_row_two(holder: LockHolder) -> None:
    await holder.ballast("ballast")  # the heavier side: InnoDB picks the app's transaction as the victim
    await holder.run("SELECT v FROM retry_probe WHERE id = 2 FOR UPDATE")


def ask_for_row_one(holder: LockHolder) -> asyncio.Future:
    """The holder's request for row 1, which the app's transaction holds: with the app's request for row 2 it
    makes a cycle (whichever of the two comes second closes it), and InnoDB rolls the lighter side back, the
    app's. The request is granted then; it raises if InnoDB chose the holder instead."""
    return asyncio.ensure_future(holder.run("SELECT v FROM retry_probe WHERE id = 1 FOR UPDATE"))


async def test_a_deadlock_is_retried_and_the_retry_commits(database_url, rows):
    attempts: list[int] = []
    errors: list[int] = []
    granted: asyncio.Queue = asyncio.Queue()
    async with lock_holder(database_url) as holder:
        await holding_row_two(holder)

        async def transaction() -> str:
            attempts.append(len(attempts) + 1)
            async with db.aio_atomic():
                await lock_row(1)
                if len(attempts) == 1:
                    granted.put_nowait(ask_for_row_one(holder))
                    try:
                        await lock_row(2)  # closes the cycle
                    except peewee.OperationalError as exc:
                        errors.append(exc.args[0])
                        raise
                else:
                    await lock_row(2)
                await db.aio_execute_sql("UPDATE retry_probe SET v = v + 1")
            return "committed"

        retried = asyncio.ensure_future(with_retries(transaction))
        await (await granted.get())  # the holder got row 1: InnoDB rolled the first attempt back
        # the second attempt now waits for the holder's rows; the block's end rolls the holder back
    assert await retried == "committed"
    assert (attempts, errors) == ([1, 2], [DEADLOCK])
    assert await values() == [1, 1]  # the retry's update, once


async def test_retries_give_up_after_the_last_attempt(database_url, rows):
    attempts: list[int] = []

    async def transaction() -> None:
        attempts.append(len(attempts) + 1)
        async with lock_holder(database_url) as holder:  # a new deadlock every time
            await holding_row_two(holder)
            theirs = None
            try:
                async with db.aio_atomic():
                    await lock_row(1)
                    theirs = ask_for_row_one(holder)
                    await lock_row(2)
                    await db.aio_execute_sql("UPDATE retry_probe SET v = v + 1")
            finally:
                if theirs is not None:
                    await theirs  # granted once this attempt was rolled back; then the holder lets go

    with pytest.raises(peewee.OperationalError) as raised:
        await with_retries(transaction, attempts=3)
    assert raised.value.args[0] == DEADLOCK  # the last attempt's own error, re-raised
    assert attempts == [1, 2, 3]
    assert await values() == [0, 0]


@pytest.mark.parametrize("statement, error", [
    ("INSERT INTO retry_probe VALUES (1, 5)", peewee.IntegrityError),            # duplicate key
    ("UPDATE retry_probe SET no_such_column = 1", peewee.OperationalError),      # 1054: operational, not a lock
])
async def test_other_errors_are_not_retried(rows, statement, error):
    attempts: list[int] = []

    async def transaction() -> None:
        attempts.append(1)
        async with db.aio_atomic():
            await db.aio_execute_sql("UPDATE retry_probe SET v = v + 1")
            await db.aio_execute_sql(statement)

    with pytest.raises(error):
        await with_retries(transaction)
    assert attempts == [1] and await values() == [0, 0]


# -- the swipe's like quota ---------------------------------------------------------------------------------------

THEIR_LIKE = "INSERT INTO swipe (user_id, target_id, action, created_at) VALUES (%s, %s, 1, UTC_TIMESTAMP(6))"
MY_SWIPE_LOCKED = "SELECT id FROM swipe WHERE user_id = %s AND target_id = %s FOR UPDATE"


def locking_read_of_their_swipe(me, target) -> str:
    """The swipe transaction's last statement before the commit: it waits for their uncommitted like."""
    return rf"\bswipe\b.*\buser_id = {target.id} AND target_id = {me.id}\b.*FOR UPDATE"


def insert_of_my_swipe(me, target) -> str:
    """The swipe transaction's first statement, before the like is taken."""
    return rf"^INSERT INTO swipe\b.*\b{me.id}\b.*\b{target.id}\b"


async def swipes_between(me, target) -> int:
    return await Swipe.select().where((Swipe.user_id == me.id) & (Swipe.target_id == target.id)).aio_count()


@on_one_server_day
async def test_a_deadlocked_swipe_is_retried_and_takes_one_like(client, make_person, redis, settings, database_url,
                                                                tables, monitor):
    me, target = await make_person(), await make_person(gender="male")
    quota = keys.quota("likes", me.id, quota_day_key())
    await redis.set(quota, 5)  # five likes earlier today
    async with lock_holder(database_url) as holder:
        await holder.ballast("ballast")
        await holder.run(THEIR_LIKE, (target.id, me.id))  # not committed: my swipe's locking read waits for it
        request = asyncio.ensure_future(swipe(client, me, target))
        await wait_until_running(monitor, locking_read_of_their_swipe(me, target))  # inserted, its like taken
        assert int(await redis.get(quota)) == 6
        # the holder asks for the row my swipe inserted: a cycle, and InnoDB rolls my (lighter) swipe back
        await holder.run(MY_SWIPE_LOCKED, (me.id, target.id))
        await wait_until_running(monitor, insert_of_my_swipe(me, target))  # the retry, before it takes a like
        assert int(await redis.get(quota)) == 5, "the rolled-back attempt gives its like back, once"
    resp = await request  # the holder rolled back: the retry commits
    assert resp.status == 200, resp.body
    assert resp.data["matched"] is False and resp.data["likes_remaining"] == settings.daily_like_limit - 6
    assert int(await redis.get(quota)) == 6
    assert await swipes_between(me, target) == 1


@on_one_server_day
async def test_a_failed_swipe_gives_its_like_back_once(client, make_person, redis, database_url, monitor):
    me, target = await make_person(), await make_person(gender="male")
    quota = keys.quota("likes", me.id, quota_day_key())
    await redis.set(quota, 5)
    async with lock_holder(database_url) as holder:
        await holder.run(THEIR_LIKE, (target.id, me.id))
        request = asyncio.ensure_future(swipe(client, me, target))
        waiting = await wait_until_running(monitor, locking_read_of_their_swipe(me, target))
        assert int(await redis.get(quota)) == 6
        async with monitor.cursor() as cur:  # the swipe's statement fails (1317, interrupted): not retryable
            await cur.execute("KILL QUERY %s", (waiting,))
        resp = await request
    assert assert_error(resp, 503, "unavailable")["data"] == {"dependency": "mysql"}
    assert int(await redis.get(quota)) == 5
    assert await swipes_between(me, target) == 0
    assert await redis.zscore(keys.hot_ranking(), str(target.id)) is None
    again = await swipe(client, me, target)  # nothing is left half-done: the same like works now
    assert again.status == 200 and int(await redis.get(quota)) == 6
