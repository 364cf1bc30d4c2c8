"""PUT /api/v1/profile/avatar through HTTP: the local backend (the suite's app) and Qiniu (an app on a stub)."""
from __future__ import annotations

import re
import secrets
import socket
from pathlib import Path

import pytest
from redis.asyncio import Redis
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets

from conf import Settings
from models import StorageDeletion
from handlers.base import InFlight
from server import MAX_UPLOAD_BODY, make_app
from services.images import MAX_AVATAR_BYTES
from services.redis_client import build_redis
from services.sms import ConsoleSmsSender
from services.storage import QiniuStorage
from tests.stubs.qiniu_upload import QiniuUploadStub
from tests.support.client import Client, assert_error
from tests.support.images import SECRET, jpeg, multipart, png, png_with_ihdr_size, webp

AVATAR, PROFILE = "/api/v1/profile/avatar", "/api/v1/profile"
AK, SK, BUCKET, CDN = "qiniu-app-ak", "qiniu-app-sk-0123456789", "swiper-avatars", "https://cdn.swiper.test"
FORMATS = [(jpeg, "jpg", "image/jpeg"), (png, "png", "image/png"), (webp, "webp", "image/webp")]


async def upload(client: Client, token: str | None, data: bytes, *, name: str = "avatar",
                 filename: str | None = "me.jpg", content_type: str | None = "image/jpeg"):
    body, headers = multipart([(name, filename, content_type, data)])
    return await client.request("PUT", AVATAR, body=body, headers=headers, token=token)


async def avatar_of(client: Client, user) -> tuple[str | None, str | None]:
    """The avatar as the owner sees it and as anyone else does."""
    mine = await client.get(PROFILE, token=user.access_token)
    public = await client.get(f"/api/v1/users/{user.user_id}", token=user.access_token)
    assert mine.status == 200 and public.status == 200
    return mine.data["avatar"], public.data["avatar"]


# -- the local backend: the suite's own app ---------------------------------------------------------------------

@pytest.mark.parametrize("make, ext, content_type", FORMATS)
async def test_local_upload_is_stored_served_and_shown(client, user, settings, make, ext, content_type):
    assert await avatar_of(client, user) == (None, None)            # also fills the profile cache
    resp = await upload(client, user.access_token, make(metadata=True), filename=f"x.{ext}",
                        content_type="application/octet-stream")   # the label is ignored, the content decides
    assert resp.status == 200, resp.body
    url = resp.data["avatar"]
    assert re.fullmatch(rf"/media/avatars/{user.user_id}/[A-Za-z0-9_-]{{22}}\.{ext}", url), url
    assert await avatar_of(client, user) == (url, url)               # the cache was invalidated
    stored = Path(settings.media_dir, url.removeprefix("/media/"))
    assert stored.is_file() and SECRET not in stored.read_bytes()
    served = await client.get(url)
    assert served.status == 200 and served.body == stored.read_bytes()
    assert served.headers["Content-Type"] == content_type
    assert served.headers["X-Content-Type-Options"] == "nosniff" and "immutable" in served.headers["Cache-Control"]


async def test_each_upload_gets_a_new_url_and_the_old_object_is_deleted(client, user, app):
    first = await upload(client, user.access_token, png())
    second = await upload(client, user.access_token, png())
    assert first.status == second.status == 200
    assert first.data["avatar"] != second.data["avatar"]
    assert (await avatar_of(client, user))[0] == second.data["avatar"]
    await app.settings["storage_cleanup"].wait()  # deleted after the answer
    assert (await client.get(first.data["avatar"])).status == 404
    assert (await client.get(second.data["avatar"])).status == 200
    assert not await StorageDeletion.select().where(StorageDeletion.key.contains(f"/{user.user_id}/")).aio_exists()


