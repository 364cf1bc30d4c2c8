"""SMS login codes: send limits, hashed storage, single use, and burning after too many wrong tries.

Every check-and-change is one Lua script, so concurrent requests cannot both pass a limit: twenty
simultaneous sends for one phone reserve the cooldown once and send one SMS. A send is reserved before the
provider is called and the reservation is released if the provider fails, so a failed send counts toward no
limit. Codes are stored only as an HMAC keyed with the JWT secret.
"""
from __future__ import annotations

import hashlib
import logging
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from conf import Settings
from services import keys
from services.errors import RateLimitedError, VcodeInvalidError

from services.phones import mask_phone
from services.ratelimit import Verdict
from services.sms import SmsSender

log = logging.getLogger("swiper.sms")

# A send is reserved in two single-slot steps, because a phone's keys and a client IP's keys live in different
# cluster slots: first the IP's day window (checked and, when under its limit, reserved), then the phone's
# cooldown and windows (reserved only when everything passed, the IP's verdict passed in); an IP reservation the
# phone then refuses is taken back. Each script answers its limits' state (ms left, or sends in the window and ms
# until its oldest send leaves it), for the headers. A window is a zset of send ids, so repeating a release is
# harmless.
_WINDOW_STATE = """
local function window_state(key, span, now)
  local sends = redis.call('ZCARD', key)
  local frees = 0
  if sends > 0 then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    frees = math.floor(tonumber(oldest[2]) + span - now)
  end
  return sends, frees
end
"""
_RESERVE_IP = _WINDOW_STATE + """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 86400000)
local refused = 0
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then refused = 1 else
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 86400000)
end
local sends, frees = window_state(KEYS[1], 86400000, now)
return {refused, sends, frees}
"""
_RESERVE_PHONE = _WINDOW_STATE + """
local now = tonumber(ARGV[1])
local member = ARGV[2]
local windows = {{KEYS[2], 3600000, tonumber(ARGV[4])}, {KEYS[3], 86400000, tonumber(ARGV[5])}}
local names = {'hour', 'day'}
for _, w in ipairs(windows) do redis.call('ZREMRANGEBYSCORE', w[1], '-inf', now - w[2]) end
local refused = {}
if redis.call('PTTL', KEYS[1]) > 0 then table.insert(refused, 'cooldown') end
for i, w in ipairs(windows) do
  if redis.call('ZCARD', w[1]) >= w[3] then table.insert(refused, names[i]) end
end
if ARGV[6] == '1' then table.insert(refused, 'ip_day') end
if #refused == 0 then
  redis.call('SET', KEYS[1], member, 'PX', tonumber(ARGV[3]))
  for _, w in ipairs(windows) do
    redis.call('ZADD', w[1], now, member)
    redis.call('PEXPIRE', w[1], w[2])
  end
end
local state = {table.concat(refused, ','), math.max(0, redis.call('PTTL', KEYS[1]))}
for _, w in ipairs(windows) do
  local sends, frees = window_state(w[1], w[2], now)
  table.insert(state, sends)
  table.insert(state, frees)
end
return state
"""
_RELEASE_PHONE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""
_STORE_CODE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'tries', 0)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
_VERIFY = """
local stored = redis.call('HGET', KEYS[1], 'h')
if not stored then return {'missing', 0} end
if stored == ARGV[1] then
  local ttl = redis.call('PTTL', KEYS[1])
  local tries = redis.call('HGET', KEYS[1], 'tries')
  redis.call('DEL', KEYS[1])
  return {'ok', ttl, tries}
end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if tries >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]); return {'burned', 0} end
return {'wrong', 0}
"""

_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'tries', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_LIMIT_MESSAGES = {
    "cooldown": "Wait before asking for another code.",
    "hour": "Too many codes for this phone this hour.",
    "day": "Too many codes for this phone today.",
    "ip_day": "Too many codes from this network today.",
}


@dataclass(frozen=True)
class CodeSent:
    resend_after: int
    expires_in: int
    limits: Verdict  # the SMS limit closest to refusing the next send, for the RateLimit headers


