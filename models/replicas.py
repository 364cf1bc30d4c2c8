"""Read replicas (``SWIPER_MYSQL_REPLICA_URLS``): which database a lag-tolerant read runs on.

``reader()`` is the only door: it answers a healthy replica only when all of these hold, else the primary ``db``:
- the request allowed it (``allow_replica_reads``: a signed-in read whose user has not written within
  ``SWIPER_READ_YOUR_WRITES_WINDOW`` seconds — handlers/base.py decides; everything else, jobs and sockets
  included, reads the primary);
- no connection context is open. peewee-async keeps the current connection in one ContextVar shared by every
  database: inside ``db.aio_atomic()`` a "replica" query would silently run on the primary's connection (and a
  write inside a replica's context would go to the replica), so a read inside a transaction always gets ``db``;
- some replica answered its last check with a lag within ``SWIPER_REPLICA_MAX_LAG`` (``ReplicaSet.check``,
  every ``CHECK_EVERY`` seconds per process; a replica whose SQL thread is stopped has no lag figure: skipped).
A replica's rows never fill a shared cache (the model cache's version check cannot see replication lag), so
only list and feed reads that are answered directly go through ``reader()``.
"""
from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from dataclasses import dataclass, field

from peewee_async.connection import connection_context

from conf import MySQLURL, Settings
from models.db import SwiperDatabase, db

log = logging.getLogger("swiper.replicas")
CHECK_EVERY = 1.0
_replica_reads_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("replica_reads", default=False)


@dataclass
class Replica:
    name: str  # host:port, for /readyz and /metrics
    database: SwiperDatabase
    state: str = "down"  # ok | lagging | down, as of the last check
    lag: float | None = None


@dataclass
class ReplicaSet:
    replicas: list[Replica] = field(default_factory=list)
    max_lag: float = 5.0
    reads: dict[str, int] = field(default_factory=lambda: {"primary": 0, "replica": 0})
    _turn: itertools.count = field(default_factory=itertools.count)

    def configure(self, settings: Settings) -> None:
        self.replicas = [Replica(f"{url.host}:{url.port}", _database(url, settings)) for url in settings.replicas]
        self.max_lag = settings.replica_max_lag

    async def check(self) -> None:
        """Ask every replica how far behind it is (``SHOW SLAVE STATUS``; needs the REPLICA MONITOR grant)."""
        await asyncio.gather(*(self._check(replica) for replica in self.replicas))

    async def _check(self, replica: Replica) -> None:
        try:
            async with asyncio.timeout(2.0):
                status = await replica.database.aio_execute_sql("SHOW SLAVE STATUS", fetch_results=_first_dict)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not read there
            if replica.state != "down":
                log.warning("replica %s down: %s", replica.name, exc)
            replica.state, replica.lag = "down", None
            return
        lag = status.get("Seconds_Behind_Master") if status else None
        replica.lag = float(lag) if lag is not None else None
        state = "ok" if replica.lag is not None and replica.lag <= self.max_lag else "lagging"
        if state != replica.state:
            log.log(logging.INFO if state == "ok" else logging.WARNING, "replica %s %s (lag %s s)", replica.name,
                    state, replica.lag)
        replica.state = state

    async def run(self) -> None:
        """The process's checker (started and cancelled by server.py)."""
        while True:
            await self.check()
            await asyncio.sleep(CHECK_EVERY)

    def healthy(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == "ok"]

    def states(self) -> dict[str, str]:
        return {r.name: r.state for r in self.replicas}

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.database.aio_close()


replicas = ReplicaSet()


def _database(url: MySQLURL, settings: Settings) -> SwiperDatabase:
    replica = SwiperDatabase(None)
    replica.query_timeout = settings.mysql_query_timeout
    replica.init(url.database, host=url.host, port=url.port, user=url.user, password=url.password,
                 charset="utf8mb4", connect_timeout=settings.mysql_connect_timeout,
                 pool_params={"minsize": 0, "maxsize": settings.mysql_pool_size, "pool_recycle": 600})
    return replica


async def _first_dict(_db: object, cursor) -> dict | None:
    row = await cursor.fetchone()
    if row is None:
        return None
    return dict(zip([column[0] for column in cursor.description], row))


def allow_replica_reads(allowed: bool) -> None:
    """Set for the current request (its task): may its lag-tolerant reads go to a replica?"""
    _replica_reads_allowed.set(allowed)


def reader() -> SwiperDatabase:
    """The database for one lag-tolerant read (see the module's docstring)."""
    if replicas.replicas and _replica_reads_allowed.get() and connection_context.get() is None:
        healthy = replicas.healthy()
        if healthy:
            replicas.reads["replica"] += 1
            return healthy[next(replicas._turn) % len(healthy)].database
    replicas.reads["primary"] += 1
    return db
