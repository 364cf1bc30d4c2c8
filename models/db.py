"""The one database object. Deferred (``None``) until ``init_db`` runs with the settings at start-up."""
from __future__ import annotations

import asyncio
import random

import aiomysql
import peewee

from peewee_async import MySQLDatabase

from conf import Settings

db = MySQLDatabase(None)


def init_db(settings: Settings) -> MySQLDatabase:
    """Point ``db`` at the configured server; the pool itself connects lazily on first use."""
    url = settings.mysql
    db.init(
        url.database, host=url.host, port=url.port, user=url.user, password=url.password,
        charset="utf8mb4", connect_timeout=settings.mysql_connect_timeout,
        pool_params={"minsize": 0, "maxsize": settings.mysql_pool_size, "pool_recycle": 600},
    )
    return db


# InnoDB's answers to two transactions locking each other: retrying the whole transaction is the cure.
_RETRYABLE = {1213, 1205}


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
