"""Avatar checking and storage: the image rules, Qiniu's form upload against a verifying stub, the local backend."""
from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import os
import socket
import threading
import time

import pytest
import pytest_asyncio
from PIL import Image
from qiniu import Auth
from tornado import httputil

import conf
from services import images, storage
from services.errors import FileInvalidError, UpstreamError
from services.images import MAX_AVATAR_BYTES, MAX_PIXELS, prepare_avatar, sanitize, sniff
from services.storage import LocalStorage, QiniuStorage, build_storage, multipart_body, new_avatar_key
from tests.stubs.qiniu_upload import QiniuUploadStub, qiniu_etag
from tests.support.images import SECRET, jpeg, png, png_with_ihdr_size, webp

AK, SK, BUCKET = "qiniu-test-ak", "qiniu-test-sk-0123456789", "swiper-avatars"


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- images ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, fmt", [(jpeg, "JPEG"), (png, "PNG"), (webp, "WEBP"),
                                       (lambda **kw: webp(lossless=True, **kw), "WEBP")])
def test_metadata_goes_pixels_and_size_stay(make, fmt):
    original = make(metadata=True)
    assert SECRET in original
    avatar = sanitize(original)
    assert (avatar.format, avatar.width, avatar.height) == (fmt, 48, 32)
    assert SECRET not in avatar.data and len(avatar.data) < len(original)
    assert decoded(avatar.data).tobytes() == decoded(original).tobytes()   # lossless: no re-encode


def test_jpeg_keeps_only_its_orientation():
    avatar = sanitize(jpeg(metadata=True, progressive=True))
    exif = decoded(avatar.data).getexif()
    assert dict(exif) == {0x0112: 6} and not exif.get_ifd(0x8825)


def test_bytes_after_the_image_are_dropped():
    for make in (jpeg, png, webp):
        original = make()
        assert sanitize(original + b"<script>alert(1)</script>").data == sanitize(original).data


def test_big_noisy_jpeg_is_not_grown():
    original = jpeg((1600, 1200), noise=True, quality=40)
    avatar = sanitize(original)
    assert len(avatar.data) <= len(original) and (avatar.width, avatar.height) == (1600, 1200)


@pytest.mark.parametrize("data", [
    b"", b"just some text, named avatar.jpg", b"\xff\xd8\xff" + b"\x00" * 100, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    b"RIFF\x10\x00\x00\x00WEBPVP8 \x04\x00\x00\x00abcd", b"GIF89a" + b"\x00" * 40,
], ids=["empty", "text", "jpeg-magic-garbage", "png-magic-garbage", "webp-magic-garbage", "gif"])
def test_not_an_image_is_refused(data):
    with pytest.raises(FileInvalidError):
        sanitize(data)


@pytest.mark.parametrize("make", [jpeg, png, webp])
def test_truncated_images_are_refused(make):
    data = make((64, 64))
    for cut in (len(data) // 3, len(data) - 3):
        with pytest.raises(FileInvalidError):
            sanitize(data[:cut])


def test_headers_that_lie_are_refused():
    with pytest.raises(FileInvalidError):     # IHDR says 400x32 (CRC fixed up), the pixel data is 48x32
        sanitize(png_with_ihdr_size(png(), 400, 32))
    with pytest.raises(FileInvalidError):     # PNG magic in front of a JPEG
        sanitize(b"\x89PNG\r\n\x1a\n" + jpeg()[3:])
    with pytest.raises(FileInvalidError):     # a broken chunk CRC
        data = bytearray(png())
        data[40] ^= 0xFF
        sanitize(bytes(data))
    lying = bytearray(webp(metadata=True))    # VP8X canvas 48x32, frame says otherwise
    assert lying[12:16] == b"VP8X"
    lying[24:27] = (99).to_bytes(3, "little")
    with pytest.raises(FileInvalidError):
        sanitize(bytes(lying))


def test_too_many_pixels_is_refused_before_decoding():
    side = int(MAX_PIXELS ** 0.5) + 10
    data = png((side, side), mode="L")        # a flat image compresses to almost nothing
    assert len(data) < MAX_AVATAR_BYTES
    with pytest.raises(FileInvalidError, match="pixels"):
        sanitize(data)


def test_sniff_trusts_content_only():
    assert (sniff(jpeg()), sniff(png()), sniff(webp()), sniff(b"BM" + b"\x00" * 30)) == ("JPEG", "PNG", "WEBP", None)


async def test_decoding_runs_off_the_loop(monkeypatch):
    threads = []

    def recording(data: bytes) -> images.Avatar:
        threads.append(threading.current_thread().name)
        return sanitize(data)

    monkeypatch.setattr(images, "sanitize", recording)
    await prepare_avatar(png())
    assert threads and threads[0].startswith("swiper-image")


async def test_loop_keeps_ticking_while_a_big_image_is_checked():
    """Relative, not absolute: on a busy machine everything is slower, but the loop must not wait for the decode."""
    data = jpeg((3200, 2400), noise=True, quality=60)
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    gc.disable()   # a full collection of the suite's heap can pause the loop for as long as the decode takes
    try:
        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        await prepare_avatar(data)
        took = time.perf_counter() - started
        done.set()
        await task
    finally:
        gc.enable()
    assert took > 0.05, "the image should take real CPU time for this test to mean anything"
    assert max(gaps) < took / 3, (max(gaps), took)


# -- Qiniu ----------------------------------------------------------------------------------------------------

@pytest_asyncio.fixture
async def stub() -> QiniuUploadStub:
    server = QiniuUploadStub(AK, SK, BUCKET)
    await server.start()
    yield server
    await server.stop()


def qiniu_settings(up_host: str, **overrides: object) -> conf.Settings:
    values: dict[str, object] = dict(storage_backend="qiniu", qiniu_access_key=AK, qiniu_secret_key=SK,
                                     qiniu_bucket=BUCKET, qiniu_domain="https://cdn.example.test",
                                     qiniu_up_host=up_host, qiniu_rs_host=up_host, storage_timeout=1.0)
    values.update(overrides)
    return conf.load_settings({}, **values)


@pytest_asyncio.fixture
async def qiniu(stub: QiniuUploadStub) -> QiniuStorage:
    backend = build_storage(qiniu_settings(stub.up_host))
    assert isinstance(backend, QiniuStorage)
    yield backend
    await backend.aclose()


def policy_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(":")[2]))


