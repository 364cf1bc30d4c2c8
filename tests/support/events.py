"""A real WebSocket client for the event socket (Tornado's ``websocket_connect``), and what tests need around it."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect


class EventSocket:
    """One device's socket: frames decoded as they come, with the close code once it is closed."""

    def __init__(self, connection: WebSocketClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, base_url: str, *, token: str | None = None, after: str | None = None,
                   ticket: str | None = None, timeout: float = 10) -> "EventSocket":
        query = "&".join(f"{name}={value}" for name, value in (("after", after), ("ticket", ticket)) if value)
        url = base_url.replace("http://", "ws://") + "/api/v1/events" + (f"?{query}" if query else "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection = await websocket_connect(HTTPRequest(url, headers=headers, request_timeout=timeout,
                                                         connect_timeout=timeout))
        return cls(connection)

    async def next(self, timeout: float = 5) -> dict[str, Any] | None:
        """The next frame, or None when the socket closed."""
        raw = await asyncio.wait_for(self.connection.read_message(), timeout)
        if raw is None:
            return None
        frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def next_of(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        """The next frame of this type (others are kept in ``frames`` but skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - loop.time()))
            assert frame is not None, f"closed ({self.close_code}) while waiting for {kind}"
            if frame.get("type") == kind:
                return frame

    async def collect(self, count: int, kind: str = "message", timeout: float = 10) -> list[dict[str, Any]]:
        return [await self.next_of(kind, timeout) for _ in range(count)]

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Whatever arrives within ``seconds`` (to show that nothing more does)."""
        frames = []
        try:
            while True:
                frame = await self.next(seconds)
                if frame is None:
                    return frames
                frames.append(frame)
        except asyncio.TimeoutError:
            return frames

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        data = frame if isinstance(frame, (str, bytes)) else json.dumps(frame)
        await self.connection.write_message(data, binary=isinstance(data, bytes))

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code

    async def wait_closed(self, timeout: float = 10) -> int | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connection.protocol is not None and loop.time() < deadline:
            try:
                if await asyncio.wait_for(self.connection.read_message(), deadline - loop.time()) is None:
                    break
            except asyncio.TimeoutError:
                break
        return self.close_code

    def close(self) -> None:
        self.connection.close()


async def refused_upgrade(base_url: str, **kwargs: Any) -> HTTPClientError:
    """The HTTP answer to an upgrade the server refused."""
    try:
        socket = await EventSocket.open(base_url, **kwargs)
    except HTTPClientError as exc:
        return exc
    socket.close()
    raise AssertionError("the upgrade was accepted")
