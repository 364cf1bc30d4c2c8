"""The one database object. Deferred (``None``) until ``init_db`` runs with the settings at start-up."""
from __future__ import annotations

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