def test_token_policy(qiniu):
    key = new_avatar_key(7, "png")
    token = qiniu.upload_token(key)
    assert token.startswith(AK + ":")
    policy = policy_of(token)
    assert policy["scope"] == f"{BUCKET}:{key}" and policy["insertOnly"] == 1
    assert policy["fsizeLimit"] == MAX_AVATAR_BYTES and policy["mimeLimit"] == "image/jpeg;image/png;image/webp"
    assert time.time() < policy["deadline"] <= time.time() + storage.TOKEN_TTL + 1


def test_keys_are_fresh_and_unguessable():
    keys = {new_avatar_key(7, "jpg") for _ in range(1000)}
    assert len(keys) == 1000
    assert all(k.startswith("avatars/7/") and k.endswith(".jpg") and len(k.split("/")[2]) >= 26 for k in keys)


async def test_upload_reaches_the_stub(qiniu, stub):
    data, key = png(), new_avatar_key(7, "png")
    await qiniu.save(key, data, "image/png")
    [upload] = stub.uploads
    assert (upload["key"], upload["data"], upload["content_type"]) == (key, data, "image/png")
    assert upload["filename"] == key.rsplit("/", 1)[1]
    assert stub.objects[key] == data and stub.rejected == []
    with pytest.raises(UpstreamError):     # insertOnly: a key is never overwritten
        await qiniu.save(key, data, "image/png")
    assert stub.rejected[-1]["status"] == 614


async def test_delete_through_the_management_api(qiniu, stub):
    key = new_avatar_key(7, "png")
    await qiniu.save(key, png(), "image/png")
    await qiniu.delete(key)
    assert stub.deleted == [key] and key not in stub.objects
    await qiniu.delete(key)  # 612, no such file: gone already, which is what was wanted
    stub.mode = "http_500"
    with pytest.raises(UpstreamError):
        await qiniu.delete(key)
    backend = QiniuStorage(qiniu_settings(stub.up_host, qiniu_secret_key="not-the-secret"))
    stub.mode = "ok"
    try:
        with pytest.raises(UpstreamError):
            await backend.delete(key)
    finally:
        await backend.aclose()
    assert stub.rejected[-1] == {"status": 401, "reason": "bad token"}


async def test_local_delete_removes_the_file_and_its_empty_directory(tmp_path):
    backend = LocalStorage(str(tmp_path))
    key = new_avatar_key(7, "png")
    await backend.save(key, png(), "image/png")
    await backend.delete(key)
    assert not (tmp_path / "avatars" / "7").exists()
    await backend.delete(key)  # not there: deleted already


@pytest.mark.parametrize("mode", ["http_500", "bad_json"])
async def test_provider_errors_are_upstream_failures(qiniu, stub, mode):
    stub.mode = mode
    with pytest.raises(UpstreamError):
        await qiniu.save(new_avatar_key(7, "png"), png(), "image/png")


async def test_slow_provider_times_out(qiniu, stub):
    stub.mode, stub.slow_delay = "slow", 5.0
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        await qiniu.save(new_avatar_key(7, "png"), png(), "image/png")
    assert 0.9 < time.monotonic() - started < 2.5


