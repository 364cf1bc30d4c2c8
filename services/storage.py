"""Where avatars go: Qiniu (form upload over Tornado's async HTTP client) or a local directory.

The ``qiniu`` SDK is used only to sign upload tokens, which is pure computation; its own upload functions use
blocking ``requests`` and would stall the IOLoop for the whole transfer, so the form upload is ours.
Keys are never reused (``avatars/<user id>/<random>.<ext>``, insertOnly), so a failed upload can never
overwrite or break the avatar the profile points at: the profile switches to a new key only after the
upload succeeded.
"""
from __future__ import annotations

import base64
import asyncio
import json
import logging
import secrets
import ssl
import time
import zlib
from pathlib import Path
from typing import Protocol

import aiofiles
import aiofiles.os
import certifi
from qiniu import Auth
from redis.asyncio import Redis
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from conf import Settings
from models import StorageDeletion, User, db
from models.base import utcnow
from services.accounts import changing_account
from services.errors import UpstreamError
from services.images import MAX_AVATAR_BYTES, prepare_avatar
from services.profiles import avatar_url

log = logging.getLogger("swiper.storage")

STORE_FAILED = "The avatar could not be stored; try again shortly."
DELETE_FAILED = "A stored object could not be deleted."
TOKEN_TTL = 300   # seconds: short, yet tolerant of clock skew; the token can only ever create this one key
ALLOWED_MIME = "image/jpeg;image/png;image/webp"


class Storage(Protocol):
    async def save(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under a new ``key``; raises ``UpstreamError`` when the backend fails or times out."""
        ...

    async def delete(self, key: str) -> None:
        """Delete ``key`` (one that is not there counts as deleted); ``UpstreamError`` when the backend fails."""
        ...

    async def aclose(self) -> None:
        ...


class QiniuStorage:
    """Form upload (``POST /`` multipart: token, key, crc32, file) to ``SWIPER_QINIU_UP_HOST``."""

    def __init__(self, settings: Settings) -> None:
        self._auth = Auth(settings.qiniu_access_key, settings.qiniu_secret_key)
        self._bucket = settings.qiniu_bucket
        self._url = settings.qiniu_up_host.rstrip("/") + "/"
        self._rs = settings.qiniu_rs_host.rstrip("/")
        self._timeout = settings.storage_timeout
        # Built at start-up: Tornado would otherwise build its default client context (~30 ms) on the loop.
        self._ssl = ssl.create_default_context()
        self._ssl.load_verify_locations(cafile=certifi.where())
        self._http: AsyncHTTPClient | None = None

    def upload_token(self, key: str) -> str:
        """Signed locally (HMAC-SHA1): scope ``bucket:key``, create-only, size and type limited."""
        policy = {"insertOnly": 1, "fsizeLimit": MAX_AVATAR_BYTES, "mimeLimit": ALLOWED_MIME}
        return self._auth.upload_token(self._bucket, key, TOKEN_TTL, policy)

    async def save(self, key: str, data: bytes, content_type: str) -> None:
        fields = {"token": self.upload_token(key), "key": key, "crc32": str(zlib.crc32(data))}
        body, boundary = multipart_body(fields, "file", key.rsplit("/", 1)[-1], content_type, data)
        request = HTTPRequest(self._url, method="POST", body=body, ssl_options=self._ssl,
                              headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                              connect_timeout=min(3.0, self._timeout), request_timeout=self._timeout)
        started = time.monotonic()
        try:
            response = await self._client().fetch(request, raise_error=False)
        except Exception as exc:   # timeout, refused, reset, TLS, malformed answer: all mean "provider failed"
            log.warning("Qiniu upload of %s failed after %.2fs: %s: %s", key, time.monotonic() - started,
                        type(exc).__name__, exc)
            raise UpstreamError(STORE_FAILED) from None
        if response.code != 200:
            log.warning("Qiniu upload of %s refused after %.2fs: status=%s %r", key, time.monotonic() - started,
                        response.code, (response.body or b"")[:200])
            raise UpstreamError(STORE_FAILED)
        try:
            answer = json.loads(response.body)
            stored_key = answer["key"]
        except (ValueError, TypeError, KeyError):
            log.warning("Qiniu upload of %s: unreadable answer %r", key, (response.body or b"")[:200])
            raise UpstreamError(STORE_FAILED) from None
        if stored_key != key:
            log.warning("Qiniu stored %r instead of %r", stored_key, key)
            raise UpstreamError(STORE_FAILED)

    async def delete(self, key: str) -> None:
        """``POST /delete/<EncodedEntryURI>`` on the management host, signed with the QBox scheme; 612 (no such
        file) means it is gone already."""
        entry = base64.urlsafe_b64encode(f"{self._bucket}:{key}".encode()).decode()
        url = f"{self._rs}/delete/{entry}"
        request = HTTPRequest(url, method="POST", body=b"", ssl_options=self._ssl,
                              headers={"Content-Type": "application/x-www-form-urlencoded",
                                       "Authorization": f"QBox {self._auth.token_of_request(url)}"},
                              connect_timeout=min(3.0, self._timeout), request_timeout=self._timeout)
        try:
            response = await self._client().fetch(request, raise_error=False)
        except Exception as exc:
            log.warning("Qiniu delete of %s failed: %s: %s", key, type(exc).__name__, exc)
            raise UpstreamError(DELETE_FAILED) from None
        if response.code not in (200, 612):
            log.warning("Qiniu delete of %s refused: status=%s %r", key, response.code, (response.body or b"")[:200])
            raise UpstreamError(DELETE_FAILED)

    def _client(self) -> AsyncHTTPClient:
        if self._http is None:   # created inside the running loop, on first use
            self._http = AsyncHTTPClient(force_instance=True, max_clients=50, max_body_size=1024 * 1024)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class LocalStorage:
    """Files under ``SWIPER_MEDIA_DIR`` for a machine without Qiniu; nginx (or Tornado alone) serves them.

    Writing 5 MiB takes 10-20 ms on this machine's disk (more when the kernel throttles dirty pages), too long
    to do on the IOLoop, so aiofiles does each file operation in a worker thread. A temporary name plus an atomic
    rename means a reader never sees half a file. No fsync: the upload is the client's to retry.
    """

    def __init__(self, root: str) -> None:
        self.root = Path(root).resolve()

    def path_for(self, key: str) -> Path:
        parts = key.split("/")
        if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            raise ValueError(f"not a storage key: {key!r}")   # keys are ours; this only guards a future caller
        return self.root.joinpath(*parts)

    async def save(self, key: str, data: bytes, content_type: str) -> None:
        target = self.path_for(key)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            await aiofiles.os.makedirs(target.parent, exist_ok=True)
            async with aiofiles.open(temporary, "xb") as fh:
                await fh.write(data)
            await aiofiles.os.replace(temporary, target)
        except OSError as exc:
            log.error("storing %s under %s failed: %s", key, self.root, exc)
            try:
                await aiofiles.os.remove(temporary)
            except OSError:
                pass
            raise UpstreamError(STORE_FAILED) from None

    async def delete(self, key: str) -> None:
        target = self.path_for(key)
        try:
            await aiofiles.os.remove(target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("deleting %s under %s failed: %s", key, self.root, exc)
            raise UpstreamError(DELETE_FAILED) from None
        try:  # the per-user directory goes with its last file (its name is the user id)
            await aiofiles.os.rmdir(target.parent)
        except OSError:
            pass

    async def aclose(self) -> None:
        pass


def build_storage(settings: Settings) -> Storage:
    """The backend the settings ask for; the app builds one at start-up and closes it at shutdown."""
    if settings.storage_backend == "qiniu":
        return QiniuStorage(settings)
    return LocalStorage(settings.media_dir)


def multipart_body(fields: dict[str, str], file_field: str, filename: str, content_type: str,
                   data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with text fields and one file; returns (body, boundary)."""
    boundary = secrets.token_hex(16)
    while boundary.encode() in data:   # practically never; cheap to rule out
        boundary = secrets.token_hex(16)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"'
                 f'\r\nContent-Type: {content_type}\r\n\r\n'.encode())
    return b"".join([*parts, data, f"\r\n--{boundary}--\r\n".encode()]), boundary


