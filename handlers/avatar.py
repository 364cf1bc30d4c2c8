"""Image uploads (my avatar, `PUT /api/v1/profile/avatar`, multipart field `avatar`; the album in
handlers/photos.py), and the local backend's files."""
from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from tornado import httputil, web

from conf import Settings
from handlers.base import BaseHandler
from handlers.contract import Payload, operation
from services import jsoncodec
from services.errors import (AppError, FileInvalidError, InvalidParamsError, MethodNotAllowedError, NotFoundError,
                             PayloadTooLargeError)
from services.images import MAX_AVATAR_BYTES
from services.storage import Storage, StorageCleanup, replace_avatar

MULTIPART_OVERHEAD = 64 * 1024   # boundaries and part headers around the 5 MiB file, generously
_MULTIPART = httputil.ParseBodyConfig(multipart=httputil.ParseMultipartConfig(max_parts=8,
                                                                             max_part_header_size=4096))


class AvatarUpload(BaseModel):
    """The multipart form: one part named ``avatar`` (JPEG, PNG or WebP by content, at most 5 MiB)."""

    avatar: bytes


class AvatarStored(Payload):
    avatar: str  # its public URL


class UploadHandler(BaseHandler):
    """An image upload. BaseHandler refuses a body over ``max_body_size`` (413) from its Content-Length, or stops
    buffering a chunked one at the limit, so at most 5 MiB plus framing is ever held in memory."""

    max_body_size = MAX_AVATAR_BYTES + MULTIPART_OVERHEAD

    @property
    def storage(self) -> Storage:
        return self.application.settings["storage"]

    @property
    def storage_cleanup(self) -> StorageCleanup:
        return self.application.settings["storage_cleanup"]

    def upload_part(self, name: str) -> bytes:
        """The bytes of the one part ``name``: 1003 when missing, empty or malformed, 413 over 5 MiB, and 1002
        naming any other field.

        Parsing a 5 MiB body is ~3 ms of splitting bytes, done here on the loop; the image work is not.
        """
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise FileInvalidError(f"Send multipart/form-data with the image in a field named '{name}'.")
        arguments: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        try:
            httputil.parse_body_arguments(content_type, self.body, arguments, files, self.request.headers,
                                          config=_MULTIPART)
        except httputil.HTTPInputError:
            raise FileInvalidError("The multipart/form-data body is malformed.") from None
        # A part without a filename is accepted too: the content decides, not the client's labels.
        parts = [f.body for f in files.get(name, [])] + arguments.get(name, [])
        if len(parts) != 1:
            raise FileInvalidError(f"Send exactly one image in the field '{name}'.")
        if not parts[0]:
            raise FileInvalidError(f"The {name} file is empty.")
        if len(parts[0]) > MAX_AVATAR_BYTES:
            raise PayloadTooLargeError(f"The {name} is over {MAX_AVATAR_BYTES} bytes.")
        unknown = (set(arguments) | set(files)) - {name}
        if unknown:   # as with JSON bodies: an unknown field is refused and named, never silently ignored
            raise InvalidParamsError.for_fields({field: "unknown field" for field in unknown})
        return parts[0]


class AvatarHandler(UploadHandler):
    @operation("replaceMyAvatar", tag="profile", form=AvatarUpload, response=AvatarStored, errors=(502,),
               summary="Replace my avatar (JPEG, PNG or WebP by content, at most 5 MiB; metadata such as GPS is "
                       "removed)")
    async def put(self) -> None:
        """Replace my avatar; if checking or storing fails, the old one stays."""
        await self.current_account()   # a token of a deleted account is no session
        assert self.user_id is not None
        url = await replace_avatar(redis=self.redis, settings=self.settings_obj, storage=self.storage,
                                   cleanup=self.storage_cleanup, user_id=self.user_id,
                                   data=self.upload_part("avatar"))
        self.ok({"avatar": url})


class MediaHandler(web.StaticFileHandler):
    """The local backend's files when Tornado runs alone; in the stack nginx serves the same directory."""

    def set_default_headers(self) -> None:
        if not hasattr(self, "request_id"):   # also called again when an error clears the headers
            self.request_id = secrets.token_hex(8)
        self.set_header("X-Request-ID", self.request_id)

    async def get(self, path: str, include_body: bool = True) -> None:
        """One stored file. Keys are never reused, so a file may be cached for good."""
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error: AppError
        if status_code in (403, 404):   # 403 is Tornado's answer for paths outside the directory
            error = NotFoundError()
        elif status_code == 405:
            error = MethodNotAllowedError()
        else:
            super().write_error(status_code, **kwargs)
            return
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(jsoncodec.dumps(error.envelope()))


def media_routes(settings: Settings) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """With the local backend, the path of ``SWIPER_MEDIA_URL`` maps onto ``SWIPER_MEDIA_DIR``."""
    if settings.storage_backend != "local":
        return []
    prefix = urlsplit(settings.media_url).path.rstrip("/")
    return [(re.escape(prefix) + r"/(.+)", MediaHandler, {"path": settings.media_dir})]


routes = [
    (r"/api/v1/profile/avatar", AvatarHandler),
]
