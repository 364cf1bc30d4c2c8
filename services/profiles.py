"""Profile views (owner vs public) and the PATCH rules: everything is validated before anything is written."""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

import peewee
from redis.asyncio import Redis

from conf import Settings
from models import Preferences, User, db
from models.base import utcnow
from services import vip
from services.accounts import Account, forget_account, load_account
from services.errors import ConflictError, InvalidParamsError
from services.phones import mask_phone

GENDERS = ("male", "female")
READ_ONLY = {"id", "phone", "vip", "avatar", "age", "created_at", "updated_at", "is_new_user"}
PROFILE_FIELDS = {"nickname", "gender", "birthday", "location", "preferences"}
PREFERENCE_INTS = {"min_distance": (0, 1000), "max_distance": (0, 1000),
                   "min_dating_age": (18, 100), "max_dating_age": (18, 100)}
PREFERENCE_BOOLS = {"vibration", "only_match", "auto_play"}
PREFERENCE_FIELDS = {"dating_gender", "location"} | set(PREFERENCE_INTS) | PREFERENCE_BOOLS
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def today(settings: Settings) -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo(settings.timezone)).date()


def age_on(birthday: dt.date | None, day: dt.date) -> int | None:
    if birthday is None:
        return None
    return day.year - birthday.year - ((day.month, day.day) < (birthday.month, birthday.day))


def avatar_url(settings: Settings, key: str | None) -> str | None:
    """The public URL of a stored avatar: the Qiniu bucket's domain, or the local backend's media URL."""
    if not key:
        return None
    base = settings.qiniu_domain if settings.storage_backend == "qiniu" else settings.media_url
    return f"{base.rstrip('/')}/{key}"


def public_view(user: User, settings: Settings) -> dict:
    return {"id": user.id, "nickname": user.nickname, "gender": user.gender,
            "age": age_on(user.birthday, today(settings)), "avatar": avatar_url(settings, user.avatar_key),
            "location": user.location}


async def owner_view(account: Account, settings: Settings) -> dict:
    user, prefs = account.user, account.prefs
    view = public_view(user, settings)
    view.update({
        "phone": mask_phone(user.phone), "birthday": user.birthday, "vip": await vip.membership_view(user),
        "preferences": {name: getattr(prefs, name) for name in
                        ("dating_gender", "location", "min_distance", "max_distance", "min_dating_age",
                         "max_dating_age", "vibration", "only_match", "auto_play")},
    })
    return view


def _text(value: Any, problems: dict[str, str], name: str) -> str | None:
    if not isinstance(value, str):
        problems[name] = "must be a string"
        return None
    value = value.strip()
    if not 1 <= len(value) <= 32:
        problems[name] = "must be 1 to 32 characters"
        return None
    if _CONTROL.search(value):
        problems[name] = "must not contain control characters"
        return None
    return value


def _birthday(value: Any, problems: dict[str, str], settings: Settings) -> dt.date | None:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        problems["birthday"] = "must be a date YYYY-MM-DD"
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        problems["birthday"] = "not a real date"
        return None
    age = age_on(day, today(settings))
    if age is None or not 18 <= age <= 100:
        problems["birthday"] = "age must be between 18 and 100"
        return None
    return day


def _preferences(body: Any, prefs: Preferences, problems: dict[str, str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        problems["preferences"] = "must be an object"
        return {}
    changes: dict[str, Any] = {}
    for name, value in body.items():
        path = f"preferences.{name}"
        if name not in PREFERENCE_FIELDS:
            problems[path] = "unknown field"
        elif name == "dating_gender":
            if value not in GENDERS:
                problems[path] = "must be male or female"
            else:
                changes[name] = value
        elif name == "location":
            text = _text(value, problems, path)
            if text is not None:
                changes[name] = text
        elif name in PREFERENCE_BOOLS:
            if not isinstance(value, bool):
                problems[path] = "must be true or false"
            else:
                changes[name] = value
        else:
            low, high = PREFERENCE_INTS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                problems[path] = f"must be an integer from {low} to {high}"
            else:
                changes[name] = value
    for low_name, high_name in (("min_dating_age", "max_dating_age"), ("min_distance", "max_distance")):
        if f"preferences.{low_name}" in problems or f"preferences.{high_name}" in problems:
            continue
        low = changes.get(low_name, getattr(prefs, low_name))
        high = changes.get(high_name, getattr(prefs, high_name))
        if low > high:
            problems[f"preferences.{low_name}"] = f"must not exceed {high_name} ({high})"
    return changes


def validate_profile_patch(body: dict[str, Any], account: Account,
                           settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(user_changes, preference_changes)`` or raise one 1002 naming every bad field."""
    problems: dict[str, str] = {}
    user_changes: dict[str, Any] = {}
    pref_changes: dict[str, Any] = {}
    for name, value in body.items():
        if name in READ_ONLY:
            problems[name] = "read-only field"
        elif name not in PROFILE_FIELDS:
            problems[name] = "unknown field"
        elif name in ("nickname", "location"):
            text = _text(value, problems, name)
            if text is not None:
                user_changes[name] = text
        elif name == "gender":
            if value not in GENDERS:
                problems[name] = "must be male or female"
            else:
                user_changes[name] = value
        elif name == "birthday":
            day = _birthday(value, problems, settings)
            if day is not None:
                user_changes[name] = day
        else:
            pref_changes = _preferences(value, account.prefs, problems)
    if problems:
        raise InvalidParamsError.for_fields(problems)
    return user_changes, pref_changes


async def update_profile(*, redis: Redis, settings: Settings, account: Account, body: dict[str, Any]) -> Account:
    """Validate, check ``anylocation``, write user and preferences in one transaction, then drop the cache."""
    user_changes, pref_changes = validate_profile_patch(body, account, settings)
    if "location" in pref_changes:  # the rule is about a preference sent now: moving city is always allowed
        own = user_changes.get("location", account.user.location)
        if pref_changes["location"] != own:
            await vip.require_permission(account.user, "anylocation")
    if not user_changes and not pref_changes:
        return account
    user_id = account.user.id
    try:
        async with db.aio_atomic():
            await User.update(**user_changes, updated_at=utcnow()).where(User.id == user_id).aio_execute()
            if pref_changes:
                await Preferences.insert(user=user_id, **pref_changes).on_conflict(
                    update=pref_changes).aio_execute()
    except peewee.IntegrityError as exc:
        if "user_nickname" in str(exc):
            raise ConflictError("This nickname is taken.", data={"fields": {"nickname": "taken"}}) from None
        raise
    finally:
        await forget_account(redis=redis, user_id=user_id)
    return await load_account(redis=redis, settings=settings, user_id=user_id)
