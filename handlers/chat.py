"""Chat: messages of a match, read positions, and the event socket (``GET /api/v1/events``, a WebSocket)."""
from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ValidationError, WithJsonSchema
from tornado import websocket

from handlers.base import BaseHandler
from handlers.contract import Limit, Payload, QueryModel, RequestModel, UserId, integer, operation
from handlers.shapes import Message, Page
from services import accounts, jsoncodec
from services.chat import messages, tickets
from services.chat.sockets import Feed
from services.errors import InvalidParamsError

MAX_TEXT = 1000
MAX_CLIENT_FRAME = 4096        # bytes: client frames are tiny; Tornado closes bigger ones with 1009
CLIENT_FRAMES_PER_SECOND = 20  # more and the socket is closed (1008): nothing a client needs comes that fast
_NOT_TEXT = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")  # control characters other than \n and \r
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _message_text(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    if _NOT_TEXT.search(text):
        raise ValueError("must not contain control characters other than line breaks")
    return text


def _client_id(value: str) -> str:
    if not 1 <= len(value) <= 64:
        raise ValueError("must be 1 to 64 characters")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


MessageText = Annotated[str, AfterValidator(_message_text), WithJsonSchema({
    "type": "string", "minLength": 1, "maxLength": MAX_TEXT,
    "pattern": r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x09\x0b\x0c\x0e-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$",
    "description": "1..1000 characters after trimming; line breaks inside are kept, other control characters refused",
})]
ClientId = Annotated[str, AfterValidator(_client_id), WithJsonSchema({
    "type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[^\x00-\x1f\x7f]+$",
    "description": "made by the client, unique per sender within a conversation: a retry with it stores nothing"})]
Seq = integer(0, 2**31 - 1)


class SendMessage(RequestModel):
    text: MessageText
    client_id: ClientId


class MessagesQuery(QueryModel):
    after: Seq | None = None    # older to newer, from after+1
    before: Seq | None = None   # newer to older, from before-1
    cursor: str | None = None   # next_cursor of the previous page
    limit: Limit = 20


class MarkRead(RequestModel):
    seq: Seq


class MessagesPage(Page[Message]):
    pass


class Ticket(Payload):
    ticket: str
    expires_in: int


class EventsQuery(QueryModel):
    after: str | None = None    # the last event_id received: replay what came since, then live
    ticket: str | None = None   # instead of the Authorization header (POST /api/v1/events/tickets)


class ClientFrame(RequestModel):
    type: Literal["typing"]
    user_id: UserId


class MessagesHandler(BaseHandler):
    @operation("sendMessage", tag="chat", summary="Send a message to a match", body=SendMessage, response=Message,
               errors=(403, 429),
               links={"History": {"operationId": "listMessages", "parameters": {"user_id": "$request.path.user_id"}},
                      "MarkRead": {"operationId": "markRead", "parameters": {"user_id": "$request.path.user_id"},
                                   "requestBody": {"seq": "$response.body#/data/seq"}}})
    async def post(self, user_id: str, body: SendMessage) -> None:
        """Stored (or found by its client_id) before the answer; both sides' devices get it as an event."""
        message, verdict = await messages.send_message(
            redis=self.redis, settings=self.settings_obj, events=self.events, fallback=self.rate_fallback,
            sender_id=self.user_id, other_id=int(user_id), text=body.text, client_id=body.client_id)
        self.limit_headers(verdict)
        self.ok(message)

    @operation("listMessages", tag="chat", summary="A conversation's messages (after: oldest first; before or "
               "neither: newest first)", query=MessagesQuery, response=MessagesPage, errors=(403,))
    async def get(self, user_id: str, query: MessagesQuery) -> None:
        """A page of history in either direction, with a cursor to go on."""
        items, cursor = await messages.list_messages(
            settings=self.settings_obj, me=self.user_id, other=int(user_id), after=query.after, before=query.before,
            cursor=query.cursor, limit=query.limit)
        self.ok({"items": items, "next_cursor": cursor})


class ReadHandler(BaseHandler):
    @operation("markRead", tag="chat", summary="I have read up to seq (never moves backwards)", body=MarkRead,
               errors=(403,))
    async def put(self, user_id: str, body: MarkRead) -> None:
        """Both people's devices get a read event when the position moves."""
        await messages.mark_read(events=self.events, me=self.user_id, other=int(user_id), seq=body.seq)
        self.ok(None)


class TicketsHandler(BaseHandler):
    @operation("issueEventTicket", tag="chat", summary="A single-use ticket to open the event socket without a "
               "header", response=Ticket)
    async def post(self) -> None:
        """Valid for 30 seconds, once, for this session."""
        assert self.claims is not None
        self.ok({"ticket": await tickets.issue_ticket(redis=self.redis, claims=self.claims),
                 "expires_in": tickets.TICKET_TTL})


class EventsHandler(BaseHandler, websocket.WebSocketHandler):
    """The event socket. Authentication and limits run in ``prepare`` (BaseHandler), before the upgrade, so a bad
    token is refused with the ordinary 401 envelope. Server → client frames come from a ``Feed``; client → server
    frames are typing notices. A frame the server cannot use gets an ``error`` frame (not an event: no
    event_id) and the socket stays open."""

    async def authenticate(self) -> None:
        ticket = self.get_query_argument("ticket", None)
        if ticket is None:
            await super().authenticate()
            return
        self.claims = await tickets.redeem_ticket(redis=self.redis, ticket=ticket)
        self.user_id = self.claims.user_id
        accounts.check_session(await self.current_account(), self.claims)  # deleted, banned, ended: no session

    @operation("openEventSocket", tag="chat", summary="The event socket (WebSocket upgrade; frames in API.md "
               "'Events')", query=EventsQuery, content="custom", errors=(400,),
               replies={101: (None, None)})
    async def get(self, query: EventsQuery) -> None:  # type: ignore[override]
        """Upgrade, then replay what came after ``after`` and go live."""
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise InvalidParamsError("This endpoint is a WebSocket: send Upgrade: websocket.")
        self.after = query.after
        self._frames: list[float] = []
        self._pending = 0
        await websocket.WebSocketHandler.get(self)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        if self.in_flight.draining:  # upgraded after the drain closed the others: go elsewhere at once
            self.close(1012, "service restart")
            return
        self.feed = Feed(user_id=self.user_id, writer=self, publisher=self.events,
                         gen=self.claims.gen if self.claims is not None else 0)
        self.hub.attach(self.feed)
        await self.feed.start(self.after)

    async def on_message(self, message: str | bytes) -> None:
        now = time.monotonic()
        self._frames = [t for t in self._frames if now - t < 1.0] + [now]
        if len(self._frames) > CLIENT_FRAMES_PER_SECOND:
            self.close(1008, "too many frames")
            return
        if isinstance(message, bytes):
            self._refuse("Frames must be text (JSON).")
            return
        try:
            frame = ClientFrame.model_validate_json(message)
        except ValidationError:
            self._refuse('Expected {"type": "typing", "user_id": <id>}.')
            return
        await messages.relay_typing(redis=self.redis, events=self.events, sender=self.user_id, other=frame.user_id)

    def _refuse(self, message: str) -> None:
        self.send_frame(jsoncodec.dumps({"type": "error", "code": 1002, "error": "invalid_params", "message": message}))

    # -- FrameWriter (services/chat/sockets.py) --------------------------------------------------------------
    def send_frame(self, data: bytes) -> None:
        try:
            future = self.write_message(data)
        except websocket.WebSocketClosedError:
            return
        self._pending += 1
        future.add_done_callback(self._flushed)

    def _flushed(self, _future: Any) -> None:
        self._pending -= 1

    @property
    def pending(self) -> int:
        return self._pending

    def close_socket(self, code: int, reason: str) -> None:
        self.close(code, reason)

    # -- both parents define these ---------------------------------------------------------------------------
    def on_close(self) -> None:
        feed = getattr(self, "feed", None)
        if feed is not None:
            feed.closed = True
            self.hub.detach(feed)
            # the feed refers to this handler (its writer): dropping our side of that cycle frees the socket's
            # objects now, by reference counting, not at a full collection that server.py's thresholds make rare
            self.feed = None

    def on_connection_close(self) -> None:
        websocket.WebSocketHandler.on_connection_close(self)
        self._uncount()

    def on_finish(self) -> None:
        self._uncount()


USER = r"([1-9][0-9]{0,17})"
routes = [
    (rf"/api/v1/matches/{USER}/messages", MessagesHandler),
    (rf"/api/v1/matches/{USER}/read", ReadHandler),
    (r"/api/v1/events/tickets", TicketsHandler),
    (r"/api/v1/events", EventsHandler),
]
