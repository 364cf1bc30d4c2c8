"""The album's reads: my photos in my order, and which of an owner's photos a viewer may see.

``<PublicUser>.photos`` is empty when the owner's ``preferences.only_match`` is true and the viewer is not
matched with them; ``visible_albums`` answers that for a whole list of owners in one statement (the match is
probed by its unique pair key), so every list shows the same thing a single profile would.
"""
from __future__ import annotations

from typing import Any

from conf import Settings
from models import User, db
from models.safety import Photo

MAX_PHOTOS = 9
_VISIBLE = """
SELECT p.user_id, p.key FROM photo AS p JOIN preferences AS pr ON pr.user_id = p.user_id
WHERE p.user_id IN ({owners}) AND (pr.only_match = 0 OR p.user_id = %s OR EXISTS (
  SELECT 1 FROM `match` AS m WHERE m.user_a = LEAST(%s, p.user_id) AND m.user_b = GREATEST(%s, p.user_id)))
ORDER BY p.user_id, p.position, p.id
"""


def photo_url(settings: Settings, key: str) -> str:
    base = settings.qiniu_domain if settings.storage_backend == "qiniu" else settings.media_url
    return f"{base.rstrip('/')}/{key}"


async def _fetchall(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


async def visible_albums(settings: Settings, viewer: int, owners: list[User]) -> dict[int, list[str]]:
    """Owner id → the photo URLs ``viewer`` may see, in the owner's order (owners without any are left out).
    Only owners whose ``photo_count`` says they have photos are asked about: none, no statement."""
    owners = sorted({owner.id for owner in owners if owner.photo_count})
    if not owners:
        return {}
    sql = _VISIBLE.format(owners=",".join(["%s"] * len(owners)))
    rows = await db.aio_execute_sql(sql, (*owners, viewer, viewer, viewer), fetch_results=_fetchall)
    albums: dict[int, list[str]] = {}
    for owner, key in rows:
        albums.setdefault(owner, []).append(photo_url(settings, key))
    return albums


async def my_photos(user_id: int) -> list[Photo]:
    return list(await Photo.select().where(Photo.user_id == user_id)
                .order_by(Photo.position, Photo.id).aio_execute())


async def photos_of(user: User) -> list[Photo]:
    """``my_photos``, without a statement for a user whose ``photo_count`` is 0 (the cached account carries it)."""
    return await my_photos(user.id) if user.photo_count else []


def photos_view(settings: Settings, photos: list[Photo]) -> list[dict[str, Any]]:
    return [{"id": photo.id, "url": photo_url(settings, photo.key)} for photo in photos]
