"""The MySQL pool hands out connections in the order they were asked for (a real pool against MariaDB)."""
from __future__ import annotations

import asyncio

from conf import parse_mysql_url
from models.db import FairMysqlPool


async def test_a_waiter_is_served_before_anyone_who_asks_after_it(settings):
    url = parse_mysql_url(settings.mysql_url)
    pool = FairMysqlPool(database=url.database, host=url.host, port=url.port, user=url.user, password=url.password,
                         minsize=0, maxsize=1)
    await pool.connect()
    served: list[str] = []

    async def use(name: str) -> None:
        conn = await pool.acquire()
        served.append(name)
        await asyncio.sleep(0.01)
        await pool.release(conn)

    try:
        holder = await pool.acquire()
        first = asyncio.create_task(use("first waiter"))
        await asyncio.sleep(0.01)  # it is queued now
        await pool.release(holder)
        # someone arriving right as the connection comes back: aiomysql alone would hand it to them first
        late = asyncio.create_task(use("latecomer"))
        await asyncio.gather(first, late)
        assert served == ["first waiter", "latecomer"]
    finally:
        await pool.close()