async def test_wrong_secret_is_a_bad_token(stub):
    backend = QiniuStorage(qiniu_settings(stub.up_host, qiniu_secret_key="not-the-secret"))
    try:
        with pytest.raises(UpstreamError):
            await backend.save(new_avatar_key(7, "png"), png(), "image/png")
    finally:
        await backend.aclose()
    assert stub.rejected == [{"status": 401, "reason": "bad token"}]


async def test_refused_connection_is_upstream_failure():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]   # nothing listens once the socket closes
    backend = QiniuStorage(qiniu_settings(f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(UpstreamError):
            await backend.save(new_avatar_key(7, "png"), png(), "image/png")
    finally:
        await backend.aclose()


async def test_stub_checks_what_qiniu_checks(stub):
    """The stub itself: tampered, expired, wrongly scoped or oversized uploads are refused."""
    auth, key, data = Auth(AK, SK), "avatars/7/x.png", png()
    policy = {"insertOnly": 1, "fsizeLimit": MAX_AVATAR_BYTES}
    good = auth.upload_token(BUCKET, key, 60, policy)
    tampered = good.rsplit(":", 1)[0] + ":" + base64.urlsafe_b64encode(
        json.dumps({**policy_of(good), "fsizeLimit": 10**12}).encode()).decode()
    cases = [
        (tampered, key, 401), (auth.upload_token(BUCKET, key, -10, policy), key, 401),
        (auth.upload_token(BUCKET, "avatars/7/other.png", 60, policy), key, 403),
        (auth.upload_token(BUCKET, key, 60, {**policy, "fsizeLimit": 10}), key, 413),
        (auth.upload_token(BUCKET, key, 60, {"fsizeLimit": MAX_AVATAR_BYTES}), key, 403),
    ]
    from tornado.httpclient import AsyncHTTPClient
    http = AsyncHTTPClient()
    for token, form_key, status in cases:
        body, boundary = multipart_body({"token": token, "key": form_key}, "file", "x.png", "image/png", data)
        resp = await http.fetch(stub.up_host + "/", method="POST", body=body, raise_error=False,
                                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert resp.code == status, (resp.code, resp.body)
        assert "error" in json.loads(resp.body)
    body, boundary = multipart_body({"token": good, "key": key, "crc32": "1"}, "file", "x.png", "image/png", data)
    resp = await http.fetch(stub.up_host + "/", method="POST", body=body, raise_error=False,
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert resp.code == 406
    assert qiniu_etag(b"") == "Fto5o-5ea0sNMlW_75VgGJCv2AcJ"   # Qiniu's documented hash of the empty file


def test_multipart_body_parses_back():
    data = os.urandom(5000)
    body, boundary = multipart_body({"token": "t:s:p", "key": "avatars/1/a.png"}, "file", "a.png", "image/png", data)
    arguments: dict = {}
    files: dict = {}
    httputil.parse_body_arguments(f"multipart/form-data; boundary={boundary}", body, arguments, files)
    assert arguments == {"token": [b"t:s:p"], "key": [b"avatars/1/a.png"]}
    assert files["file"][0].body == data and files["file"][0].content_type == "image/png"


# -- local ----------------------------------------------------------------------------------------------------

async def test_local_save_is_atomic_and_leaves_no_temporary(tmp_path):
    backend = LocalStorage(str(tmp_path / "media"))
    key, data = new_avatar_key(7, "png"), png()
    await backend.save(key, data, "image/png")
    target = tmp_path / "media" / key
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


async def test_local_failure_is_upstream_failure(tmp_path):
    blocker = tmp_path / "media"
    blocker.write_bytes(b"a file where the directory should be")
    with pytest.raises(UpstreamError):
        await LocalStorage(str(blocker)).save(new_avatar_key(7, "png"), png(), "image/png")


@pytest.mark.parametrize("key", ["../etc/passwd", "avatars//x.png", "avatars/.hidden", "/abs/x.png"])
def test_local_refuses_keys_it_did_not_make(tmp_path, key):
    with pytest.raises(ValueError):
        LocalStorage(str(tmp_path)).path_for(key)


def test_default_backend_is_local_under_var_media():
    settings = conf.load_settings({})
    assert settings.storage_backend == "local" and settings.media_url == "/media"
    assert settings.media_dir.endswith(os.path.join("var", "media"))
    assert isinstance(build_storage(settings), LocalStorage)
    with pytest.raises(conf.SettingsError, match="SWIPER_MEDIA_URL"):
        conf.load_settings({"SWIPER_MEDIA_URL": "media files"})
    assert conf.load_settings({"SWIPER_MEDIA_URL": "https://img.example.com/m/"}).media_url == \
        "https://img.example.com/m"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current

