"""One socket's feed (``services.chat.sockets.Feed``) against real Redis streams: replay-then-live ordering,
no duplicate across a catch-up, and a socket that falls behind is closed (1013) instead of holding the process."""
from __future__ import annotations

import json

from services.chat.events import EventPublisher
from services.chat.sockets import FELL_BEHIND, Feed, SocketHub


class RecordingSocket:
    """A FrameWriter that keeps what it was sent; ``stuck`` frames never flush (a client that stopped reading)."""

    def __init__(self, stuck: bool = False) -> None:
        self.frames: list[dict] = []
        self.stuck = stuck
        self.closed: tuple[int, str] | None = None

    def send_frame(self, data: bytes) -> None:
        self.frames.append(json.loads(data))

    @property
    def pending(self) -> int:
        return len(self.frames) if self.stuck else 0

    def close_socket(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def publish(publisher: EventPublisher, user_id: int, n: int) -> list[str]:
    return await publisher.publish_many([(user_id, {"type": "typing", "user_id": i}) for i in range(n)])


async def test_live_frames_arriving_during_a_replay_come_after_it_once(redis, settings):
    publisher = EventPublisher(redis)
    ids = await publish(publisher, 41, 5)
    socket = RecordingSocket()
    feed = Feed(user_id=41, writer=socket, publisher=publisher)
    feed._held = []  # what catch_up does first: live frames from now on are held
    for event_id in ids[3:]:  # the subscription delivers the last two while the replay reads the stream
        feed.live(event_id, json.dumps({"type": "typing", "user_id": 99}).encode())
    feed._held = None
    await feed.catch_up(ids[0])
    assert [f["event_id"] for f in socket.frames] == ids[1:]  # each once, in stream order
    await feed.catch_up()  # a catch-up after a lost subscription sends nothing twice
    assert len(socket.frames) == 4


async def test_a_socket_that_stops_reading_is_closed_not_waited_for(redis, settings):
    publisher = EventPublisher(redis)
    socket = RecordingSocket(stuck=True)
    hub = SocketHub(redis=redis, publisher=publisher)
    feed = Feed(user_id=42, writer=socket, publisher=publisher, pending_limit=10)
    hub.attach(feed)
    for n in range(25):
        hub.dispatch(f"42\t{1000 + n}-0\t" + json.dumps({"type": "typing", "user_id": n}))
    assert socket.closed == (FELL_BEHIND, "fell behind; reconnect with after") and len(socket.frames) == 10
    hub.detach(feed)
    assert hub.dropped == 1 and hub.sockets == 0 and hub.delivered_total() == 10
