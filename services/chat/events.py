"""Per-user event streams: the one way to publish an event, and replay from an ``event_id``.

Each user has a Redis stream (``events:<id>``, capped at about ``STREAM_LENGTH`` entries and kept
``STREAM_TTL`` after its newest one). An event is published by one script that appends it to the stream and
PUBLISHes it on the process-wide channel in the same atomic step: so every subscriber sees a user's live events
in stream order, and an event is either in the stream (replayable) or nowhere. Its ``event_id`` is the stream
entry's id: increasing per user, the same on all of a user's devices.

MySQL is the truth: an event that cannot be published (Redis down) does not fail what caused it. The user is
owed a ``resync`` instead: the publisher remembers them and, once Redis answers again, appends a resync marker to
their stream, so a client resuming past the lost events is told to reload rather than shown a silent gap.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services import jsoncodec, keys

log = logging.getLogger("swiper.events")
STREAM_LENGTH = 1000        # at least this many recent events are kept per user (MAXLEN ~ keeps more, never less)
STREAM_TTL = 24 * 3600      # a stream lives this long after its newest event
REPLAY_MAX = 5000           # entries one replay reads (the cap keeps it near STREAM_LENGTH anyway)
_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")

_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\\t' .. id .. '\\t' .. ARGV[1])
return id
"""


def parse_id(event_id: str) -> tuple[int, int] | None:
    """A stream id as a comparable pair, or None for anything the server did not issue."""
    if not isinstance(event_id, str) or not _ID.fullmatch(event_id):
        return None
    milliseconds, sequence = event_id.split("-")
    return int(milliseconds), int(sequence)


def frame(event_id: str | None, event_json: bytes) -> bytes:
    """The frame a client receives: the event with its ``event_id`` first."""
    identifier = jsoncodec.dumps(event_id)
    return b'{"event_id":' + identifier + (b"," + event_json[1:] if event_json != b"{}" else b"}")


@dataclass(frozen=True)
class Replay:
    """What a client missed after an id: the frames in order, or ``resync`` (with the newest id to resume after)."""

    entries: list[tuple[str, bytes]]
    resync: bool
    newest: str | None


class EventPublisher:
    """The process's one way to publish events (built in ``server.py``, reached through the handlers)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.owed_resync: set[int] = set()
        self.published = 0
        self._repairing: asyncio.Task | None = None

    async def publish(self, user_id: int, event: dict[str, Any]) -> str | None:
        """Append ``event`` to the user's stream and fan it out; None (and a resync owed) if Redis failed."""
        ids = await self.publish_many([(user_id, event)])
        return ids[0]

    async def publish_many(self, events: Iterable[tuple[int, dict[str, Any]]]) -> list[str | None]:
        """Several events in one round trip (each user's in the order given). Never raises for Redis."""
        events = list(events)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id, event in events:
                    pipe.eval(_PUBLISH, 1, keys.event_stream(user_id), jsoncodec.dumps(event), STREAM_LENGTH,
                              STREAM_TTL, keys.events_channel(), user_id)
                ids = await pipe.execute()
        except (RedisError, OSError) as exc:
            owed = {user_id for user_id, _ in events}
            self.owed_resync |= owed
            log.warning("events for %d users not published (%s): they are owed a resync", len(owed), exc)
            return [None] * len(events)
        self.published += len(ids)
        return list(ids)

    async def settle_debts(self) -> None:
        """Once Redis answers again: a resync marker to every user whose events were lost. Pooled connections
        that died with the outage fail once each, so this tries again (with a growing pause) until all are out."""
        pause = 0.1
        while self.owed_resync:
            users = list(self.owed_resync)
            self.owed_resync.clear()
            ids = await self.publish_many((user_id, {"type": "resync"}) for user_id in users)
            if any(i is None for i in ids):  # still failing: publish_many put them back on the list
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            log.info("resync markers published for %d users", len(users))

    def settle_debts_soon(self) -> None:
        if self.owed_resync and (self._repairing is None or self._repairing.done()):
            self._repairing = asyncio.get_running_loop().create_task(self.settle_debts(), name="events-settle")

    async def replay(self, user_id: int, after: str) -> Replay:
        """Every event after ``after``, or a resync when that is no longer possible: ``after`` not an id the
        server issued, older than what the stream keeps, newer than its newest, or the stream gone (it lives 24 h
        after its newest event, and Redis may have lost it)."""
        position = parse_id(after)
        key = keys.event_stream(user_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xrange(key, "-", "+", count=1)
            pipe.xrevrange(key, "+", "-", count=1)
            if position is not None:
                pipe.xrange(key, f"({after}", "+", count=REPLAY_MAX)
            results = await pipe.execute()
        oldest, newest = results[0], results[1]
        newest_id = newest[0][0] if newest else None
        if position is None or not oldest or parse_id(oldest[0][0]) > position or \
                parse_id(newest_id) < position:  # type: ignore[operator]
            return Replay([], True, newest_id)
        return Replay([(entry_id, fields["e"].encode() if isinstance(fields["e"], str) else fields["e"])
                       for entry_id, fields in results[2]], False, newest_id)
