"""My album: add a photo (the avatar's checks and metadata stripping, at most ``MAX_PHOTOS``), delete one,
put them in an order. Lists are always in my order; a deleted photo's object is deleted after the answer.

Adding checks the count before the upload (a 10th photo costs no storage) and again inside the transaction
that inserts it, with my user row locked, so concurrent uploads can never make a 10th: the loser's object is
deleted like a deleted photo's. Each write keeps ``user.photo_count`` in its transaction (a list of people
without photos then reads no photo row) and goes through ``changing_account``: the cached account, which
carries the count and the album itself (the owner's profile reads neither), is dropped in every process.
"""
from __future__ import annotations

import secrets

from redis.asyncio import Redis

from conf import Settings
from models import Photo, User, db
from models.base import utcnow
from services.accounts import changing_account
from services.errors import InvalidParamsError, NotFoundError
from services.images import prepare_avatar
from services.photos import MAX_PHOTOS, my_photos, photos_view
from services.storage import Storage, StorageCleanup, schedule_deletions

FULL = f"At most {MAX_PHOTOS} photos; delete one first."


def new_photo_key(user_id: int, extension: str) -> str:
    return f"photos/{user_id}/{secrets.token_urlsafe(16)}.{extension}"


def _full() -> InvalidParamsError:
    return InvalidParamsError(FULL, data={"fields": {"photo": f"at most {MAX_PHOTOS} photos"}})


async def add_photo(*, redis: Redis, settings: Settings, storage: Storage, cleanup: StorageCleanup, user_id: int,
                    data: bytes) -> list[dict]:
    """Add one photo at the end; returns the whole album."""
    if await Photo.select().where(Photo.user_id == user_id).aio_count() >= MAX_PHOTOS:
        raise _full()
    image = await prepare_avatar(data)
    key = new_photo_key(user_id, image.extension)
    await storage.save(key, image.data, image.content_type)
    try:
        async with changing_account(redis=redis, user_id=user_id), db.aio_atomic():
            await User.select(User.id).where(User.id == user_id).for_update().aio_execute()
            photos = await my_photos(user_id)
            if len(photos) >= MAX_PHOTOS:
                raise _full()
            position = max((p.position for p in photos), default=0) + 1
            await Photo.insert(user_id=user_id, key=key, position=position, created_at=utcnow()).aio_execute()
            await User.update(photo_count=len(photos) + 1).where(User.id == user_id).aio_execute()
    except BaseException:
        async with db.aio_atomic():
            await schedule_deletions([key])
        cleanup.soon([key])
        raise
    return photos_view(settings, await my_photos(user_id))


async def delete_photo(*, redis: Redis, settings: Settings, cleanup: StorageCleanup, user_id: int,
                       photo_id: int) -> list[dict]:
    """Delete one of mine (not mine → 1005); returns what remains."""
    async with changing_account(redis=redis, user_id=user_id), db.aio_atomic():
        photo = await Photo.select().where((Photo.id == photo_id) & (Photo.user_id == user_id)).for_update().aio_first()
        if photo is None:
            raise NotFoundError("You have no such photo.")
        await Photo.delete().where(Photo.id == photo.id).aio_execute()
        remaining = await Photo.select().where(Photo.user_id == user_id).aio_count()
        await User.update(photo_count=remaining).where(User.id == user_id).aio_execute()
        await schedule_deletions([photo.key])
    cleanup.soon([photo.key])
    return photos_view(settings, await my_photos(user_id))


async def order_photos(*, redis: Redis, settings: Settings, user_id: int, ids: list[int]) -> list[dict]:
    """Put my photos in this order: ``ids`` must be exactly my photo ids, each once."""
    async with changing_account(redis=redis, user_id=user_id), db.aio_atomic():
        await User.select(User.id).where(User.id == user_id).for_update().aio_execute()
        photos = await my_photos(user_id)
        if len(ids) != len(set(ids)) or set(ids) != {p.id for p in photos}:
            raise InvalidParamsError.for_fields({"ids": "must list each of your photo ids exactly once"})
        for position, photo_id in enumerate(ids, start=1):
            await Photo.update(position=position).where(Photo.id == photo_id).aio_execute()
    return photos_view(settings, await my_photos(user_id))
