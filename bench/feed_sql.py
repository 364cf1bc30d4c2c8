"""The feed query of the benchmarks' viewer as SQL text, and two rewrites of it, for EXPLAIN/ANALYZE.

``bench.fixtures`` writes them (``feed.sql``, ``feed_covering.sql``, ``feed_watermark.sql``); ``bench.social``
times them on every run.
"""
from __future__ import annotations

import datetime as dt

from peewee import fn

from conf import Settings
from models import User
from services import recommendations
from services.accounts import load_account


def inline_sql(query) -> str:
    """peewee's (sql, params) with the parameters inlined as MariaDB literals (for EXPLAIN only)."""
    sql, params = query.sql()
    parts = sql.split("%s")
    assert len(parts) == len(params) + 1, (sql, params)

    def literal(value) -> str:
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, (dt.date, dt.datetime)):
            return f"'{value}'"
        return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"

    out = [parts[0]]
    for value, rest in zip(params, parts[1:]):
        out.append(literal(value))
        out.append(rest)
    return "".join(out)


async def feed_sqls(viewer_id: int, swiped: list[int], settings: Settings, redis) -> dict[str, str]:
    """The main query of ``recommend`` for the viewer (no superlikers, so it is the only SQL the feed runs), and
    two rewrites of it for comparison, each with the parameters inlined.

    - ``feed``: the walk of ``services.recommendations`` with the page's columns (the service itself reads ids
      only, keeps them, and reads the rows by id).
    - ``feed_covering``: the same filter selecting only ``id, last_active_at`` (all in ``user_feed``, so the walk
      over the swiped users needs no row lookups) in a derived table, joined back to ``user`` for the page's rows.
    - ``feed_watermark``: the original plus ``last_active_at < <the least recently active swiped user>``: what the
      query costs when it does not have to step over the swiped users (as with a stored per-viewer position).
    """
    account = await load_account(redis=redis, settings=settings, user_id=viewer_id)
    where = (await recommendations.feed_filter(account, settings)).where()
    fields = [getattr(User, name) for name in recommendations.PAGE_COLUMNS]
    order = User.last_active_at.desc()
    queries = {"feed": User.select(*fields).where(where).order_by(order).limit(10)}
    inner = User.select(User.id, User.last_active_at).where(where).order_by(order).limit(10).alias("f")
    queries["feed_covering"] = (User.select(*fields).join(inner, on=(User.id == inner.c.id))
                                .order_by(inner.c.last_active_at.desc()))
    if swiped:
        watermark = await User.select(fn.MIN(User.last_active_at)).where(User.id.in_(swiped)).aio_scalar()
        queries["feed_watermark"] = (User.select(*fields)
                                     .where(where & (User.last_active_at < watermark)).order_by(order).limit(10))
    return {name: inline_sql(query) for name, query in queries.items()}
