"""The feed walk for a viewer with a search origin: candidates in range, nearest rings first, then the most
recently active, never anyone I swiped.

It reads the ``user_near`` index ``(geo_coarse, gender, last_active_at, birthday, geo_cell)``: one ordered
range per (coarse cell, gender), newest activity first, with the age and — for a coarse cell only partly in
range — the exact cells checked inside the index, and my swipes left out by a probe of ``swipe_pair`` per entry
(blocks and bans likewise: ``safety.visibility``).
Each subquery stops at ``limit`` rows, so a walk reads at most ``limit`` rows per coarse cell plus the swiped
and out-of-range people it steps over: its cost follows the page, my swipes and the area, never the number of
users. Rings are read in order and the walk stops once it has ``limit`` candidates, so in a city it rarely goes
past the first two or three rings.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from models.replicas import reader
from services.location.coverage import Part, part, ring_cells
from services.safety import visibility

SUBQUERIES_PER_STATEMENT = 64
OCCUPANCY_BATCH = 512  # coarse cells asked about per statement (a few rings at a time)
# one index dive per cell, stopped at its first entry: a DISTINCT over an IN list is a loose index scan only while
# the optimizer picks one (with one cell it reads every entry of that cell: 35,022 at a million users)
_OCCUPIED_PROBE = "(SELECT geo_coarse FROM user FORCE INDEX (user_near) WHERE geo_coarse = %s LIMIT 1)"
_SUBQUERY = """(SELECT u.id, u.last_active_at FROM user AS u FORCE INDEX (user_near)
 LEFT JOIN swipe AS s ON s.user_id = %s AND s.target_id = u.id
 WHERE u.geo_coarse = %s AND u.gender = %s AND u.birthday BETWEEN %s AND %s AND s.user_id IS NULL
   AND u.id != %s AND {visible}{cells}{exclude}
 ORDER BY u.last_active_at DESC LIMIT {limit})"""


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


def _subquery(part: Part, gender: str, *, me: int, oldest: dt.date, youngest: dt.date, exclude: list[int],
              limit: int) -> tuple[str, list]:
    params: list = [me, part.coarse, gender, oldest, youngest, me, *visibility.params(me)]
    cells = ""
    if part.ranges is not None:
        cells = " AND (" + " OR ".join(["u.geo_cell BETWEEN %s AND %s"] * len(part.ranges)) + ")"
        params += [bound for pair in part.ranges for bound in pair]
    excluded = ""
    if exclude:
        excluded = " AND u.id NOT IN (" + ",".join(["%s"] * len(exclude)) + ")"
        params += exclude
    return _SUBQUERY.format(cells=cells, exclude=excluded, limit=int(limit),
                            visible=visibility.visible_sql("u.id")), params


async def _ring_candidates(parts: list[Part], genders: tuple[str, ...], limit: int, **filter_: Any) -> list[int]:
    """The ring's ``limit`` most recently active candidates, in that order."""
    pieces = [_subquery(part, gender, limit=limit, **filter_) for part in parts for gender in genders]
    rows: list[tuple] = []
    for start in range(0, len(pieces), SUBQUERIES_PER_STATEMENT):
        chunk = pieces[start:start + SUBQUERIES_PER_STATEMENT]
        sql = ("SELECT id, last_active_at FROM (" + " UNION ALL ".join(text for text, _ in chunk)
               + f") AS near ORDER BY last_active_at DESC LIMIT {int(limit)}")
        rows += await reader().aio_execute_sql(sql, [p for _, params in chunk for p in params], fetch_results=_fetchall)
    rows.sort(key=lambda row: row[1], reverse=True)
    return [row[0] for row in rows[:limit]]


async def _occupied(cells: list[int]) -> set[int]:
    """Which of these coarse cells anybody is in: one statement of one-entry probes of ``user_near``'s first
    column, so far rings of a wide radius cost a statement per few rings, not a subquery per empty cell, and the
    statement reads one index entry per cell however many people a cell holds."""
    sql = " UNION ALL ".join([_OCCUPIED_PROBE] * len(cells))
    return {row[0] for row in await reader().aio_execute_sql(sql, cells, fetch_results=_fetchall)}


async def walk(*, origin: int, min_km: int, max_km: int, me: int, genders: tuple[str, ...], oldest: dt.date,
               youngest: dt.date, exclude: list[int], limit: int) -> tuple[list[int], bool]:
    """Up to ``limit`` candidate ids in feed order, and whether the walk reached the end of the range."""
    found: list[int] = []
    ring, ended = 0, False
    while len(found) < limit and not ended:
        batch: list[list[int]] = []  # the next rings, until enough cells to ask about
        while sum(map(len, batch)) < OCCUPANCY_BATCH:
            cells = await ring_cells(origin, min_km, max_km, ring)
            if cells is None:
                ended = True
                break
            batch.append(cells)
            ring += 1
            if ring <= 2:  # the first rings are usually enough on their own
                break
        everyone = [cell for cells in batch for cell in cells]
        occupied = await _occupied(everyone) if everyone else set()
        for cells in batch:
            parts = [p for p in (part(origin, min_km, max_km, cell) for cell in cells if cell in occupied)
                     if p is not None]
            if parts:
                found += await _ring_candidates(parts, genders, limit - len(found), me=me, oldest=oldest,
                                                youngest=youngest, exclude=exclude)
            if len(found) >= limit:
                return found, False
    return found, True
