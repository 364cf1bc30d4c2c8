"""One persistent HTTP/1.1 connection, as a pooling client (OkHttp, httpx, nginx's upstream keepalive) holds it.

Tornado's test client opens a connection per request, so it can never see a server closing a kept-alive
connection behind a client's back. This one sends every request on the same socket and says exactly what
happened: an answer, an announced close (``Connection: close``), or a close nobody announced.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnannouncedClose(ConnectionError):
    """The server closed (or reset) the connection although its last answer did not say ``Connection: close``."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


class KeepAliveConnection:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.requests = 0

    async def __aenter__(self) -> "KeepAliveConnection":
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()

    async def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                      body: bytes = b"", timeout: float = 10) -> Answer:
        assert self._reader is not None and self._writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.requests += 1
        try:
            await self._writer.drain()
            return await asyncio.wait_for(self._read_answer(), timeout)
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
            raise UnannouncedClose(f"request {self.requests} ({method} {path}): {exc!r}") from exc

    async def _read_answer(self) -> Answer:
        assert self._reader is not None
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), headers, body)
