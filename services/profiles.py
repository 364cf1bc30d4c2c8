"""Profile views (owner vs public) and the PATCH rules: everything is validated before anything is written."""
from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import peewee
from redis.asyncio import Redis

from conf import Settings
from models import Preferences, User, db
from models.base import utcnow
from services import vip
from services.accounts import Account, changing_account, load_account
from services.errors import ConflictError, InvalidParamsError
from services.location.cells import distance_km
from services.phones import mask_phone
from services.photos import photo_url, photos_of, photos_view, visible_albums

GENDERS = ("male", "female")
PREFERENCE_FIELDS = ("dating_gender", "location", "min_distance", "max_distance", "min_dating_age",
                     "max_dating_age", "vibration", "only_match", "auto_play")


def today(settings: Settings) -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo(settings.timezone)).date()


def age_on(birthday: dt.date | None, day: dt.date) -> int | None:
    if birthday is None:
        return None
    return day.year - birthday.year - ((day.month, day.day) < (birthday.month, birthday.day))


def avatar_url(settings: Settings, key: str | None) -> str | None:
    """The public URL of a stored avatar: the Qiniu bucket's domain, or the local backend's media URL."""
    return photo_url(settings, key) if key else None


def _card(user: User, settings: Settings) -> dict:
    return {"id": user.id, "nickname": user.nickname, "gender": user.gender,
            "age": age_on(user.birthday, today(settings)), "avatar": avatar_url(settings, user.avatar_key),
            "location": user.location}


def public_view(user: User, settings: Settings, origin: int | None = None, *, photos: list[str]) -> dict:
    """``origin``: the viewer's search origin (``location.search_origin``), which ``distance_km`` is measured
    from to the user's own position; ``photos``: what the viewer may see of the album (``photos.visible_albums``)."""
    view = _card(user, settings)
    view["distance_km"] = distance_km(origin, user.geo_cell)
    view["photos"] = photos
    return view


async def public_views(settings: Settings, viewer: int, users: list[User], origin: int | None) -> list[dict]:
    """Public views of many users as ``viewer`` sees them (their albums in one statement)."""
    albums = await visible_albums(settings, viewer, users)
    return [public_view(user, settings, origin, photos=albums.get(user.id, [])) for user in users]


async def owner_view(account: Account, settings: Settings) -> dict:
    user, prefs = account.user, account.prefs
    view = _card(user, settings)
    view.update({
        "phone": mask_phone(user.phone), "birthday": user.birthday, "vip": await vip.membership_view(user),
        "preferences": {name: getattr(prefs, name) for name in PREFERENCE_FIELDS},
        "photos": photos_view(settings, account.photos if account.photos is not None else await photos_of(user)),
    })
    return view


def _check_changes(user_changes: dict[str, Any], pref_changes: dict[str, Any], account: Account,
                   settings: Settings) -> None:
    """The rules that need today or the stored profile; the shapes were checked by the request model."""
    problems: dict[str, str] = {}
    if "birthday" in user_changes:
        age = age_on(user_changes["birthday"], today(settings))
        if age is None or not 18 <= age <= 100:
            problems["birthday"] = "age must be between 18 and 100"
    for low_name, high_name in (("min_dating_age", "max_dating_age"), ("min_distance", "max_distance")):
        low = pref_changes.get(low_name, getattr(account.prefs, low_name))
        high = pref_changes.get(high_name, getattr(account.prefs, high_name))
        if low > high:
            problems[f"preferences.{low_name}"] = f"must not exceed {high_name} ({high})"
    if problems:
        raise InvalidParamsError.for_fields(problems)


async def update_profile(*, redis: Redis, settings: Settings, account: Account, changes: dict[str, Any]) -> Account:
    """Apply a PATCH (only the fields sent, shapes already checked): check the cross-field rules and
    ``anylocation``, write user and preferences in one transaction, then drop the cache."""
    user_changes = {name: value for name, value in changes.items() if name != "preferences"}
    pref_changes = dict(changes.get("preferences") or {})
    _check_changes(user_changes, pref_changes, account, settings)
    if pref_changes.get("location") is not None:  # a preference sent now; moving city alone is always allowed
        own = user_changes.get("location", account.user.location)
        if pref_changes["location"] != own:
            await vip.require_permission(account.user, "anylocation")
    if not user_changes and not pref_changes:
        return account
    user_id = account.user.id
    try:
        async with changing_account(redis=redis, user_id=user_id), db.aio_atomic():
            await User.update(**user_changes, updated_at=utcnow()).where(User.id == user_id).aio_execute()
            if pref_changes:
                await Preferences.insert(user=user_id, **pref_changes).on_conflict(
                    update=pref_changes).aio_execute()
    except peewee.IntegrityError as exc:
        if "user_nickname" in str(exc):
            raise ConflictError("This nickname is taken.", data={"fields": {"nickname": "taken"}}) from None
        raise
    return await load_account(redis=redis, settings=settings, user_id=user_id)
