"""Reports: a case is one reporter about one user while it is open; every report is a filing of it, with its
reason and detail, and the messages it names are copied into the case (they outlive the conversation). A report
also blocks. One transaction does all of it, so a report never exists without its block, or half its messages.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from models import User, db
from models.base import utcnow
from models.db import with_retries
from services.chat import messages as chat
from services.chat.events import EventPublisher
from services.errors import ConflictError, InvalidParamsError, NotFoundError
from services.safety.blocks import block_in_transaction, forget_feeds

# The open case of this pair, or a new one: its id either way (LAST_INSERT_ID(id) on the duplicate).
_OPEN_CASE = ("INSERT INTO report_case (reporter_id, reported_id, reason, state, filings, opened_at, updated_at) "
              "VALUES (%s, %s, %s, 'open', 1, %s, %s) "
              "ON DUPLICATE KEY UPDATE filings = filings + 1, updated_at = VALUES(updated_at), id = LAST_INSERT_ID(id)")
_FILING = "INSERT INTO report_filing (case_id, reason, detail, created_at) VALUES (%s, %s, %s, %s)"
_MATCH = "SELECT id FROM `match` WHERE user_a = %s AND user_b = %s FOR UPDATE"
_COPY = ("INSERT IGNORE INTO report_message (case_id, message_id, seq, sender_id, text, sent_at) "
         "SELECT %s, id, seq, sender_id, text, created_at FROM message WHERE match_id = %s AND id IN ({ids})")


async def _last_id(_db: Any, cursor: Any) -> int:
    return cursor.lastrowid


async def _one(_db: Any, cursor: Any) -> tuple | None:
    return await cursor.fetchone()


async def _rowcount(_db: Any, cursor: Any) -> int:
    return cursor.rowcount


async def file_report(*, redis: Redis, events: EventPublisher, me: int, target_id: int, reason: str, detail: str,
                      message_ids: list[int]) -> int:
    """File a report (and block); returns the case id, the same while the case is open."""
    if target_id == me:
        raise ConflictError("You cannot report yourself.")
    if not await User.select(User.id).where(User.id == target_id).aio_exists():
        raise NotFoundError("No such user.")
    wanted = sorted(set(message_ids))
    low, high = chat.pair(me, target_id)

    async def transaction() -> tuple[int, bool]:
        async with db.aio_atomic():
            match = await db.aio_execute_sql(_MATCH, (low, high), fetch_results=_one)  # locked: no send slips in
            now = utcnow()
            case_id = await db.aio_execute_sql(_OPEN_CASE, (me, target_id, reason, now, now), fetch_results=_last_id)
            await db.aio_execute_sql(_FILING, (case_id, reason, detail, now))
            if wanted:
                copied = 0
                if match is not None:
                    copied = await db.aio_execute_sql(
                        _COPY.format(ids=",".join(["%s"] * len(wanted))), (case_id, match[0], *wanted),
                        fetch_results=_rowcount)
                known = await db.aio_execute_sql(
                    "SELECT COUNT(*) FROM report_message WHERE case_id = %s AND message_id IN ({})".format(
                        ",".join(["%s"] * len(wanted))), (case_id, *wanted), fetch_results=_one)
                if copied is None or known[0] != len(wanted):
                    raise InvalidParamsError.for_fields({"message_ids": "not all are messages of your conversation"})
            ended = await block_in_transaction(me, target_id)
            return case_id, ended

    case_id, ended = await with_retries(transaction)
    await forget_feeds(redis, me, target_id)
    if ended:
        await chat.announce_unmatched(events=events, a=me, b=target_id)
    return case_id


@dataclass(frozen=True)
class CaseLine:
    id: int
    reporter_id: int
    reported_id: int
    reported_phone: str | None
    reason: str
    filings: int
    opened_at: dt.datetime
    state: str


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


async def list_cases(*, only_open: bool, limit: int = 1000) -> list[CaseLine]:
    """For the operators (``manage.py reports``): newest first."""
    where = "WHERE c.state = 'open'" if only_open else ""
    rows = await db.aio_execute_sql(
        "SELECT c.id, c.reporter_id, c.reported_id, u.phone, c.reason, c.filings, c.opened_at, c.state "
        f"FROM report_case AS c LEFT JOIN user AS u ON u.id = c.reported_id {where} ORDER BY c.id DESC LIMIT %s",
        (limit,), fetch_results=_fetchall)
    return [CaseLine(*row) for row in rows]


async def case_filings(case_id: int) -> list[tuple]:
    """A case's filings (reason, detail, filed at), oldest first; NotFoundError if there is no such case."""
    if not await db.aio_execute_sql("SELECT 1 FROM report_case WHERE id = %s", (case_id,), fetch_results=_fetchall):
        raise NotFoundError(f"No report case {case_id}.")
    return await db.aio_execute_sql(
        "SELECT reason, detail, created_at FROM report_filing WHERE case_id = %s ORDER BY id", (case_id,),
        fetch_results=_fetchall)


async def close_case(case_id: int) -> None:
    """The operators are done with it: a later report of the same user by the same reporter opens a new case.
    Closing a closed case is no error (the command may be run twice)."""
    if not await db.aio_execute_sql("SELECT 1 FROM report_case WHERE id = %s", (case_id,), fetch_results=_fetchall):
        raise NotFoundError(f"No report case {case_id}.")
    await db.aio_execute_sql("UPDATE report_case SET state = 'closed', updated_at = %s WHERE id = %s",
                             (utcnow(), case_id))


async def case_messages(case_id: int) -> list[tuple]:
    """The copied messages of a case: (message id, seq, sender id, text, sent at), in conversation order."""
    return await db.aio_execute_sql(
        "SELECT message_id, seq, sender_id, text, sent_at FROM report_message WHERE case_id = %s ORDER BY seq",
        (case_id,), fetch_results=_fetchall)
