"""Chat: what matched people say to each other, and every event a user's devices must see.

- ``messages``: the conversation of a match (the ``match`` row is the conversation) — sending with ``seq`` 1, 2,
  3… assigned in the transaction that stores the message, idempotent by ``client_id``; history; read positions;
  closing a conversation (unmatch, rewind; blocks, reports, bans and deletions plug in at ``may_talk`` and
  ``close_conversation``).
- ``events``: each user's event stream in Redis (a capped stream, replayable with ``after``) and the one way to
  publish an event (stream entry and live fan-out in one atomic step, so live order is stream order).
- ``sockets``: the per-process registry of open sockets, fed by one pub/sub subscription per process, and the
  per-socket feed that replays, then goes live, with no gap and no duplicate.
- ``tickets``: single-use tickets for clients that cannot set an ``Authorization`` header on the upgrade.

Nothing here imports Tornado: the WebSocket handler (``handlers/chat.py``) implements ``sockets.FrameWriter``.
"""