async def test_media_route_is_read_only_and_confined(client, settings):
    """Files outside the media directory exist (so a broken guard would serve them), and none is served."""
    media = Path(settings.media_dir)
    marker = "not-for-the-web-" + secrets.token_hex(8)
    inside = media / "avatars" / "probe" / f"inside-{marker}.txt"
    outside = media.parent / f"outside-{marker}.txt"           # next to the media directory
    sibling = Path(f"{media}-sibling") / f"{marker}.txt"        # a directory whose name starts like it
    for path in (inside, outside, sibling):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(marker)
    try:
        served = await client.get(f"/media/avatars/probe/{inside.name}")   # the route itself serves files
        assert served.status == 200 and served.body.decode() == marker
        probes = [f"/media/../{outside.name}", f"/media/avatars/../../{outside.name}",
                  f"/media/%2e%2e/{outside.name}", f"/media/..%2f{outside.name}",
                  f"/media/avatars/%2E%2E/%2E%2E/{outside.name}", f"/media/..%5c{outside.name}",
                  f"/media//{outside}", f"/media/%2f{str(outside).lstrip('/')}",
                  f"/media/../{sibling.parent.name}/{sibling.name}", "/media//etc/passwd", "/media/../../../etc/passwd"]
        for probe in probes:
            resp = await client.get(probe)
            assert_error(resp, 404, "not_found")
            assert marker.encode() not in resp.body and b"root:" not in resp.body, probe
        assert_error(await client.get("/media/avatars/1/nope.png"), 404, "not_found")
        assert_error(await client.request("PUT", f"/media/avatars/probe/{inside.name}", body=b"x"), 405,
                     "method_not_allowed")
        assert inside.read_text() == marker
    finally:
        for path in (inside, outside, sibling):
            path.unlink(missing_ok=True)
        inside.parent.rmdir()
        sibling.parent.rmdir()


@pytest.mark.parametrize("data", [
    b"I am a text file named avatar.jpg\n" * 10,
    jpeg((64, 64))[:-400],                                    # truncated
    png_with_ihdr_size(png(), 480, 32),                      # header claims another size
    b"\x89PNG\r\n\x1a\n" + jpeg()[3:],                       # PNG magic, JPEG body
    b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",                  # a real format, not one we take
], ids=["text-as-jpg", "truncated-jpeg", "lying-png", "png-magic-jpeg-body", "gif"])
async def test_not_an_image_is_refused_and_nothing_changes(client, user, settings, data):
    before = await upload(client, user.access_token, png())
    files = set(Path(settings.media_dir, "avatars", str(user.user_id)).iterdir())
    assert_error(await upload(client, user.access_token, data), 400, "file_invalid")
    assert (await avatar_of(client, user))[0] == before.data["avatar"]
    assert set(Path(settings.media_dir, "avatars", str(user.user_id)).iterdir()) == files


@pytest.mark.parametrize("parts", [
    [("photo", "me.png", "image/png", png())],                               # wrong field name
    [("nickname", None, None, b"bob")],                                      # no file at all
    [("avatar", "me.png", "image/png", b"")],                                # empty file
    [("avatar", "a.png", "image/png", png()), ("avatar", "b.png", "image/png", png())],   # two files
], ids=["wrong-field", "no-file", "empty-file", "two-files"])
async def test_missing_or_ambiguous_file_is_refused(client, user, parts):
    body, headers = multipart(parts)
    assert_error(await client.request("PUT", AVATAR, body=body, headers=headers, token=user.access_token), 400,
                 "file_invalid")


async def test_unknown_fields_are_refused_and_named(client, user):
    body, headers = multipart([("avatar", "a.png", "image/png", png()), ("crop", None, None, b"0,0,10,10")])
    resp = await client.request("PUT", AVATAR, body=body, headers=headers, token=user.access_token)
    assert assert_error(resp, 400, "invalid_params")["data"] == {"fields": {"crop": "unknown field"}}
    assert (await avatar_of(client, user))[0] is None


@pytest.mark.parametrize("body, content_type", [
    (b'{"avatar": "https://evil.example/x.png"}', "application/json"),
    (png(), "image/png"),                                                    # a raw image, not a form
    (b"", "multipart/form-data; boundary=abc"),                              # empty body
    (b"--abc\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\n\r\n" + png(),
     "multipart/form-data; boundary=abc"),                                   # no closing boundary
    (multipart([("avatar", "a.png", "image/png", png())])[0], "multipart/form-data"),   # no boundary
], ids=["json", "raw-image", "empty", "unterminated", "no-boundary"])
async def test_bodies_that_are_not_a_good_form_are_refused(client, user, body, content_type):
    resp = await client.request("PUT", AVATAR, body=body, headers={"Content-Type": content_type},
                                token=user.access_token)
    assert_error(resp, 400, "file_invalid")


async def test_a_file_over_5_mib_is_413(client, user):
    data = png() + b"\x00" * (MAX_AVATAR_BYTES + 1 - len(png()))        # the body itself fits the route's limit
    assert_error(await upload(client, user.access_token, data), 413, "payload_too_large")


async def test_a_body_over_the_limit_is_refused_before_it_is_read(app_url, user):
    """Content-Length says 6 MiB: the 413 comes back although not one byte of the body was sent."""
    host, port = app_url.removeprefix("http://").split(":")
    stream = IOStream(socket.socket())
    await stream.connect((host, int(port)))
    await stream.write(f"PUT {AVATAR} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.access_token}\r\n"
                       f"Content-Type: multipart/form-data; boundary=abc\r\n"
                       f"Content-Length: {6 * 1024 * 1024}\r\n\r\n".encode())
    head = await stream.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    stream.close()


