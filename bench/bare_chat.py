"""The ceiling of the chat benchmark (``bench/chat.py``): ``python -m bench.bare_chat --port N``.

What ``bench/bare.py`` is for HTTP, for chat: one Tornado process on the same event loop as the app's
(``SWIPER_EVENT_LOOP``), the same Tornado, and the least a relay can do with the same shapes:

- ``GET /ws?user=ID`` upgrades to a ``WebSocketHandler`` kept in a dict user → sockets (no authentication);
- ``POST /send`` ``{"from": A, "to": B, "text": ..., "client_id": ...}`` gives the pair's next ``seq``, answers
  the envelope with the message, and writes ``{"type": "message", "user_id": <other side>, "message": ...,
  "event_id": <per user>}`` to every socket of both users, as the app does;
- ``GET /`` answers 200 (ready).

No database, no Redis, no second process, no retry key, no limits: whatever the app's chat costs beyond this is
its own work (the transaction, the event stream, the pub/sub hop between processes, auth). SIGTERM/SIGINT stop
it with exit 0.
"""
from __future__ import annotations

import itertools
import sys
from collections import defaultdict

import orjson
from tornado import web, websocket

from bench.bare import no_log, run_ceiling

SOCKETS: dict[int, set[Relay]] = defaultdict(set)
SEQ: dict[tuple[int, int], int] = defaultdict(int)
EVENT_ID: dict[int, int] = defaultdict(int)
MESSAGE_ID = itertools.count(1)


class Ready(web.RequestHandler):
    def get(self) -> None:
        self.write(b'{"code":0,"data":"ok"}')


class Relay(websocket.WebSocketHandler):
    def open(self) -> None:  # type: ignore[override]
        self.user = int(self.get_query_argument("user"))
        SOCKETS[self.user].add(self)

    def on_message(self, message: str | bytes) -> None:
        """Nothing a client sends matters here."""

    def on_close(self) -> None:
        SOCKETS[self.user].discard(self)
        if not SOCKETS[self.user]:
            del SOCKETS[self.user]


class Send(web.RequestHandler):
    def post(self) -> None:
        body = orjson.loads(self.request.body)
        sender, other = int(body["from"]), int(body["to"])
        pair = (sender, other) if sender < other else (other, sender)
        SEQ[pair] += 1
        message = {"id": next(MESSAGE_ID), "seq": SEQ[pair], "from": sender, "text": body["text"],
                   "client_id": body["client_id"]}
        for user, side in ((other, sender), (sender, other)):
            EVENT_ID[user] += 1
            data = orjson.dumps({"type": "message", "user_id": side, "message": message,
                                 "event_id": str(EVENT_ID[user])})
            for sock in SOCKETS.get(user, ()):
                try:
                    sock.write_message(data)
                except websocket.WebSocketClosedError:
                    pass
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.write(orjson.dumps({"code": 0, "data": message}))


def close_sockets() -> None:
    for sock in [s for group in SOCKETS.values() for s in group]:
        sock.close(1001)


def main(argv: list[str] | None = None) -> int:
    app = web.Application([(r"/", Ready), (r"/ws", Relay), (r"/send", Send)], log_function=no_log,
                          compress_response=False)
    return run_ceiling(argv, "Bare Tornado WebSocket relay for the chat benchmark.", app, close_sockets)


if __name__ == "__main__":
    sys.exit(main())
