"""Who may see whom: neither has blocked the other and the other is not banned.

``hidden_sql(column)`` is a condition on ``column`` (another user's id) taking the viewer's id twice, in the
order given by ``params(me)``: three primary-key probes (``block`` both ways, ``ban``), like the feed's probe of
``swipe_pair``, so it can go into an index walk without reading rows.
"""
from __future__ import annotations

from typing import Any

import peewee
from peewee import fn

from models import db
from models.safety import Ban, Block

_VISIBLE = ("NOT EXISTS (SELECT 1 FROM block WHERE block.user_id = %s AND block.target_id = {col}) "
            "AND NOT EXISTS (SELECT 1 FROM block WHERE block.user_id = {col} AND block.target_id = %s) "
            "AND NOT EXISTS (SELECT 1 FROM ban WHERE ban.user_id = {col})")


def visible_sql(column: str) -> str:
    """The condition, for plain SQL; its parameters are ``params(me)``."""
    return _VISIBLE.format(col=column)


def params(me: int) -> tuple[int, int]:
    return me, me


def visible_expr(me: int, column: Any) -> peewee.Expression:
    """The same condition for a peewee query (``column``: a field holding the other user's id)."""
    mine = Block.alias("mine")
    theirs = Block.alias("theirs")
    blocked = mine.select(peewee.SQL("1")).where((mine.user_id == me) & (mine.target_id == column))
    blocking = theirs.select(peewee.SQL("1")).where((theirs.user_id == column) & (theirs.target_id == me))
    banned = Ban.select(peewee.SQL("1")).where(Ban.user_id == column)
    return ~fn.EXISTS(blocked) & ~fn.EXISTS(blocking) & ~fn.EXISTS(banned)


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


async def hidden_from(me: int) -> set[int]:
    """Everyone blocked by me or blocking me (a short list: for the ranking, which lives in Redis)."""
    rows = await db.aio_execute_sql(
        "SELECT target_id FROM block WHERE user_id = %s UNION SELECT user_id FROM block WHERE target_id = %s",
        (me, me), fetch_results=_fetchall)
    return {row[0] for row in rows}


async def can_see(me: int, other: int) -> bool:
    """Whether ``other`` is visible to ``me`` (themselves always are)."""
    if me == other:
        return True
    rows = await db.aio_execute_sql(f"SELECT 1 FROM DUAL WHERE {visible_sql('%s')}",
                                    (me, other, other, me, other), fetch_results=_fetchall)
    return bool(rows)
