"""A local stand-in for Qiniu's form-upload endpoint (``POST /`` on the upload host), for storage tests.

It checks each upload the way Qiniu does, with its own code rather than the SDK's: the token is
``AK:urlsafe_b64(hmac_sha1(SK, encodedPolicy)):encodedPolicy``, the policy's deadline must be in the future,
its scope must be ``bucket:key`` for the form's ``key``, ``insertOnly`` refuses an existing key (614),
``fsizeLimit`` a bigger file (413), ``mimeLimit`` another type, and a ``crc32`` field must match (406).
It is stricter than Qiniu in one way, to pin our policy: the scope must name the key, and ``insertOnly`` and
``fsizeLimit`` must be set. It answers ``{"hash", "key"}`` with Qiniu's etag, and errors as ``{"error": ...}``.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import zlib
from typing import Any

import tornado.httputil
import tornado.web

from tests.stubs.server import StubServer

BLOCK = 4 * 1024 * 1024


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def qiniu_etag(data: bytes) -> str:
    """Qiniu's file hash: SHA-1 of the data (or of the 4 MiB blocks' SHA-1s), prefixed, urlsafe base64."""
    if len(data) <= BLOCK:
        digest = b"\x16" + hashlib.sha1(data).digest()
    else:
        blocks = b"".join(hashlib.sha1(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK))
        digest = b"\x96" + hashlib.sha1(blocks).digest()
    return base64.urlsafe_b64encode(digest).decode()


class QiniuUploadStub(StubServer):
    """``mode`` picks what happens to uploads that pass verification: ok, http_500, slow, bad_json."""

    def __init__(self, access_key: str, secret_key: str, bucket: str) -> None:
        super().__init__()
        self.access_key, self.secret_key, self.bucket = access_key, secret_key, bucket
        self.mode = "ok"
        self.slow_delay = 5.0
        self.objects: dict[str, bytes] = {}
        self.uploads: list[dict[str, Any]] = []     # accepted: key, data, filename, content_type, policy
        self.deleted: list[str] = []                # keys deleted through the management API
        self.rejected: list[dict[str, Any]] = []    # status and reason
        self.request_count = 0
        self.up_host = ""

    async def start(self) -> None:
        port = await self.listen([(r".*", _Handler, {"stub": self})], max_body_size=64 * 1024 * 1024)
        self.up_host = f"http://127.0.0.1:{port}"

    def reset(self) -> None:
        self.mode, self.uploads, self.rejected, self.objects, self.request_count = "ok", [], [], {}, 0
        self.deleted = []

    async def handle(self, request: tornado.httputil.HTTPServerRequest) -> tuple[int, Any]:
        """Verify, then answer per ``mode``; returns (HTTP status, JSON body or raw bytes)."""
        self.request_count += 1
        if request.path.startswith("/delete/"):
            return self._delete(request)
        try:
            upload = self._verify(request)
        except _Refused as refused:
            self.rejected.append({"status": refused.status, "reason": refused.message})
            return refused.status, {"error": refused.message}
        if self.mode == "http_500":
            return 500, {"error": "internal error"}
        if self.mode == "slow":
            try:
                await asyncio.wait_for(self._stopping.wait(), self.slow_delay)
            except asyncio.TimeoutError:
                pass
        if self.mode == "bad_json":
            return 200, b"<html>gateway says hi</html>"
        self.objects[upload["key"]] = upload["data"]
        self.uploads.append(upload)
        return 200, {"hash": qiniu_etag(upload["data"]), "key": upload["key"]}

    def _delete(self, request: tornado.httputil.HTTPServerRequest) -> tuple[int, Any]:
        """The management API's ``POST /delete/<EncodedEntryURI>`` with ``Authorization: QBox <ak>:<sign>``,
        sign = urlsafe base64 of HMAC-SHA1(secret, path + "\n"); 612 when there is no such object."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        access_key, _, signature = credentials.partition(":")
        expected = base64.urlsafe_b64encode(hmac.new(self.secret_key.encode(), (request.path + "\n").encode(),
                                                     hashlib.sha1).digest()).decode()
        if request.method != "POST" or scheme != "QBox" or access_key != self.access_key \
                or not hmac.compare_digest(signature, expected):
            self.rejected.append({"status": 401, "reason": "bad token"})
            return 401, {"error": "bad token"}
        if self.mode == "http_500":
            return 500, {"error": "internal error"}
        try:
            bucket, _, key = base64.urlsafe_b64decode(request.path[len("/delete/"):]).decode().partition(":")
        except ValueError:
            return 400, {"error": "invalid entry"}
        if bucket != self.bucket:
            return 631, {"error": "no such bucket"}
        if self.objects.pop(key, None) is None:
            return 612, {"error": "no such file or directory"}
        self.deleted.append(key)
        return 200, {}

    def _verify(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any]:
        if request.method != "POST" or request.path != "/":
            raise _Refused(405, "only POST / is supported")
        arguments: dict[str, list[bytes]] = {}
        files: dict[str, list[tornado.httputil.HTTPFile]] = {}
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise _Refused(400, "multipart/form-data is required")
        try:
            tornado.httputil.parse_body_arguments(content_type, request.body, arguments, files)
        except tornado.httputil.HTTPInputError as exc:
            raise _Refused(400, f"invalid multipart form: {exc}") from None
        token = (arguments.get("token") or [b""])[0].decode()
        if not token:
            raise _Refused(401, "token not specified")
        policy = self._check_token(token)
        key = (arguments.get("key") or [b""])[0].decode()
        uploaded = files.get("file") or []
        if len(uploaded) != 1 or not uploaded[0].filename:
            raise _Refused(400, "file not specified")
        file = uploaded[0]
        self._check_policy(policy, key, file)
        if "crc32" in arguments and int(arguments["crc32"][0]) != zlib.crc32(file.body):
            raise _Refused(406, "crc32 not match")
        return {"key": key, "data": file.body, "filename": file.filename, "content_type": file.content_type,
                "policy": policy}

    def _check_token(self, token: str) -> dict[str, Any]:
        parts = token.split(":")
        if len(parts) != 3 or parts[0] != self.access_key:
            raise _Refused(401, "bad token")
        _, signature, encoded_policy = parts
        expected = base64.urlsafe_b64encode(
            hmac.new(self.secret_key.encode(), encoded_policy.encode(), hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            raise _Refused(401, "bad token")
        try:
            policy = json.loads(base64.urlsafe_b64decode(encoded_policy))
        except ValueError:
            raise _Refused(401, "bad token") from None
        if not isinstance(policy, dict) or not isinstance(policy.get("deadline"), int):
            raise _Refused(401, "bad token")
        if policy["deadline"] < time.time():
            raise _Refused(401, "expired token")
        return policy

    def _check_policy(self, policy: dict[str, Any], key: str, file: tornado.httputil.HTTPFile) -> None:
        if policy.get("scope") != f"{self.bucket}:{key}" or not key:
            raise _Refused(403, "key doesn't match with scope")
        if policy.get("insertOnly") != 1 or not isinstance(policy.get("fsizeLimit"), int):
            raise _Refused(403, "stub: the policy must set insertOnly=1 and fsizeLimit")
        if len(file.body) > policy["fsizeLimit"]:
            raise _Refused(413, "file exceeds fsizeLimit")
        mime_limit = policy.get("mimeLimit")
        if mime_limit and file.content_type not in mime_limit.split(";"):
            raise _Refused(403, "limited mimeType: this file type is forbidden to upload")
        if key in self.objects:
            raise _Refused(614, "file exists")


class _Handler(tornado.web.RequestHandler):
    def initialize(self, stub: QiniuUploadStub) -> None:
        self.stub = stub

    async def _answer(self) -> None:
        status, body = await self.stub.handle(self.request)
        self.set_status(status)
        if isinstance(body, bytes):
            self.set_header("Content-Type", "text/html")
            self.finish(body)
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    get = post = put = delete = _answer   # non-POST methods are refused by the stub

    def check_xsrf_cookie(self) -> None:
        pass
