"""A small HTTP client for tests: real requests over loopback, JSON in and out."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders, parse_response_start_line

from tests.support.contract import check_answer

AsyncHTTPClient.configure(None, max_clients=200)


@dataclass
class Response:
    status: int
    headers: Any
    body: bytes
    json: Any = field(default=None)

    @property
    def data(self) -> Any:
        return self.json["data"]


class Client:
    """``check_contract``: every answer must match the OpenAPI document (tests/support/contract.py)."""

    def __init__(self, base_url: str, *, check_contract: bool = True) -> None:
        self.base_url = base_url
        self.check_contract = check_contract
        self.http = AsyncHTTPClient()

    async def request(self, method: str, path: str, *, json_body: Any = None, body: bytes | str | None = None,
                      token: str | None = None, headers: dict[str, str] | None = None,
                      timeout: float = 20) -> Response:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(self.base_url + path, method=method, headers=hdrs, body=body,
                              request_timeout=timeout, allow_nonstandard_methods=True)
        try:
            resp = await self.http.fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:  # refused, reset, or closed before an answer (599)
            raise ConnectionError(f"{method} {path}: {exc}") from exc
        if resp.code == 599:
            raise ConnectionError(f"{method} {path}: {resp.error}")
        parsed = None
        content_type = resp.headers.get("Content-Type", "")
        if resp.body and "json" in content_type:
            parsed = json.loads(resp.body)
        if self.check_contract:
            check_answer(method, self.base_url + path, resp.code, content_type, parsed)
        return Response(resp.code, resp.headers, resp.body or b"", parsed)

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, json_body=json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("PUT", path, json_body=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("PATCH", path, json_body=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Response:
        return await self.request("DELETE", path, **kw)


class KeepAliveConnection:
    """One HTTP/1.1 connection kept open across requests (``Client`` opens one per request): the way to talk to a
    process that accepts no new connections any more, as a draining one, over a connection opened before."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> KeepAliveConnection:
        url = urlsplit(base_url)
        return cls(*await asyncio.open_connection(url.hostname, url.port))

    async def get(self, path: str, timeout: float = 20) -> Response:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        async with asyncio.timeout(timeout):
            await self.writer.drain()
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            start_line, _, header_lines = head.partition("\r\n")
            headers = HTTPHeaders.parse(header_lines)
            body = await self.reader.readexactly(int(headers.get("Content-Length", "0")))
        parsed = json.loads(body) if body and "json" in headers.get("Content-Type", "") else None
        return Response(parse_response_start_line(start_line).code, headers, body, parsed)

    def close(self) -> None:
        self.writer.close()


def assert_error(resp: Response, status: int, error: str) -> dict:
    """The one check of an error envelope: status, code name, and the shape API.md promises."""
    assert resp.status == status, (resp.status, resp.body[:500])
    body = resp.json
    assert body is not None, resp.body[:200]
    assert set(body) == {"code", "error", "message", "data"}, body
    assert body["error"] == error, body
    assert isinstance(body["code"], int) and body["code"] >= 1000
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in resp.body.decode("utf-8", "replace")
    assert resp.headers.get("X-Request-ID")
    if status == 401:
        assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
    return body
