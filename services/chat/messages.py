"""A match's conversation: send, history, read positions, typing, and closing it.

The ``match`` row is the conversation, and every send locks it (the UPDATE that claims the next ``seq``) in the
transaction that stores the message: so "are they still matched?" is answered inside that transaction (an
unmatch that committed first leaves no row: 1014, nothing stored; one that comes later waits, then deletes the
message with the rest), and ``seq`` is the row's ``last_seq`` + 1: 1, 2, 3… in commit order, no gap, no
duplicate, on any process. A retried send (same sender and ``client_id``) hits the unique key (match, sender,
client_id): its transaction rolls back, claim included, and the first message is the answer. The answer comes
after the commit; the events after it.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import peewee
from redis.asyncio import Redis
from redis.exceptions import RedisError

from conf import Settings
from models import db
from models.base import utcnow
from models.db import with_retries
from services import keys, ratelimit
from services.chat.events import EventPublisher
from services.cursors import decode_cursor, encode_cursor
from services.errors import InvalidParamsError, NotMatchedError

log = logging.getLogger("swiper.chat")
TYPING_EVERY = 3            # seconds: at most one typing event relayed per pair in this time
_COLUMNS = "id, seq, sender_id, text, client_id, created_at"


def pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


@dataclass(frozen=True)
class Conversation:
    match_id: int
    last_seq: int
    me_is_a: bool
    my_read_seq: int

    @property
    def side(self) -> str:
        """My side's column prefix in the match row (``a`` is the lower user id)."""
        return "a" if self.me_is_a else "b"


async def _one(_db: Any, cursor: Any) -> tuple | None:
    return await cursor.fetchone()


