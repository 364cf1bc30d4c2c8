"""Every Redis key Swiper uses, and where its lifetime comes from, in one place.

``configure`` sets the prefix once at start-up (tests use their own, so they never touch real data).

Redis Cluster (``SWIPER_REDIS_CLUSTER``): every key carries a hash tag ``{…}`` naming its owner — ``{u:<id>}`` for
what belongs to one user, ``{p:<phone>}``, ``{ip:<ip>}``, ``{f:<family>}`` (a session), ``{t:<ticket>}`` — so all
of one owner's keys hash to one slot, and a script or multi-key command only ever names keys of one owner. Keys
of two users are never written in one step: such a write is one single-slot step per owner, each safe to repeat
(``services/swipes.py``). ``hot`` and ``job:…`` are single keys, only touched one at a time. A new key gets its
owner's tag through the helpers below; the tests' slot guard (``services/redis_client.py``) fails any call whose
keys hash to more than one slot, also on a standalone Redis.

| key                         | type   | lifetime                                     |
|-----------------------------|--------|----------------------------------------------|
| sms:code:{p:<phone>}        | hash   | settings.sms_code_ttl (h = HMAC of the code, tries) |
| sms:cooldown:{p:<phone>}    | string | settings.sms_cooldown                        |
| sms:hour:{p:<phone>}        | zset   | 1 h sliding window of sends                  |
| sms:day:{p:<phone>}         | zset   | 24 h sliding window of sends                 |
| sms:ipday:{ip:<ip>}         | zset   | 24 h sliding window of sends per client IP   |
| auth:family:{f:<fam>}       | string | settings.refresh_token_ttl (current refresh jti) |
| auth:revoked:{f:<fam>}      | string | remaining lifetime of the family's tokens    |
| cache:User:{u:<id>}         | string | settings.profile_cache_ttl (JSON of the rows) |
| cache:User:{u:<id>}:ver     | int    | settings.profile_cache_ttl, bumped by every write |
| quota:<name>:{u:<id>}:<yyyymmdd> | int   | 2 days; daily likes / rewinds in SWIPER_TIMEZONE |
| superlikers:{u:<id>}        | zset   | none; who superliked <id> and was not swiped back yet (score: time) |
| hot                         | zset   | none; all-time hot score per user            |
| active:{u:<id>}             | string | 5 min; throttles last_active_at writes       |
| feed:{u:<id>}               | string | recommendations.CANDIDATES_TTL; the next feed candidates' ids |
| job:<name>:<period>         | string | 2 periods; the one process that runs a periodic job |
| rl:<scope>:{<identity>}     | int    | settings.rate_limit_window from the identity's first request |
| rl:cells:{u:<id>}           | zset   | 1 h after the last cell entered; keyed hashes of cells entered |
| invalidate                  | channel | pub/sub: `<cache>\t<key>` of a changed revocation or account (services/local_cache.py) |
| events:{u:<id>}             | stream | chat.events.STREAM_TTL after its newest entry, ~STREAM_LENGTH entries; a user's events |
| events                      | channel | pub/sub: `<user id>\t<event id>\t<event json>` of every published event |
| ticket:{t:<ticket>}         | string | chat.tickets.TICKET_TTL; the user id and token family a WebSocket ticket stands for |
| rw:{u:<id>}                 | string | settings.read_your_writes_window; the user wrote: their reads stay on the primary |
| typing:{u:<from>}:<to>      | string | chat.messages.TYPING_EVERY; a typing event was relayed for this pair |
"""
from __future__ import annotations

_prefix = "swiper:"


def configure(prefix: str) -> None:
    global _prefix
    if "{" in prefix or "}" in prefix:  # it would become the hash tag of every key: one slot for everything
        raise ValueError("a Redis key prefix may not contain { or }")
    _prefix = prefix


def user_tag(user_id: int) -> str:
    """The hash tag of everything that belongs to one user (the convention every new per-user key follows)."""
    return f"{{u:{user_id}}}"


def _phone(phone: str) -> str:
    return f"{{p:{phone}}}"


def prefix() -> str:
    return _prefix


def sms_code(phone: str) -> str:
    return f"{_prefix}sms:code:{_phone(phone)}"


def sms_cooldown(phone: str) -> str:
    return f"{_prefix}sms:cooldown:{_phone(phone)}"


def sms_hour(phone: str) -> str:
    return f"{_prefix}sms:hour:{_phone(phone)}"


def sms_day(phone: str) -> str:
    return f"{_prefix}sms:day:{_phone(phone)}"


def sms_ip_day(ip: str) -> str:
    return f"{_prefix}sms:ipday:{{ip:{ip}}}"


def auth_family(family: str) -> str:
    return f"{_prefix}auth:family:{{f:{family}}}"


def auth_revoked(family: str) -> str:
    return f"{_prefix}auth:revoked:{{f:{family}}}"


def _owner(model: str, pk: int) -> str:
    return user_tag(pk) if model == "User" else f"{{{model}:{pk}}}"


def model_cache(model: str, pk: int) -> str:
    return f"{_prefix}cache:{model}:{_owner(model, pk)}"


def model_cache_version(model: str, pk: int) -> str:
    return f"{_prefix}cache:{model}:{_owner(model, pk)}:ver"


def quota(name: str, user_id: int, day: str) -> str:
    return f"{_prefix}quota:{name}:{user_tag(user_id)}:{day}"


def superlikers(user_id: int) -> str:
    return f"{_prefix}superlikers:{user_tag(user_id)}"


def hot_ranking() -> str:
    return f"{_prefix}hot"


def feed_candidates(user_id: int) -> str:
    return f"{_prefix}feed:{user_tag(user_id)}"


def active(user_id: int) -> str:
    return f"{_prefix}active:{user_tag(user_id)}"


def job_run(name: str, period: int) -> str:
    return f"{_prefix}job:{name}:{period}"


def rate_limit(scope: str, identity: str) -> str:
    return f"{_prefix}rl:{scope}:{{{identity}}}"


def location_cells(user_id: int) -> str:
    return f"{_prefix}rl:cells:{user_tag(user_id)}"


def invalidation_channel() -> str:
    return f"{_prefix}invalidate"


def event_stream(user_id: int) -> str:
    return f"{_prefix}events:{user_tag(user_id)}"


def events_channel() -> str:
    return f"{_prefix}events"


def event_ticket(ticket: str) -> str:
    return f"{_prefix}ticket:{{t:{ticket}}}"


def typing(sender_id: int, receiver_id: int) -> str:
    return f"{_prefix}typing:{user_tag(sender_id)}:{receiver_id}"


def recent_write(user_id: int) -> str:
    return f"{_prefix}rw:{user_tag(user_id)}"