async def test_a_chunked_body_over_the_limit_is_413(app_url, user):
    host, port = app_url.removeprefix("http://").split(":")
    stream = IOStream(socket.socket())
    await stream.connect((host, int(port)))
    await stream.write(f"PUT {AVATAR} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.access_token}\r\n"
                       f"Content-Type: multipart/form-data; boundary=abc\r\n"
                       f"Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"x" * 65536
    for _ in range(MAX_AVATAR_BYTES // len(chunk) + 3):
        await stream.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await stream.write(b"0\r\n\r\n")
    head = await stream.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    stream.close()


async def test_no_token_is_401(client):
    body, headers = multipart([("avatar", "a.png", "image/png", png())])
    assert_error(await client.request("PUT", AVATAR, body=body, headers=headers), 401, "not_authenticated")
    assert_error(await client.request("PUT", AVATAR, body=body, headers=headers, token="not.a.jwt"), 401,
                 "not_authenticated")


async def test_other_methods_are_405(client, user):
    for method in ("GET", "POST", "DELETE"):
        assert_error(await client.request(method, AVATAR, token=user.access_token), 405, "method_not_allowed")


# -- the qiniu backend: a second app on the same database, uploading to the stub ------------------------------

@pytest.fixture(scope="module")
async def qiniu_stub() -> QiniuUploadStub:
    stub = QiniuUploadStub(AK, SK, BUCKET)
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture(scope="module")
async def qiniu_settings(settings: Settings, qiniu_stub: QiniuUploadStub) -> Settings:
    return settings.replace(storage_backend="qiniu", qiniu_access_key=AK, qiniu_secret_key=SK,
                               qiniu_bucket=BUCKET, qiniu_domain=CDN, qiniu_up_host=qiniu_stub.up_host,
                               storage_timeout=1.0)


@pytest.fixture(scope="module")
async def qiniu_client(qiniu_settings: Settings, schema: None, redis: Redis) -> Client:
    storage, app_redis = QiniuStorage(qiniu_settings), build_redis(qiniu_settings)
    app = make_app(qiniu_settings, redis=app_redis, sms=ConsoleSmsSender(), in_flight=InFlight(), storage=storage)
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app, max_body_size=MAX_UPLOAD_BODY)
    server.add_sockets(sockets)
    yield Client(f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
    server.stop()
    await server.close_all_connections()
    await storage.aclose()
    await app_redis.aclose()


@pytest.fixture
def stub(qiniu_stub: QiniuUploadStub) -> QiniuUploadStub:
    qiniu_stub.reset()
    yield qiniu_stub
    qiniu_stub.reset()


@pytest.mark.parametrize("make, ext, content_type", FORMATS)
async def test_qiniu_upload(qiniu_client, user, stub, make, ext, content_type):
    assert await avatar_of(qiniu_client, user) == (None, None)      # fills the cache
    resp = await upload(qiniu_client, user.access_token, make(metadata=True))
    assert resp.status == 200, resp.body
    url = resp.data["avatar"]
    [stored] = stub.uploads
    assert url == f"{CDN}/{stored['key']}"
    assert re.fullmatch(rf"avatars/{user.user_id}/[A-Za-z0-9_-]{{22}}\.{ext}", stored["key"])
    assert stored["content_type"] == content_type and SECRET not in stored["data"]
    assert stored["policy"]["scope"] == f"{BUCKET}:{stored['key']}" and stored["policy"]["insertOnly"] == 1
    assert await avatar_of(qiniu_client, user) == (url, url)


@pytest.mark.parametrize("failure", ["http_500", "slow", "bad_token", "bad_json"])
async def test_qiniu_failure_is_502_and_the_old_avatar_stays(qiniu_client, user, stub, failure):
    first = await upload(qiniu_client, user.access_token, png())
    assert first.status == 200
    old = first.data["avatar"]
    if failure == "bad_token":
        stub.secret_key = "rotated-secret"     # the stub no longer accepts our signature
    else:
        stub.mode = failure
    try:
        assert_error(await upload(qiniu_client, user.access_token, jpeg()), 502, "upstream_failed")
    finally:
        stub.secret_key = SK
    assert await avatar_of(qiniu_client, user) == (old, old)
    if failure == "bad_token":
        assert stub.rejected[-1] == {"status": 401, "reason": "bad token"}


async def test_qiniu_refuses_bad_files_before_uploading(qiniu_client, user, stub):
    assert_error(await upload(qiniu_client, user.access_token, b"not an image"), 400, "file_invalid")
    assert stub.request_count == 0
