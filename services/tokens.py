"""JWT sessions. Each login starts a token *family* (one device's session) identified by ``fam``.

Redis holds, per family, the jti of the one refresh token that may be used next. Rotating checks and moves it
in one script; presenting any older refresh token is reuse, which revokes the family (its access tokens too).
Revocation is a key ``auth:revoked:<fam>`` living as long as the family's tokens could, so every process sees a
logout at once (``accounts.authenticate`` checks it, in the same round trip as the account's cache read).
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass

import jwt
import peewee
from peewee import fn
from redis.asyncio import Redis

from conf import Settings
from models import SessionRevocation, db
from models.base import utcnow
from services import keys
from services.local_cache import LocalCaches
from services.errors import NotAuthenticatedError

log = logging.getLogger("swiper.tokens")
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "typ", "fam"]

_ROTATE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'revoked' end
local current = redis.call('GET', KEYS[1])
if not current then return 'unknown' end
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
  return 'ok'
end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', math.max(ttl, tonumber(ARGV[4])))
redis.call('DEL', KEYS[1])
return 'reuse'
"""

_REVOKE = """
local ttl = redis.call('PTTL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', math.max(ttl, tonumber(ARGV[1])))
redis.call('DEL', KEYS[1])
return 1
"""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    family: str
    jti: str
    expires_at: int
    gen: int = 0  # the account's session generation it was issued in (``accounts.check_session``)


def _encode(settings: Settings, *, user_id: int, family: str, jti: str, kind: str, ttl: int, now: int,
            gen: int) -> str:
    claims = {"sub": str(user_id), "iat": now, "exp": now + ttl, "jti": jti, "typ": kind, "fam": family, "gen": gen}
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def generation(claims: dict) -> int:
    """A token's session generation; tokens from before generations existed are of generation 0."""
    gen = claims.get("gen", 0)
    if not isinstance(gen, int) or isinstance(gen, bool):
        raise NotAuthenticatedError()
    return gen


def _decode(settings: Settings, token: object, kind: str) -> dict:
    if not isinstance(token, str) or not token:
        raise NotAuthenticatedError()
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM],
                            options={"require": REQUIRED_CLAIMS})
    except jwt.ExpiredSignatureError:
        raise NotAuthenticatedError("The token has expired.") from None
    except jwt.PyJWTError:
        raise NotAuthenticatedError() from None
    if claims.get("typ") != kind or not str(claims["sub"]).isdigit() or not isinstance(claims["fam"], str):
        raise NotAuthenticatedError(f"An {kind} token is required.")
    return claims


def _pair(settings: Settings, user_id: int, family: str, refresh_jti: str, gen: int) -> TokenPair:
    now = int(time.time())
    access = _encode(settings, user_id=user_id, family=family, jti=secrets.token_hex(12), kind="access",
                     ttl=settings.access_token_ttl, now=now, gen=gen)
    refresh = _encode(settings, user_id=user_id, family=family, jti=refresh_jti, kind="refresh",
                      ttl=settings.refresh_token_ttl, now=now, gen=gen)
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=settings.access_token_ttl)


async def start_session(*, redis: Redis, settings: Settings, user_id: int, gen: int = 0) -> TokenPair:
    """Open a new family for a fresh login, in the account's current session generation."""
    family, refresh_jti = secrets.token_hex(12), secrets.token_hex(12)
    await redis.set(keys.auth_family(family), refresh_jti, ex=settings.refresh_token_ttl)
    return _pair(settings, user_id, family, refresh_jti, gen)


def decode_refresh(settings: Settings, refresh_token: object) -> AccessClaims:
    """A refresh token's claims (signature, expiry, type: no I/O), for checking its account before rotating."""
    raw = _decode(settings, refresh_token, "refresh")
    return AccessClaims(user_id=int(raw["sub"]), family=raw["fam"], jti=raw["jti"], expires_at=int(raw["exp"]),
                        gen=generation(raw))


async def rotate_session(*, redis: Redis, settings: Settings, refresh_token: object) -> tuple[int, TokenPair]:
    """Trade a refresh token for a new pair; a reused one revokes its whole family."""
    claims = _decode(settings, refresh_token, "refresh")
    family, new_jti = claims["fam"], secrets.token_hex(12)
    verdict = await redis.eval(_ROTATE, 2, keys.auth_family(family), keys.auth_revoked(family), claims["jti"],
                               new_jti, settings.refresh_token_ttl * 1000, settings.access_token_ttl * 1000)
    if verdict == "reuse":
        await _announce_revocation(redis, family)
        try:  # Redis holds the revocation already; this copy is for authenticating while Redis is down
            await _record_revocation(family, int(claims["sub"]), settings.access_token_ttl)
        except (peewee.DatabaseError, OSError) as exc:
            log.warning("reused refresh token of family %s: revocation not copied to MySQL: %s", family, exc)
        raise NotAuthenticatedError("This refresh token was already used; the session has been ended.")
    if verdict != "ok":
        raise NotAuthenticatedError("The session has ended.")
    user_id = int(claims["sub"])
    return user_id, _pair(settings, user_id, family, new_jti, generation(claims))