def new_avatar_key(user_id: int, extension: str) -> str:
    """Unguessable and unique per upload, so URLs can be cached forever and never collide."""
    return f"avatars/{user_id}/{secrets.token_urlsafe(16)}.{extension}"


async def replace_avatar(*, redis: Redis, settings: Settings, storage: Storage, cleanup: "StorageCleanup",
                         user_id: int, data: bytes) -> str:
    """Check the image, store it under a fresh key, then point the profile at it; returns the public URL. The
    old avatar's object is deleted after the answer (``cleanup``)."""
    avatar = await prepare_avatar(data)
    key = new_avatar_key(user_id, avatar.extension)
    await storage.save(key, avatar.data, avatar.content_type)
    async with changing_account(redis=redis, user_id=user_id), db.aio_atomic():
        old = await User.select(User.avatar_key).where(User.id == user_id).for_update().aio_scalar()
        await User.update(avatar_key=key, updated_at=utcnow()).where(User.id == user_id).aio_execute()
        if old:
            await schedule_deletions([old])
    if old:
        cleanup.soon([old])
    return avatar_url(settings, key)


async def schedule_deletions(keys_: list[str]) -> None:
    """Inside the transaction that stops using these objects: they are deleted from storage after it commits
    (``StorageCleanup.soon``), and by the periodic jobs until the storage confirms."""
    if keys_:
        await StorageDeletion.insert_many([{"key": key, "created_at": utcnow()} for key in keys_]
                                          ).on_conflict_ignore().aio_execute()


class StorageCleanup:
    """Deletes objects nothing points at any more, without the request waiting: ``soon`` starts it after the
    answer; ``purge`` (a periodic job) retries whatever failed. Built in ``server.py``, closed at shutdown."""

    BATCH = 100

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._tasks: set[asyncio.Task] = set()

    def soon(self, keys_: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self._delete(keys_))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _delete(self, keys_: list[str]) -> int:
        deleted = 0
        for key in keys_:
            try:
                await self.storage.delete(key)
            except Exception as exc:  # UpstreamError, or MySQL/Redis trouble: the periodic job retries it
                log.info("stored object %s not deleted yet: %s", key, exc)
                try:
                    await (StorageDeletion.update(attempts=StorageDeletion.attempts + 1)
                           .where(StorageDeletion.key == key).aio_execute())
                except Exception:
                    pass
                continue
            try:
                await StorageDeletion.delete().where(StorageDeletion.key == key).aio_execute()
            except Exception as exc:
                log.info("stored object %s deleted, its row not yet: %s", key, exc)
                continue
            deleted += 1
        return deleted

    async def purge(self) -> int:
        """The periodic retry: every pending deletion, oldest first, a batch at a time."""
        total = 0
        while True:
            pending = [row.key for row in await StorageDeletion.select(StorageDeletion.key)
                       .order_by(StorageDeletion.created_at).limit(self.BATCH).aio_execute()]
            if not pending:
                return total
            done = await self._delete(pending)
            total += done
            if done < len(pending):  # the storage is failing: try again next period
                return total

    async def wait(self) -> None:
        """Let the deletions already started finish (tests; the shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        await self.wait()
