"""MySQL connections of the test's own, to hold row locks the app's transactions must wait for (or deadlock on).

Waiting is never timed: ``wait_until_running`` asks MySQL which statement the app's connection is running, so a
test knows where the app's transaction stands (waiting for the test's lock) before it takes its next step.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator

import aiomysql

from conf import parse_mysql_url


async def connect(url: str) -> aiomysql.Connection:
    parsed = parse_mysql_url(url)
    return await aiomysql.connect(host=parsed.host, port=parsed.port, user=parsed.user, password=parsed.password,
                                  db=parsed.database, charset="utf8mb4", autocommit=True)


class LockHolder:
    """One connection and its open transaction: ``await holder.run(sql)`` inside ``BEGIN`` ... ``ROLLBACK``."""

    def __init__(self, conn: aiomysql.Connection) -> None:
        self.conn = conn
        self.thread_id = conn.thread_id()

    async def run(self, sql: str, args: tuple = ()) -> list[tuple]:
        async with self.conn.cursor() as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())

    async def ballast(self, table: str, rows: int = 50) -> None:
        """Write ``rows`` rows: InnoDB rolls back the transaction that changed fewer rows when two deadlock, so
        a holder with ballast is never the one chosen."""
        await self.run(f"INSERT INTO `{table}` (v) VALUES " + ", ".join(["(0)"] * rows))


@contextlib.asynccontextmanager
async def lock_holder(url: str) -> AsyncIterator[LockHolder]:
    """A transaction open for the block, rolled back (its locks released) at the end, whatever happened."""
    conn = await connect(url)
    holder = LockHolder(conn)
    try:
        await holder.run("BEGIN")
        yield holder
    finally:
        with contextlib.suppress(Exception):
            await holder.run("ROLLBACK")
        conn.close()


async def statements(monitor: aiomysql.Connection) -> list[tuple[int, str]]:
    """(connection id, statement) of every other connection of this MySQL user now running a statement.

    information_schema.PROCESSLIST shows a user its own connections without the PROCESS privilege (which the
    tests' account lacks, and which InnoDB's lock tables would need); the app under test uses the same account.
    """
    async with monitor.cursor() as cur:
        await cur.execute("SELECT ID, INFO FROM information_schema.PROCESSLIST"
                          " WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() AND INFO IS NOT NULL")
        return [(int(row[0]), row[1]) for row in await cur.fetchall()]


async def wait_until_running(monitor: aiomysql.Connection, pattern: str, timeout: float = 20.0) -> int:
    """Until another connection runs a statement matching ``pattern`` (a regex); that connection's id.

    A statement still seen running is one waiting for a lock the test holds (unlocked, it takes microseconds).
    """
    wanted = re.compile(pattern, re.S)
    deadline = time.monotonic() + timeout
    while True:
        found = [conn_id for conn_id, sql in await statements(monitor) if wanted.search(sql)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no statement like {pattern!r} ever ran"
        await asyncio.sleep(0.005)
