"""My album: ``PUT /api/v1/profile/photos`` (multipart field ``photo``, the avatar's rules), ``DELETE
/api/v1/profile/photos/{id}``, ``PUT /api/v1/profile/photos/order``."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from handlers.avatar import UploadHandler
from handlers.base import BaseHandler
from handlers.contract import RequestModel, UserId, operation
from handlers.shapes import Items, Photo
from services import album
from services.photos import MAX_PHOTOS


class PhotoUpload(BaseModel):
    """The multipart form: one part named ``photo`` (JPEG, PNG or WebP by content, at most 5 MiB)."""

    photo: bytes


class PhotoOrder(RequestModel):
    ids: Annotated[list[UserId], Field(max_length=MAX_PHOTOS)]  # exactly my photo ids, in the new order


class Album(Items[Photo]):
    """My photos, in my order (no cursor: at most 9)."""


class PhotosHandler(UploadHandler):
    @operation("addMyPhoto", tag="profile", form=PhotoUpload, response=Album, errors=(502,),
               summary="Add a photo at the end of my album (at most 9; the avatar's rules)")
    async def put(self) -> None:
        """Checked and stripped like the avatar; a 10th photo is 1002."""
        items = await album.add_photo(redis=self.redis, settings=self.settings_obj, storage=self.storage,
                                      cleanup=self.storage_cleanup, user_id=self.user_id,
                                      data=self.upload_part("photo"))
        self.ok({"items": items})


class PhotoHandler(UploadHandler):
    max_body_size = None  # no upload here

    @operation("deleteMyPhoto", tag="profile", response=Album, errors=(404,),
               summary="Delete one of my photos")
    async def delete(self, photo_id: str) -> None:
        """What remains, in my order."""
        items = await album.delete_photo(redis=self.redis, settings=self.settings_obj, cleanup=self.storage_cleanup,
                                         user_id=self.user_id, photo_id=int(photo_id))
        self.ok({"items": items})


class PhotoOrderHandler(BaseHandler):
    @operation("orderMyPhotos", tag="profile", body=PhotoOrder, response=Album,
               summary="Put my photos in this order (exactly my photo ids)")
    async def put(self, body: PhotoOrder) -> None:
        """The album in the new order."""
        self.ok({"items": await album.order_photos(redis=self.redis, settings=self.settings_obj, user_id=self.user_id,
                                                   ids=body.ids)})


routes = [
    (r"/api/v1/profile/photos", PhotosHandler),
    (r"/api/v1/profile/photos/order", PhotoOrderHandler),
    (r"/api/v1/profile/photos/([1-9][0-9]{0,17})", PhotoHandler),
]