async def _all(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


def message_view(row: tuple) -> dict[str, Any]:
    message_id, seq, sender_id, text, client_id, created_at = row
    return {"id": message_id, "seq": seq, "from": sender_id, "text": text, "client_id": client_id,
            "sent_at": created_at.replace(tzinfo=dt.timezone.utc)}


_MAY_NOT_TALK = ("SELECT 1 FROM block WHERE (user_id = %s AND target_id = %s) OR (user_id = %s AND target_id = %s) "
                 "UNION ALL SELECT 1 FROM ban WHERE user_id IN (%s, %s) LIMIT 1")


async def may_talk(me: int, other: int) -> None:
    """Inside the send transaction, with the conversation locked: anything besides the match that forbids it.

    A block or a ban deletes the match in its own transaction, so this only closes the window of one that
    commits while a send is on its way; a deleted account has no match left at all."""
    if await db.aio_execute_sql(_MAY_NOT_TALK, (me, other, other, me, me, other), fetch_results=_one):
        raise NotMatchedError()


_FIND = "SELECT id, last_seq, a_read_seq, b_read_seq FROM `match` WHERE user_a = %s AND user_b = %s"
_LOCK = _FIND + " FOR UPDATE"  # unmatch and read positions lock the conversation like a send does


async def _conversation(me: int, other: int, *, lock: bool) -> Conversation:
    low, high = pair(me, other)
    row = await db.aio_execute_sql(_LOCK if lock else _FIND, (low, high), fetch_results=_one)
    if row is None:
        raise NotMatchedError()
    me_is_a = me == low
    return Conversation(match_id=row[0], last_seq=row[1], me_is_a=me_is_a, my_read_seq=row[2 if me_is_a else 3])


_EXISTING = f"SELECT {_COLUMNS} FROM message WHERE match_id = %s AND sender_id = %s AND client_id = %s"
# Claim the next seq: the UPDATE locks the conversation until the commit (senders of one conversation queue
# here) and hands the new seq back through LAST_INSERT_ID(expr), which the driver reports as the statement's
# insert id. The sender has seen the conversation up to their own message. No row: not matched.
_CLAIM_SEQ = ("UPDATE `match` SET last_seq = LAST_INSERT_ID(last_seq + 1), last_activity_at = %s, "
              "{side}_read_seq = last_seq WHERE user_a = %s AND user_b = %s")
_INSERT = ("INSERT INTO message (match_id, seq, sender_id, client_id, text, created_at) "
           "SELECT id, %s, %s, %s, %s, %s FROM `match` WHERE user_a = %s AND user_b = %s")


async def _claim(_db: Any, cursor: Any) -> int | None:
    return cursor.lastrowid if cursor.rowcount == 1 else None


async def send_message(*, redis: Redis, settings: Settings, events: EventPublisher,
                       fallback: ratelimit.LocalWindows, sender_id: int, other_id: int, text: str,
                       client_id: str) -> tuple[dict[str, Any], ratelimit.Verdict]:
    """Store a message (or find the one this ``client_id`` stored before) and tell both sides' devices.

    Three round trips hold the conversation's lock (claim the seq, insert, commit), so one conversation takes a
    few hundred messages a second; a repeated ``client_id`` fails the insert on its unique key, the claim rolls
    back with it, and the first message is the answer."""
    verdict = await ratelimit.check(redis=redis, fallback=fallback, scope="message", identity=str(sender_id),
                                    limit=settings.message_rate_limit, window=60)
    low, high = pair(sender_id, other_id)
    side = "a" if sender_id == low else "b"

    async def transaction() -> tuple:
        async with db.aio_atomic():
            now = utcnow()
            seq = await db.aio_execute_sql(_CLAIM_SEQ.format(side=side), (now, low, high), fetch_results=_claim)
            if seq is None:
                raise NotMatchedError()
            await may_talk(sender_id, other_id)
            message_id = await db.aio_execute_sql(_INSERT, (seq, sender_id, client_id, text, now, low, high),
                                                  fetch_results=_last_id)
            return message_id, seq, sender_id, text, client_id, now

    try:
        row, stored = await with_retries(transaction), True
    except peewee.IntegrityError:  # this client_id stored a message before (or a concurrent twin just did)
        conversation = await _conversation(sender_id, other_id, lock=False)
        row = await db.aio_execute_sql(_EXISTING, (conversation.match_id, sender_id, client_id), fetch_results=_one)
        if row is None:
            raise
        stored = False
    message = message_view(row)
    if stored:
        await events.publish_many([
            (other_id, {"type": "message", "user_id": sender_id, "message": message}),
            (sender_id, {"type": "message", "user_id": other_id, "message": message}),  # my other devices
        ])
    return message, verdict


async def _last_id(_db: Any, cursor: Any) -> int:
    return cursor.lastrowid


async def list_messages(*, settings: Settings, me: int, other: int, after: int | None, before: int | None,
                        cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """``after``: older to newer from after+1; ``before`` (or neither: the latest): newer to older."""
    cursor = cursor or None
    if sum(value is not None for value in (after, before, cursor)) > 1:
        raise InvalidParamsError.for_fields({"cursor": "give one of after, before and cursor"})
    if cursor is not None:
        position = decode_cursor(settings, cursor)
        after, before = position.get("after"), position.get("before")
        if not any(isinstance(value, int) for value in (after, before)):
            raise InvalidParamsError.for_fields({"cursor": "not a cursor this server issued"})
    conversation = await _conversation(me, other, lock=False)
    if after is not None:
        sql = f"SELECT {_COLUMNS} FROM message WHERE match_id = %s AND seq > %s ORDER BY seq LIMIT %s"
        params: tuple = (conversation.match_id, after, limit + 1)
    else:
        bound = before if before is not None else conversation.last_seq + 1
        sql = f"SELECT {_COLUMNS} FROM message WHERE match_id = %s AND seq < %s ORDER BY seq DESC LIMIT %s"
        params = (conversation.match_id, bound, limit + 1)
    rows = await db.aio_execute_sql(sql, params, fetch_results=_all)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        direction = "after" if after is not None else "before"
        next_cursor = encode_cursor(settings, {direction: page[-1][1]})
    return [message_view(row) for row in page], next_cursor


async def mark_read(*, events: EventPublisher, me: int, other: int, seq: int) -> None:
    """I have read up to ``seq`` (never backwards, never past the last message); both sides' devices hear it."""
    async with db.aio_atomic():
        conversation = await _conversation(me, other, lock=True)
        target = min(seq, conversation.last_seq)
        moved = target > conversation.my_read_seq
        if moved:
            await db.aio_execute_sql(f"UPDATE `match` SET {conversation.side}_read_seq = %s WHERE id = %s",
                                     (target, conversation.match_id))
    if moved:
        await events.publish_many([(me, {"type": "read", "user_id": other, "by": me, "seq": target}),
                                   (other, {"type": "read", "user_id": me, "by": me, "seq": target})])


async def relay_typing(*, redis: Redis, events: EventPublisher, sender: int, other: int) -> bool:
    """A typing notice to the other side: dropped unless matched, at most one per pair per ``TYPING_EVERY``."""
    try:
        if not await redis.set(keys.typing(sender, other), "1", nx=True, ex=TYPING_EVERY):
            return False
    except RedisError:
        return False
    try:
        await _conversation(sender, other, lock=False)
    except NotMatchedError:
        return False
    await events.publish(other, {"type": "typing", "user_id": sender})
    return True


async def delete_conversation(match_id: int) -> None:
    """Inside the transaction that deletes the match: its messages go with it (reports keep their own copies)."""
    await db.aio_execute_sql("DELETE FROM message WHERE match_id = %s", (match_id,))


async def drop_conversation(user_id: int, other_id: int) -> bool:
    """Inside a transaction: lock the match, delete it and its messages; False when they were not matched.
    (Unmatch, blocks, bans and account deletions all end conversations through here; the caller announces.)"""
    try:
        conversation = await _conversation(user_id, other_id, lock=True)
    except NotMatchedError:
        return False
    await delete_conversation(conversation.match_id)
    await db.aio_execute_sql("DELETE FROM `match` WHERE id = %s", (conversation.match_id,))
    return True


_PARTNERS = "SELECT user_b FROM `match` WHERE user_a = %s UNION ALL SELECT user_a FROM `match` WHERE user_b = %s"


async def drop_all_conversations(user_id: int) -> list[int]:
    """Inside a transaction (a ban, an account deletion): end every match of the user; returns the others."""
    ended = []
    for (other,) in await db.aio_execute_sql(_PARTNERS, (user_id, user_id), fetch_results=_all):
        if await drop_conversation(user_id, other):
            ended.append(other)
    return ended


async def close_conversation(*, events: EventPublisher, user_id: int, other_id: int) -> None:
    """End a match for both: the match row and its messages go in one transaction, then both sides are told."""
    async with db.aio_atomic():
        if not await drop_conversation(user_id, other_id):
            raise NotMatchedError()
    await announce_unmatched(events=events, a=user_id, b=other_id)


async def announce_unmatched(*, events: EventPublisher, a: int, b: int) -> None:
    await events.publish_many([(a, {"type": "unmatched", "user_id": b}), (b, {"type": "unmatched", "user_id": a})])


async def last_messages(keys_: list[tuple[int, int]]) -> dict[int, dict[str, Any]]:
    """The newest message of each (match id, last seq), for the matches list: one statement."""
    wanted = [(match_id, seq) for match_id, seq in keys_ if seq > 0]
    if not wanted:
        return {}
    placeholders = ",".join(["(%s, %s)"] * len(wanted))
    rows = await db.aio_execute_sql(
        f"SELECT match_id, {_COLUMNS} FROM message WHERE (match_id, seq) IN ({placeholders})",
        tuple(value for item in wanted for value in item), fetch_results=_all)
    return {row[0]: message_view(row[1:]) for row in rows}
