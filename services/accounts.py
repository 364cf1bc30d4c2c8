"""Accounts: a user with their preferences, loaded through the model cache and created on first login."""
from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass
from typing import AsyncContextManager

import peewee
from redis.asyncio import Redis
from redis.exceptions import RedisError

from conf import Settings
from models import Photo, Preferences, User, db
from models.base import utcnow
from models.replicas import allow_replica_reads, reader, replicas
from services import jsoncodec, keys, model_cache, tokens
from services.local_cache import MISSING, LocalCaches
from services.photos import my_photos
from services.redis_client import unreachable
from services.errors import AccountBannedError, NotAuthenticatedError, NotFoundError
from services.tokens import AccessClaims

log = logging.getLogger("swiper.accounts")
_NICKNAME_ALPHABET = string.ascii_lowercase + string.digits
ACTIVE_MARK_SECONDS = 300


@dataclass
class Account:
    """The signed-in user's rows, cached together: the album too, so the owner's profile reads nothing
    (``None``: an entry cached without it; the album's writes drop the entry like any account write)."""
    user: User
    prefs: Preferences
    photos: list[Photo] | None = None


def _encode(account: Account) -> bytes:
    data = model_cache.rows_to_data(account.user, account.prefs)
    if account.photos is not None:
        data["photos"] = [[photo.id, photo.key] for photo in account.photos]
    return jsoncodec.dumps(data)


def _decode(raw: str) -> Account:
    data = jsoncodec.loads(raw)
    user, prefs = model_cache.rows_from_data(data, User, Preferences)
    photos = [Photo(id=pid, key=key) for pid, key in data["photos"]] if "photos" in data else None
    return Account(user=user, prefs=prefs, photos=photos)  # type: ignore[arg-type]


async def _fetch(user_id: int) -> Account:
    user = await User.aio_get_or_none(User.id == user_id)
    if user is None:
        raise NotFoundError("No such user.")
    prefs = await Preferences.aio_get_or_none(Preferences.user == user_id)
    photos = await my_photos(user_id) if user.photo_count else []
    return Account(user=user, prefs=prefs or Preferences(user=user_id), photos=photos)


@dataclass
class Prefetched:
    """The account's cache entry, read in the same Redis round trip as the revocation check."""
    entry: list  # what ``model_cache.queue_read`` fetched
    snapshot: int  # the local cache's epoch before that read (``LocalCache.snapshot``)


def _local_copy(account: Account) -> Account:
    photos = None if account.photos is None else list(account.photos)
    return Account(user=model_cache.clone(account.user), prefs=model_cache.clone(account.prefs), photos=photos)


async def load_account(*, redis: Redis, settings: Settings, user_id: int, prefetched: Prefetched | None = None,
                       local: LocalCaches | None = None) -> Account:
    """The user and preferences rows: from this process's copy, else Redis's cache, else MySQL.

    Callers may change what they get: the local cache only ever hands out and keeps copies.
    """
    key = str(user_id)
    if local is not None:
        hit = local.accounts.get(key)
        if hit is not MISSING:
            return _local_copy(hit)
    snapshot = prefetched.snapshot if prefetched is not None else local.accounts.snapshot() if local else -1
    account = await model_cache.read_through(
        redis=redis, name=LocalCaches.ACCOUNTS, pk=user_id, ttl=settings.profile_cache_ttl,
        load=lambda: _fetch(user_id), encode=_encode, decode=_decode,
        prefetched=prefetched.entry if prefetched is not None else None)
    if local is not None:
        local.accounts.store(key, _local_copy(account), snapshot)
    return account


