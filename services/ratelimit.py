"""Request-rate limits: per client IP for anonymous requests, per user (more for VIPs) once authenticated, and a
tight per-IP scope for code verification; and windows of distinct members (``admit_distinct``: the location
cell budget), which fail closed.

Each identity gets a window that opens at its first request and lasts ``SWIPER_RATE_LIMIT_WINDOW`` seconds; one
Lua script counts and reads the window's time left, so concurrent requests can never let more than the limit
through. If Redis is down, general limits fail open to a per-process window (a degraded, per-process budget),
while scopes guarding secrets (code verification) fail closed with 503.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services import keys
from services.redis_client import pool_exhausted
from services.errors import RateLimitedError, UnavailableError

_HIT = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {used, ttl}
"""


# Distinct members per sliding window (the location cell budget): a member seen within the window is free and
# moves to the window's end; a new one is refused once the window holds ``limit``. Redis's clock, so every
# process agrees.
_DISTINCT = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local known = redis.call('ZSCORE', KEYS[1], ARGV[3])
local used = redis.call('ZCARD', KEYS[1])
if not known and used >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, used, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {1, redis.call('ZCARD', KEYS[1]), tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True)
class Verdict:
    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    allowed: bool

    @staticmethod
    def tightest(*verdicts: "Verdict") -> "Verdict":
        """The one closest to refusing: fewest requests left, then the longest wait for more."""
        return min(verdicts, key=lambda v: (v.remaining, -v.reset))

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset)}


class LocalWindows:
    """The per-process fallback used while Redis is unreachable."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, window: float) -> tuple[int, float]:
        now = time.monotonic()
        if len(self._windows) > 10_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        ends, used = self._windows.get(key, (0.0, 0))
        if ends <= now:
            ends, used = now + window, 0
        self._windows[key] = (ends, used + 1)
        return used + 1, ends - now


async def check(*, redis: Redis, fallback: LocalWindows, scope: str, identity: str, limit: int, window: int,
                fail_closed: bool = False) -> Verdict:
    """Count this request against ``scope``/``identity``; raises 429 over the limit (and 503 when failing closed)."""
    key = keys.rate_limit(scope, identity)
    try:
        used, ttl_ms = await redis.eval(_HIT, 1, key, window * 1000)
        seconds_left = int(ttl_ms) / 1000
    except (RedisConnectionError, RedisTimeoutError) as exc:
        if fail_closed or pool_exhausted(exc):
            # an exhausted pool means this process is overloaded, not that Redis is gone: shed, do not admit
            raise UnavailableError(data={"dependency": "redis"}) from None
        used, seconds_left = fallback.hit(key, window)
    reset = max(1, int(-(-seconds_left // 1)))
    verdict = Verdict(limit=limit, remaining=max(0, limit - int(used)), reset=reset, allowed=int(used) <= limit)
    if not verdict.allowed:
        error = RateLimitedError(reset, "Too many requests; slow down.", data={"scope": scope})
        error.headers.update(verdict.headers())
        raise error
    return verdict


async def admit_distinct(*, redis: Redis, key: str, member: str, limit: int, window: int, scope: str) -> Verdict:
    """Let ``member`` into a sliding window of at most ``limit`` distinct members (seen ones are free); raises 429
    with ``Retry-After`` (until the oldest member leaves) over the limit. Fails closed: without Redis, 503."""
    allowed, used, wait_ms = await redis.eval(_DISTINCT, 1, key, window * 1000, limit, member)
    reset = max(1, -(-int(wait_ms) // 1000))
    verdict = Verdict(limit=limit, remaining=max(0, limit - int(used)), reset=reset, allowed=bool(int(allowed)))
    if not verdict.allowed:
        error = RateLimitedError(reset, "Too many new places this hour; try again later.", data={"scope": scope})
        error.headers.update(verdict.headers())
        raise error
    return verdict
