"""Service endpoints and the cross-cutting contract: request ids, 404/405/413, the OpenAPI document."""
from __future__ import annotations

import json
import re
import socket

import pytest
from tornado.iostream import IOStream

from handlers.openapi import openapi_path
from server import ROUTES
from tests.support.client import assert_error
from tests.support.keepalive import KeepAliveConnection

AUTHED_ROUTES = [("GET", "/api/v1/profile"), ("PATCH", "/api/v1/profile"), ("GET", "/api/v1/users/1"),
                 ("GET", "/api/v1/vip"), ("DELETE", "/api/v1/sessions/current"), ("DELETE", "/api/v1/profile"),
                 ("POST", "/api/v1/blocks"), ("GET", "/api/v1/blocks"), ("DELETE", "/api/v1/blocks/1"),
                 ("POST", "/api/v1/reports"), ("PUT", "/api/v1/profile/photos"),
                 ("PUT", "/api/v1/profile/photos/order"), ("DELETE", "/api/v1/profile/photos/1")]


async def test_health_and_readiness(client):
    health = await client.get("/healthz")
    assert health.status == 200 and health.json == {"code": 0, "data": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200 and ready.data == {"mysql": "ok", "redis": "ok"}


async def test_request_id_echoed_or_generated(client):
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    fresh = await client.get("/healthz", headers={"X-Request-ID": "bad id\u00e9" * 20})
    assert re.fullmatch(r"[0-9a-f]{16}", fresh.headers["X-Request-ID"])
    error = await client.get("/nope", headers={"X-Request-ID": "err-1"})
    assert error.headers["X-Request-ID"] == "err-1"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
async def test_unknown_routes_are_404_envelopes(client, method):
    assert_error(await client.request(method, "/api/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize("method, path", [("POST", "/api/v1/profile"), ("PUT", "/api/v1/profile"),
                                          ("GET", "/api/v1/sessions"), ("GET", "/api/v1/sms-codes"),
                                          ("PUT", "/api/v1/vip/levels"), ("POST", "/healthz"),
                                          ("PATCH", "/api/v1/users/1")])
async def test_wrong_method_is_405_before_auth(client, method, path):
    resp = await client.request(method, path)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"]


@pytest.mark.parametrize("method, path", AUTHED_ROUTES)
async def test_authenticated_routes_refuse_anonymous(client, method, path):
    assert_error(await client.request(method, path, body=b"{}" if method == "PATCH" else None), 401,
                 "not_authenticated")


async def test_oversized_body_is_413(client, settings):
    big = json.dumps({"phone": "1" * (settings.max_json_body + 10)})
    assert_error(await client.request("POST", "/api/v1/sms-codes", body=big), 413, "payload_too_large")


async def test_oversized_chunked_body_is_413(app_url, settings):
    """No Content-Length: the size is counted while streaming, never buffered whole."""
    host, port = app_url.removeprefix("http://").split(":")
    stream = IOStream(socket.socket())
    await stream.connect((host, int(port)))
    await stream.write(b"POST /api/v1/sms-codes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                       b"Content-Type: application/json\r\n\r\n")
    chunk = b"x" * 16384
    for _ in range(settings.max_json_body // len(chunk) + 2):
        await stream.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await stream.write(b"0\r\n\r\n")
    head = await stream.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    stream.close()


async def test_openapi_documents_every_route_and_method(client):
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    spec = resp.json
    assert spec["openapi"] == "3.1.0" and "code" not in spec
    served = set()
    for pattern, handler in ROUTES:
        path = openapi_path(pattern, handler)
        for method in handler.implemented_methods():
            served.add((path, method.lower()))
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert served == documented, {"undocumented": served - documented, "stale": documented - served}
    operation_ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    for path, ops in spec["paths"].items():
        for method, operation in ops.items():
            assert {"200", "204", "101"} & set(operation["responses"]) and operation["tags"], (path, method)


async def test_no_traceback_on_unexpected_errors(client, user, monkeypatch):
    import services.profiles as profiles

    async def explode(*args, **kwargs):
        raise RuntimeError("boom: secret internals")
    monkeypatch.setattr(profiles.vip, "membership_view", explode)
    resp = await client.get("/api/v1/profile", token=user.access_token)
    body = assert_error(resp, 500, "internal_error")
    assert "boom" not in json.dumps(body)


async def test_metrics_count_by_route_template(client, user, monkeypatch):
    from handlers import metrics
    monkeypatch.setattr(metrics, "_rendered", (0.0, b""))  # render afresh, not a copy from under a second ago
    await client.get(f"/api/v1/users/{user.user_id}", token=user.access_token)
    await client.get("/api/v1/no-such-route")
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    text = resp.body.decode()
    assert 'swiper_requests_total{method="GET",route="/api/v1/users/{user_id}",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert f"/api/v1/users/{user.user_id}" not in text
    assert "swiper_request_duration_seconds_bucket" in text


async def test_unhandled_errors_are_logged_with_traceback(client, user, monkeypatch, caplog):
    import services.profiles as profiles

    async def explode(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(profiles.vip, "membership_view", explode)
    with caplog.at_level("ERROR", logger="swiper.error"):
        await client.get("/api/v1/profile", token=user.access_token, headers={"X-Request-ID": "trace-me"})
    records = [r for r in caplog.records if r.name == "swiper.error"]
    assert records and records[0].exc_info and "trace-me" in records[0].getMessage()


async def test_one_access_line_per_request(client, user, caplog):
    with caplog.at_level("INFO", logger="swiper.access"):
        await client.get("/api/v1/profile", token=user.access_token, headers={"X-Request-ID": "line-1"})
        await client.get("/api/v1/nowhere", headers={"X-Request-ID": "line-2"})
    lines = [r.getMessage() for r in caplog.records if r.name == "swiper.access"]
    assert len(lines) == 2
    assert re.fullmatch(rf"GET /api/v1/profile 200 [0-9.]+ms rid=line-1 uid={user.user_id}", lines[0]), lines
    assert re.fullmatch(r"GET /api/v1/nowhere 404 [0-9.]+ms rid=line-2 uid=-", lines[1]), lines


KEEPALIVE_MIX = [("GET", "/nope", {}, b"", 404), ("GET", "/healthz", {}, b"", 200),
                 ("GET", "/api/v1/profile", {}, b"", 401),
                 ("POST", "/api/v1/swipes", {"Content-Type": "application/json"}, b'{"user_id": 1, "action": "like"}',
                  401),
                 ("GET", "/healthz", {}, b"", 200), ("DELETE", "/api/v1/vip/levels", {}, b"", 405),
                 ("PATCH", "/api/v1/profile", {"Authorization": "Bearer not-a-token"}, b"{}", 401),
                 ("GET", "/api/v1/vip/levels", {}, b"", 200)]


async def test_errors_before_the_handler_keep_the_connection_usable(app_url):
    """Issue 10, item 7: a refusal in prepare() (401, 404, 405, 429) used to close the keep-alive connection after
    the answer without saying so, and the client's next request on it was reset."""
    async with KeepAliveConnection(app_url) as connection:
        for round_ in range(20):
            for method, path, headers, body, status in KEEPALIVE_MIX:
                answer = await connection.request(method, path, headers=headers, body=body)
                assert answer.status == status, (round_, method, path, answer.body[:200])
                assert not answer.closes, (method, path)
        assert connection.requests == 20 * len(KEEPALIVE_MIX)
