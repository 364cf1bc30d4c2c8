"""The one database object. Deferred (``None``) until ``init_db`` runs with the settings at start-up."""
from __future__ import annotations

import asyncio
import random

import aiomysql
import peewee

from peewee_async import MySQLDatabase
from peewee_async.pool import AioMysqlPoolBackend

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

    async def acquire(self):
        await self._turns.acquire()
        try:
            return await super().acquire()
        except BaseException:
            self._turns.release()
            raise

    async def release(self, conn) -> None:
        try:
            await super().release(conn)
        finally:
            self._turns.release()


class SwiperDatabase(MySQLDatabase):
    """peewee-async's MySQL database with a deadline on every statement.

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
                    raise aiomysql.OperationalError(
                        2013, f"Lost connection to MySQL server during query (no answer in {self.query_timeout} s)"
                    ) from None


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
