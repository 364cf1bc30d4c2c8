"""Accounts: a user with their preferences, loaded through the model cache and created on first login."""
from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass

import peewee
from redis.asyncio import Redis
from redis.exceptions import RedisError

from conf import Settings
from models import Preferences, User, db
from models.base import utcnow
from services import keys, model_cache, tokens
from services.errors import NotAuthenticatedError, NotFoundError
from services.tokens import AccessClaims

log = logging.getLogger("swiper.accounts")
_NICKNAME_ALPHABET = string.ascii_lowercase + string.digits


@dataclass
class Account:
    user: User
    prefs: Preferences


def _encode(account: Account) -> str:
    return model_cache.rows_to_json(account.user, account.prefs)


def _decode(raw: str) -> Account:
    user, prefs = model_cache.rows_from_json(raw, User, Preferences)
    return Account(user=user, prefs=prefs)  # type: ignore[arg-type]


async def _fetch(user_id: int) -> Account:
    user = await User.aio_get_or_none(User.id == user_id)
    if user is None:
        raise NotFoundError("No such user.")
    prefs = await Preferences.aio_get_or_none(Preferences.user == user_id)
    return Account(user=user, prefs=prefs or Preferences(user=user_id))


async def load_account(*, redis: Redis, settings: Settings, user_id: int, prefetched: list | None = None) -> Account:
    """The user and preferences rows, from the cache when it holds them."""
    return await model_cache.read_through(
        redis=redis, name="User", pk=user_id, ttl=settings.profile_cache_ttl,
        load=lambda: _fetch(user_id), encode=_encode, decode=_decode, prefetched=prefetched)


async def authenticate(*, redis: Redis, settings: Settings, access_token: object) -> tuple[AccessClaims, list]:
    """Check the token and, in the same Redis round trip, fetch the account's cache entry (most requests need it).

    Returns the claims and what ``load_account(prefetched=...)`` takes.
    """
    claims = tokens.decode_access(settings, access_token)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(keys.auth_revoked(claims.family))
        model_cache.queue_read(pipe, name="User", pk=claims.user_id)
        revoked, prefetched = await pipe.execute()
    if revoked:
        raise NotAuthenticatedError("The session has ended.")
    return claims, prefetched


async def forget_account(*, redis: Redis, user_id: int) -> None:
    await model_cache.invalidate(redis=redis, name="User", pk=user_id)


def generate_nickname() -> str:
    return "用户" + "".join(secrets.choice(_NICKNAME_ALPHABET) for _ in range(8))


async def find_or_register(*, phone: str) -> tuple[int, bool]:
    """Return ``(user_id, is_new)``. The phone's unique key decides concurrent first logins: one insert wins."""
    user_id = await User.select(User.id).where(User.phone == phone).aio_scalar()
    if user_id is not None:
        return user_id, False
    for _ in range(5):
        try:
            async with db.aio_atomic():
                now = utcnow()
                user_id = await User.insert(phone=phone, nickname=generate_nickname(), created_at=now,
                                            updated_at=now, last_active_at=now).aio_execute()
                await Preferences.insert(user=user_id).aio_execute()
            return user_id, True
        except peewee.IntegrityError as exc:
            if "user_phone" in str(exc):
                break
    user_id = await User.select(User.id).where(User.phone == phone).aio_scalar()
    if user_id is None:
        raise peewee.IntegrityError("could not register phone")
    return user_id, False


async def load_users(user_ids: list[int]) -> dict[int, User]:
    """Many users' rows in one query, for lists of public views."""
    if not user_ids:
        return {}
    rows = await User.select().where(User.id.in_(list(set(user_ids)))).aio_execute()
    return {row.id: row for row in rows}


async def mark_active(*, redis: Redis, user_id: int) -> None:
    """Keep ``last_active_at`` fresh for the feed's order, writing it at most once per five minutes.

    Best effort: it only orders the feed, so failing it must never fail (or seem to fail) the request.
    """
    try:
        if await redis.set(keys.active(user_id), "1", ex=300, nx=True):
            await User.update(last_active_at=utcnow()).where(User.id == user_id).aio_execute()
    except (RedisError, peewee.DatabaseError, OSError) as exc:
        log.info("could not mark user %s active: %s", user_id, exc)