async def authenticate(*, redis: Redis, settings: Settings, access_token: object,
                       local: LocalCaches | None = None) -> tuple[AccessClaims, Prefetched | None]:
    """Check the token and its family's revocation; most requests then need the account, so when it has to come
    from Redis it is read in the same round trip. With both in this process's copies there is no round trip.

    Returns the claims and what ``load_account(prefetched=...)`` takes.
    """
    claims = tokens.decode_access(settings, access_token)
    known_live = local is not None and local.revocations.get(claims.family) is True
    if known_live and local is not None and local.accounts.get(str(claims.user_id)) is not MISSING:
        return claims, None
    revocation_snapshot = local.revocations.snapshot() if local is not None else -1
    account_snapshot = local.accounts.snapshot() if local is not None else -1
    try:
        async with redis.pipeline(transaction=False) as pipe:
            if not known_live:
                pipe.exists(keys.auth_revoked(claims.family))
            model_cache.queue_read(pipe, name=LocalCaches.ACCOUNTS, pk=claims.user_id)
            results = await pipe.execute()
    except RedisError as exc:
        if not unreachable(exc):
            raise
        # Redis is down: every revocation is in MySQL too (tokens.end_session writes it there first)
        if await tokens.revoked_in_mysql(claims.family):
            raise NotAuthenticatedError("The session has ended.") from None
        return claims, None
    if not known_live:
        if results[0]:
            raise NotAuthenticatedError("The session has ended.")
        if local is not None:
            local.revocations.store(claims.family, True, revocation_snapshot)
    return claims, Prefetched(entry=results[-2:], snapshot=account_snapshot)


def refuse_banned(account: Account) -> None:
    """A banned account is 1013, with the operator's reason when one was given."""
    user = account.user
    if user.banned_at is not None:
        raise AccountBannedError(data={"reason": user.ban_reason} if user.ban_reason else None)


def check_session(account: Account, claims: AccessClaims) -> None:
    """Every authenticated request, refresh and socket: a banned account is 1013 (with the reason), a token of
    an earlier session generation (a ban, even one lifted since, ended it) is no session. The account comes
    from the caches every process drops at once when it changes, so this holds in every process at once."""
    refuse_banned(account)
    if claims.gen != (account.user.session_gen or 0):
        raise NotAuthenticatedError("The session has ended.")


async def forget_account(*, redis: Redis, user_id: int) -> None:
    await model_cache.invalidate(redis=redis, name="User", pk=user_id)


def changing_account(*, redis: Redis, user_id: int) -> AsyncContextManager[None]:
    """Wrap every write of a user's or their preferences' rows (``model_cache.writing``)."""
    return model_cache.writing(redis=redis, name=LocalCaches.ACCOUNTS, pk=user_id)


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
    rows = await User.select().where(User.id.in_(list(set(user_ids)))).aio_execute(reader())
    return {row.id: row for row in rows}


async def route_reads(*, redis: Redis, settings: Settings, user_id: int, writing: bool) -> None:
    """With replicas configured: may this request's lag-tolerant reads go to one (``models.replicas``)? Not when
    the user must see their own writes: a write request marks the user for ``SWIPER_READ_YOUR_WRITES_WINDOW``
    seconds, before it writes, in Redis so every process knows; a read asks. If Redis cannot say: the primary."""
    if not replicas.replicas:
        return
    try:
        if writing:
            await redis.set(keys.recent_write(user_id), "1", px=max(1, int(settings.read_your_writes_window * 1000)))
            own_writes = True
        else:
            own_writes = bool(await redis.exists(keys.recent_write(user_id)))
    except RedisError:
        own_writes = True
    allow_replica_reads(not own_writes)


async def mark_active(*, redis: Redis, user_id: int, local: LocalCaches | None = None) -> None:
    """Keep ``last_active_at`` fresh for the feed's order, writing it at most once per five minutes.

    Best effort: it only orders the feed, so failing it must never fail (or seem to fail) the request. A process
    that asked Redis for this user in the last minute does not ask again (``LocalCaches.recently_active``).
    """
    key = str(user_id)
    if local is not None:
        if local.recently_active.get(key) is not MISSING:
            return
        local.recently_active.store(key, True, local.recently_active.snapshot())
    try:
        if await redis.set(keys.active(user_id), "1", ex=ACTIVE_MARK_SECONDS, nx=True):
            await User.update(last_active_at=utcnow()).where(User.id == user_id).aio_execute()
    except (RedisError, peewee.DatabaseError, OSError) as exc:
        log.info("could not mark user %s active: %s", user_id, exc)
