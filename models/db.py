"""The one database object. Deferred (``None``) until ``init_db`` runs with the settings at start-up."""
from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import aiomysql
import peewee

from peewee_async import MySQLDatabase
from peewee_async.connection import connection_context
from peewee_async.pool import AioMysqlPoolBackend
from peewee_async.transactions import Transaction

from conf import Settings


class FairMysqlPool(AioMysqlPoolBackend):
    """aiomysql's pool, handing connections out first come, first served.

    aiomysql lets a request that arrives just as a connection is freed take it ahead of requests already waiting,
    so under load a few waiters starve: with 100 swipes in flight for a pool of 20, p99 was 474 ms at a p50 of
    75 ms. asyncio's Semaphore queues its waiters in order and lets nobody past them (python -m bench.social).
    """

    def __init__(self, *, database: str, **kwargs) -> None:
        super().__init__(database=database, **kwargs)
        self._turns = asyncio.Semaphore(int(self.connect_params.get("maxsize", 10)))
        # aiomysql bounds the TCP connect by connect_timeout but not the handshake after it: a MySQL that accepts
        # and then says nothing (frozen) would hold a new connection, and its request, for as long as it lasts
        self.handout_timeout = 2 * float(self.connect_params.get("connect_timeout") or 2.0)

    async def acquire(self):
        await self._turns.acquire()  # the queue for a free connection: as long as it takes
        try:
            async with asyncio.timeout(self.handout_timeout):  # then a free or a new connection, in bounded time
                return await super().acquire()
        except TimeoutError:
            self._turns.release()
            raise aiomysql.OperationalError(
                2003, f"Can't connect to MySQL server (no handshake in {self.handout_timeout:g} s)") from None
        except BaseException:
            self._turns.release()
            raise

    async def release(self, conn) -> None:
        try:
            await super().release(conn)
        finally:
            self._turns.release()


def _lost(timeout: float) -> aiomysql.OperationalError:
    return aiomysql.OperationalError(2013, f"Lost connection to MySQL server during query (no answer in {timeout} s)")


class DeadlineTransaction(Transaction):
    """BEGIN, COMMIT and ROLLBACK (and their savepoints) under the statements' deadline: a frozen MySQL held a
    swipe's BEGIN for as long as it was frozen, and the swipe then committed after the thaw although its client
    had long been answered 503. A ROLLBACK on a connection the deadline closed is skipped: closing it ended the
    transaction on the server."""

    def __init__(self, connection, *, is_savepoint: bool, timeout: float) -> None:
        super().__init__(connection, is_savepoint=is_savepoint)
        self.timeout = timeout

    async def execute(self, sql: str) -> None:
        if sql.startswith("ROLLBACK") and getattr(self.connection, "closed", False):
            return
        try:
            async with asyncio.timeout(self.timeout):
                await super().execute(sql)
        except TimeoutError:
            self.connection.close()
            raise _lost(self.timeout) from None


class SwiperDatabase(MySQLDatabase):
    """peewee-async's MySQL database with a deadline on every statement, transaction control included.

    aiomysql can time out a connect but not a query: a MySQL that stops answering (frozen, or a network that
    black-holes packets) would hang every request using it. Here a statement that outlives ``query_timeout`` has
    its connection closed — it is mid-protocol and must never go back to the pool — and raises MySQL's own "lost
    connection" error, which the app answers with 503.
    """

    query_timeout: float = 5.0
    pool_backend_cls = FairMysqlPool

    async def aio_execute_sql(self, sql: str, params=None, fetch_results=None):  # type: ignore[override]
        with peewee.__exception_wrapper__:  # type: ignore[attr-defined]
            async with self.aio_connection() as connection:
                try:
                    async with asyncio.timeout(self.query_timeout):
                        async with connection.cursor() as cursor:
                            await cursor.execute(sql, params or ())
                            if fetch_results is not None:
                                return await fetch_results(self, cursor)
                except TimeoutError:
                    connection.close()
                    raise _lost(self.query_timeout) from None

    @contextlib.asynccontextmanager
    async def _aio_atomic(self, use_savepoint: bool = False) -> AsyncIterator[None]:
        """peewee-async 2.1's own, with ``DeadlineTransaction`` in place of its ``Transaction``."""
        async with self.aio_connection() as connection:
            context = connection_context.get()
            assert context is not None
            is_root = not context.transaction_is_opened
            if not is_root and not use_savepoint:
                raise peewee.OperationalError("Transaction already opened")
            try:
                async with DeadlineTransaction(connection, is_savepoint=not is_root, timeout=self.query_timeout):
                    if is_root:
                        context.transaction_is_opened = True
                    yield
            finally:
                if is_root:
                    context.transaction_is_opened = False


db = SwiperDatabase(None)


def init_db(settings: Settings, *, query_timeout: float | None = None) -> SwiperDatabase:
    """Point ``db`` at the configured server; the pool itself connects lazily on first use."""
    url = settings.mysql
    db.query_timeout = query_timeout or settings.mysql_query_timeout
    db.init(
        url.database, host=url.host, port=url.port, user=url.user, password=url.password,
        charset="utf8mb4", connect_timeout=settings.mysql_connect_timeout,
        init_command=f"SET SESSION TRANSACTION ISOLATION LEVEL {settings.mysql_isolation.replace('-', ' ').upper()}",
        pool_params={"minsize": 0, "maxsize": settings.mysql_pool_size, "pool_recycle": 600},
    )
    return db


# InnoDB's answers to two transactions locking each other: retrying the whole transaction is the cure. 9007 is
# TiDB's write conflict (its optimistic mode), the same situation found at commit.
_RETRYABLE = {1213, 1205, 9007}


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or lock-wait timeout: the transaction was rolled back and may simply run again."""
    return bool(exc.args) and exc.args[0] in _RETRYABLE


async def with_retries(transaction, attempts: int = 5):
    """Run ``transaction()`` (an async function holding one ``db.aio_atomic()``), again after a deadlock."""
    for attempt in range(attempts):
        try:
            return await transaction()
        except (peewee.OperationalError, aiomysql.OperationalError) as exc:
            if not is_retryable(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