_VERIFIED_MAX = 10_000
_verified: dict[str, tuple[str, AccessClaims]] = {}  # token -> (secret it was verified with, its claims)


def decode_access(settings: Settings, access_token: object) -> AccessClaims:
    """Check the signature, claims and type (no I/O); the caller still has to check revocation.

    A token verified once is remembered by its exact text (same text, same signature), so a client's next
    requests skip PyJWT's ~70 µs; its expiry is still checked on every use, as PyJWT would.
    """
    if isinstance(access_token, str):
        known = _verified.get(access_token)
        if known is not None and known[0] == settings.jwt_secret:
            if known[1].expires_at <= time.time():
                raise NotAuthenticatedError("The token has expired.")
            return known[1]
    raw = _decode(settings, access_token, "access")
    claims = AccessClaims(user_id=int(raw["sub"]), family=raw["fam"], jti=raw["jti"], expires_at=int(raw["exp"]),
                          gen=generation(raw))
    if len(_verified) >= _VERIFIED_MAX:
        del _verified[next(iter(_verified))]  # the oldest
    _verified[access_token] = (settings.jwt_secret, claims)  # type: ignore[index]
    return claims



async def end_session(*, redis: Redis, settings: Settings, claims: AccessClaims) -> None:
    """Revoke this device's family for as long as any of its tokens could still be presented.

    MySQL first, then Redis: whichever fails, the answer is an error and the client logs out again; a revocation
    Redis knows is always in MySQL too, so authentication without Redis never takes back a logout.
    """
    access_left = max(1, claims.expires_at - int(time.time()) + 1)
    await _record_revocation(claims.family, claims.user_id, access_left)
    await redis.eval(_REVOKE, 2, keys.auth_family(claims.family), keys.auth_revoked(claims.family),
                     access_left * 1000)
    await _announce_revocation(redis, claims.family)


async def _record_revocation(family: str, user_id: int, seconds: int) -> None:
    expires_at = utcnow() + dt.timedelta(seconds=seconds)
    await (SessionRevocation.insert(family=family, user_id=user_id, expires_at=expires_at)
           .on_conflict(update={SessionRevocation.expires_at: fn.GREATEST(SessionRevocation.expires_at,
                                                                          expires_at)}).aio_execute())


async def revoked_in_mysql(family: str) -> bool:
    """The revocation check when Redis cannot answer (only access tokens are accepted then: refreshing needs Redis)."""
    return await (SessionRevocation.select(SessionRevocation.family)
                  .where((SessionRevocation.family == family) & (SessionRevocation.expires_at > utcnow()))
                  .aio_exists())


async def restore_revocations(redis: Redis, batch: int = 1000) -> int:
    """Write every revocation still in force from MySQL to Redis (``manage.py migrate`` runs it on each deploy).

    Redis is where authentication looks first; MySQL holds every revocation too. A Redis that lost its data, or a
    release that renamed the keys (the Redis Cluster hash tags did), would otherwise accept a signed-out device's
    access token again until it expires. Idempotent; one single-key SET per family (any slot)."""
    restored, now = 0, utcnow()
    rows = list(await SessionRevocation.select().where(SessionRevocation.expires_at > now).aio_execute())
    for start in range(0, len(rows), batch):
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows[start:start + batch]:
                left_ms = int((row.expires_at - now).total_seconds() * 1000)
                if left_ms > 0:
                    pipe.set(keys.auth_revoked(row.family), "1", px=left_ms)
                    restored += 1
            await pipe.execute()
    return restored


async def forget_expired_revocations(batch: int = 1000) -> int:
    """The periodic clean-up: rows whose tokens can no longer be presented."""
    return await db.aio_execute_sql("DELETE FROM session_revocation WHERE expires_at < %s LIMIT %s",
                                    (utcnow(), batch), fetch_results=_rowcount)


async def _rowcount(_db: object, cursor: object) -> int:
    return cursor.rowcount  # type: ignore[attr-defined]


async def _announce_revocation(redis: Redis, family: str) -> None:
    """Make every process drop its local "not revoked" (``local_cache``). A plain PUBLISH after the script, not
    one inside it: on a Redis Cluster a script's PUBLISH reaches the other nodes' subscribers later, over the
    cluster bus, while a plain one goes to the channel's node, where every process subscribes, before it returns."""
    await redis.publish(keys.invalidation_channel(), f"{LocalCaches.REVOCATIONS}\t{family}")