def _limits(settings: Settings, state: list) -> dict[str, Verdict]:
    """Each SMS limit as a verdict, from the reservation script's answer."""
    refused = set(filter(None, str(state[0]).split(",")))
    cooldown_ms = int(state[1])
    verdicts = {"cooldown": Verdict(limit=1, remaining=0 if cooldown_ms > 0 else 1,
                                    reset=-(-cooldown_ms // 1000), allowed="cooldown" not in refused)}
    for index, (name, limit) in enumerate((("hour", settings.sms_hour_limit), ("day", settings.sms_day_limit),
                                           ("ip_day", settings.sms_ip_day_limit))):
        sends, frees_ms = int(state[2 + 2 * index]), int(state[3 + 2 * index])
        verdicts[name] = Verdict(limit=limit, remaining=max(0, limit - sends), reset=-(-frees_ms // 1000),
                                 allowed=name not in refused)
    return verdicts


@dataclass(frozen=True)
class VerifiedCode:
    """A consumed code, kept so it can be put back if the login fails for an unrelated reason."""
    phone: str
    digest: str
    tries: int
    ttl_ms: int


def _digest(settings: Settings, phone: str, code: str) -> str:
    return hmac.new(settings.jwt_secret.encode(), f"vcode:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


async def send_login_code(*, redis: Redis, sms: SmsSender, settings: Settings, phone: str,
                          client_ip: str) -> CodeSent:
    """Reserve a send under every limit, send the code, then store its hash (replacing any older code)."""
    member = secrets.token_hex(8)
    now_ms = int(time.time() * 1000)
    phone_keys = [keys.sms_cooldown(phone), keys.sms_hour(phone), keys.sms_day(phone)]
    ip_key = keys.sms_ip_day(client_ip)
    ip_refused, ip_sends, ip_frees = await redis.eval(_RESERVE_IP, 1, ip_key, now_ms, member,
                                                      settings.sms_ip_day_limit)
    try:
        state = await redis.eval(
            _RESERVE_PHONE, len(phone_keys), *phone_keys, now_ms, member, settings.sms_cooldown * 1000,
            settings.sms_hour_limit, settings.sms_day_limit, int(ip_refused))
    except BaseException:
        if not ip_refused:
            await redis.zrem(ip_key, member)
        raise
    if state[0] and not ip_refused:  # the phone refused: the IP's reservation goes back
        await redis.zrem(ip_key, member)
        ip_sends -= 1
    limits = _limits(settings, [*state, ip_sends, ip_frees])
    refusing = [(name, verdict) for name, verdict in limits.items() if not verdict.allowed]
    if refusing:  # the limit that keeps refusing longest is the one to report: retrying sooner cannot help
        name, verdict = max(refusing, key=lambda item: item[1].reset)
        error = RateLimitedError(verdict.reset, _LIMIT_MESSAGES[name], data={"limit": name})
        error.headers.update(verdict.headers())
        raise error
    code = f"{secrets.randbelow(10**6):06d}"
    try:
        await sms.send_code(phone, code)
    except BaseException:
        await redis.eval(_RELEASE_PHONE, len(phone_keys), *phone_keys, member)
        await redis.zrem(ip_key, member)
        raise
    await redis.eval(_STORE_CODE, 1, keys.sms_code(phone), _digest(settings, phone, code), settings.sms_code_ttl)
    return CodeSent(resend_after=settings.sms_cooldown, expires_in=settings.sms_code_ttl,
                    limits=Verdict.tightest(*limits.values()))


async def verify_login_code(*, redis: Redis, settings: Settings, phone: str, code: str) -> VerifiedCode:
    """Consume the code if it is right; a wrong one counts a try and the last allowed try burns it."""
    digest = _digest(settings, phone, code)
    result = await redis.eval(_VERIFY, 1, keys.sms_code(phone), digest, settings.sms_max_attempts)
    if result[0] != "ok":
        raise VcodeInvalidError()
    return VerifiedCode(phone=phone, digest=digest, tries=int(result[2] or 0), ttl_ms=int(result[1]))


async def restore_login_code(*, redis: Redis, verified: VerifiedCode) -> None:
    """Put a consumed code back (unless a newer one exists) when the login failed after consuming it.

    Best effort: if Redis itself is what failed, the original error is the one worth reporting.
    """
    if verified.ttl_ms <= 0:
        return
    try:
        await redis.eval(_RESTORE, 1, keys.sms_code(verified.phone), verified.digest, verified.tries,
                         verified.ttl_ms)
    except RedisError:
        log.warning("could not restore the login code for %s", mask_phone(verified.phone))
