"""The process's open sockets: one pub/sub subscription feeds them all, each socket through its own ``Feed``.

A ``Feed`` is what one socket receives, in event-id order and each event once: on connect with ``after`` it is
registered first (live events start arriving and are held), then the stream is read after ``after``, those
frames are sent, and the held live ones follow, skipping any id already sent. Because an event enters the stream
and the channel in one atomic step, anything not in the replay arrives live. When the subscription is lost and
comes back, every feed catches up the same way from the last id it sent, so a subscription outage costs
latency, not events.

A process never waits on a slow socket: frames are handed to the socket's buffer; a socket with more than
``pending_limit`` frames not yet flushed to the kernel is closed (code 1013, try again later) and resumes with
``after``.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from models import User
from services import keys
from services.redis_client import run_subscription, stop_subscription
from services.chat.events import EventPublisher, frame, parse_id

log = logging.getLogger("swiper.sockets")
PENDING_LIMIT = 2000        # frames not yet flushed before a socket counts as fallen behind
HELD_LIMIT = 5000           # live frames held while a replay runs
REPLAY_BATCH = 50           # frames a replay writes per loop step
FELL_BEHIND = 1013          # WebSocket close code "try again later": reconnect and resume with after
PING_INTERVAL = 1.0         # seconds between pings of the subscription when nothing arrives
SESSION_ENDED = 1008        # WebSocket close code "policy violation": banned, deleted, or every session ended


class FrameWriter(Protocol):
    """What a socket offers a feed (the WebSocket handler implements it)."""

    def send_frame(self, data: bytes) -> None:
        """Queue one text frame without waiting; the socket counts it pending until it is flushed."""

    @property
    def pending(self) -> int:
        """Frames handed over but not yet flushed."""

    def close_socket(self, code: int, reason: str) -> None: ...


class Feed:
    def __init__(self, *, user_id: int, writer: FrameWriter, publisher: EventPublisher,
                 pending_limit: int = PENDING_LIMIT, gen: int = 0) -> None:
        self.user_id = user_id
        self.gen = gen  # the session generation the socket was opened in (``accounts.check_session``)
        self.writer = writer
        self.publisher = publisher
        self.pending_limit = pending_limit
        self.last_id: str | None = None
        self.sent = 0
        self.closed = False
        self.fell_behind = False
        self._held: list[tuple[str, bytes]] | None = None  # not None while a replay runs
        self._catching_up: asyncio.Task | None = None

    def live(self, event_id: str, event_json: bytes) -> None:
        """An event from the subscription (synchronous: the listener never waits on a socket)."""
        if self.closed:
            return
        if self._held is not None:
            if len(self._held) >= HELD_LIMIT:
                self._fell_behind()
                return
            self._held.append((event_id, event_json))
            return
        self._send(event_id, event_json)

    async def start(self, after: str | None) -> None:
        """Replay what was missed after ``after`` (or nothing: live from now), then go live."""
        if after is not None:
            await self.catch_up(after)

    async def catch_up(self, after: str | None = None) -> None:
        """Send what the stream holds after ``after`` (default: the last id sent), then the held live frames."""
        start = after if after is not None else self.last_id
        if start is None or self.closed:
            return
        self._held = []
        try:
            replay = await self.publisher.replay(self.user_id, start)
            if replay.resync:
                self._send_resync(replay.newest)
            for index, (event_id, event_json) in enumerate(replay.entries, start=1):
                self._send(event_id, event_json)
                if index % REPLAY_BATCH == 0:
                    await asyncio.sleep(0)  # a long replay must not hold the loop (live frames are held meanwhile)
        finally:
            held, self._held = self._held or [], None
        for event_id, event_json in held:
            self._send(event_id, event_json)

    def catch_up_soon(self) -> None:
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.get_running_loop().create_task(self._catch_up_logged())

    async def _catch_up_logged(self) -> None:
        try:
            await self.catch_up()
        except Exception as exc:  # Redis went away again: the next (re)subscription catches up once more
            log.info("socket of user %s: catch-up failed (%s)", self.user_id, exc)

    def _send(self, event_id: str, event_json: bytes) -> None:
        position = parse_id(event_id)
        if self.last_id is not None and position is not None and position <= parse_id(self.last_id):  # type: ignore[operator]
            return  # already sent (replayed, or delivered before a catch-up)
        self._write(frame(event_id, event_json))
        self.last_id = event_id

    def _send_resync(self, newest: str | None) -> None:
        self._write(frame(newest, b'{"type":"resync"}'))
        if newest is not None:
            self.last_id = newest

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.writer.pending >= self.pending_limit:
            self._fell_behind()
            return
        self.writer.send_frame(data)
        self.sent += 1

    def _fell_behind(self) -> None:
        self.closed = self.fell_behind = True
        self.writer.close_socket(FELL_BEHIND, "fell behind; reconnect with after")


class SocketHub:
    """User id → this process's feeds, and the one subscription that feeds them."""

    def __init__(self, *, redis: Redis, publisher: EventPublisher) -> None:
        self.redis = redis
        self.publisher = publisher
        self.feeds: dict[int, set[Feed]] = {}
        self.live = asyncio.Event()
        self.delivered = 0          # frames written to sockets that have closed since (``delivered_total``)
        self.dropped = 0            # sockets closed for falling behind
        self.on_state: list[Callable[[bool], None]] = []
        self._task: asyncio.Task | None = None
        self._rechecks: set[asyncio.Task] = set()

    @property
    def sockets(self) -> int:
        return sum(len(feeds) for feeds in self.feeds.values())

    def attach(self, feed: Feed) -> None:
        self.feeds.setdefault(feed.user_id, set()).add(feed)

    def detach(self, feed: Feed) -> None:
        feeds = self.feeds.get(feed.user_id)
        if feeds is not None:
            feeds.discard(feed)
            if not feeds:
                del self.feeds[feed.user_id]
        self.delivered += feed.sent
        feed.sent = 0
        if feed.fell_behind:
            self.dropped += 1
            feed.fell_behind = False

    def delivered_total(self) -> int:
        """Frames written to sockets by this process, the open ones included (for /metrics)."""
        return self.delivered + sum(feed.sent for feed in self.all_feeds())

    def all_feeds(self) -> list[Feed]:
        return [feed for feeds in self.feeds.values() for feed in feeds]

    def dispatch(self, message: str) -> None:
        """``<user id>\\t<event id>\\t<event json>`` from the channel, to that user's feeds on this process."""
        user, _, rest = message.partition("\t")
        feeds = self.feeds.get(int(user)) if user.isdigit() else None
        if not feeds:
            return
        event_id, _, event_json = rest.partition("\t")
        data = event_json.encode()
        for feed in list(feeds):
            feed.live(event_id, data)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="events-subscriber")

    async def stop(self) -> None:
        await stop_subscription(self._task)
        self._task = None
        self.live.clear()

    async def _run(self) -> None:
        await run_subscription(self.redis, keys.events_channel(), ping_interval=PING_INTERVAL,
                               on_subscribed=self._subscribed, on_message=self.dispatch, on_lost=self._lost)

    def _subscribed(self) -> None:
        """Also after a reconnect inside redis-py: what came meanwhile is lost, so every feed catches up."""
        self._set_live(True)
        self.publisher.settle_debts_soon()
        for feed in self.all_feeds():
            feed.catch_up_soon()

    def _lost(self, exc: Exception | None) -> None:
        if exc is not None and self.live.is_set():
            log.warning("events subscription lost (%s); feeds catch up when it is back", exc)
        self._set_live(False)

    def _set_live(self, live: bool) -> None:
        if live:
            self.live.set()
        else:
            self.live.clear()
        for callback in self.on_state:
            callback(live)

    def account_changed(self, cache: str, key: str) -> None:
        """An account change was announced (``LocalCaches.on_announcement``): if its owner has sockets here, check
        that their sessions still stand (a ban or a deletion ends them) without holding up the listener."""
        if cache != "User" or not key.isdigit() or int(key) not in self.feeds:
            return
        task = asyncio.get_running_loop().create_task(self._recheck(int(key)))
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def _recheck(self, user_id: int) -> None:
        try:
            row = await User.select(User.session_gen, User.banned_at).where(User.id == user_id).aio_first()
        except Exception as exc:  # the socket stays; its next upgrade checks again
            log.info("socket of user %s: session not rechecked (%s)", user_id, exc)
            return
        for feed in list(self.feeds.get(user_id, ())):
            if row is None or row.banned_at is not None or (row.session_gen or 0) != feed.gen:
                feed.closed = True
                feed.writer.close_socket(SESSION_ENDED, "session ended")

    def close_all(self, code: int, reason: str) -> int:
        """Draining: every socket is told to reconnect elsewhere (1012: service restart)."""
        feeds = self.all_feeds()
        for feed in feeds:
            feed.closed = True
            feed.writer.close_socket(code, reason)
        return len(feeds)
