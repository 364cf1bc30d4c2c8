"""Every Redis key Swiper uses, and where its lifetime comes from, in one place.

``configure`` sets the prefix once at start-up (tests use their own, so they never touch real data).

| key                         | type   | lifetime                                     |
|-----------------------------|--------|----------------------------------------------|
| sms:code:<phone>            | hash   | settings.sms_code_ttl (h = HMAC of the code, tries) |
| sms:cooldown:<phone>        | string | settings.sms_cooldown                        |
| sms:hour:<phone>            | zset   | 1 h sliding window of sends                  |
| sms:day:<phone>             | zset   | 24 h sliding window of sends                 |
| sms:ipday:<ip>              | zset   | 24 h sliding window of sends per client IP   |
| auth:family:<fam>           | string | settings.refresh_token_ttl (current refresh jti) |
| auth:revoked:<fam>          | string | remaining lifetime of the family's tokens    |
| cache:User:<id>             | string | settings.profile_cache_ttl (JSON of the rows) |
| cache:User:<id>:ver         | int    | settings.profile_cache_ttl, bumped by every write |
| quota:<name>:<id>:<yyyymmdd> | int   | 2 days; daily likes / rewinds in SWIPER_TIMEZONE |
| superlikers:<id>            | zset   | none; who superliked <id> and was not swiped back yet (score: time) |
| hot                         | zset   | none; all-time hot score per user            |
| active:<id>                 | string | 5 min; throttles last_active_at writes       |
| feed:<id>                   | string | recommendations.CANDIDATES_TTL; the next feed candidates' ids |
| job:<name>:<period>         | string | 2 periods; the one process that runs a periodic job |
| rl:<scope>:<identity>       | int    | settings.rate_limit_window from the identity's first request |
| rl:cells:<id>               | zset   | 1 h after the last cell entered; keyed hashes of cells entered |
| invalidate                  | channel | pub/sub: `<cache>\t<key>` of a changed revocation or account (services/local_cache.py) |
| events:<id>                 | stream | chat.events.STREAM_TTL after its newest entry, ~STREAM_LENGTH entries; a user's events |
| events                      | channel | pub/sub: `<user id>\t<event id>\t<event json>` of every published event |
| ticket:<ticket>             | string | chat.tickets.TICKET_TTL; the user id and token family a WebSocket ticket stands for |
| typing:<from>:<to>          | string | chat.messages.TYPING_EVERY; a typing event was relayed for this pair |
"""
from __future__ import annotations

_prefix = "swiper:"


def configure(prefix: str) -> None:
    global _prefix
    _prefix = prefix


def prefix() -> str:
    return _prefix


def sms_code(phone: str) -> str:
    return f"{_prefix}sms:code:{phone}"


def sms_cooldown(phone: str) -> str:
    return f"{_prefix}sms:cooldown:{phone}"


def sms_hour(phone: str) -> str:
    return f"{_prefix}sms:hour:{phone}"


def sms_day(phone: str) -> str:
    return f"{_prefix}sms:day:{phone}"


def sms_ip_day(ip: str) -> str:
    return f"{_prefix}sms:ipday:{ip}"


def auth_family(family: str) -> str:
    return f"{_prefix}auth:family:{family}"


def auth_revoked(family: str) -> str:
    return f"{_prefix}auth:revoked:{family}"


def model_cache(model: str, pk: int) -> str:
    return f"{_prefix}cache:{model}:{pk}"


def model_cache_version(model: str, pk: int) -> str:
    return f"{_prefix}cache:{model}:{pk}:ver"


def quota(name: str, user_id: int, day: str) -> str:
    return f"{_prefix}quota:{name}:{user_id}:{day}"


def superlikers(user_id: int) -> str:
    return f"{_prefix}superlikers:{user_id}"


def hot_ranking() -> str:
    return f"{_prefix}hot"


def feed_candidates(user_id: int) -> str:
    return f"{_prefix}feed:{user_id}"


def active(user_id: int) -> str:
    return f"{_prefix}active:{user_id}"


def job_run(name: str, period: int) -> str:
    return f"{_prefix}job:{name}:{period}"


def rate_limit(scope: str, identity: str) -> str:
    return f"{_prefix}rl:{scope}:{identity}"


def location_cells(user_id: int) -> str:
    return f"{_prefix}rl:cells:{user_id}"


def invalidation_channel() -> str:
    return f"{_prefix}invalidate"


def event_stream(user_id: int) -> str:
    return f"{_prefix}events:{user_id}"


def events_channel() -> str:
    return f"{_prefix}events"


def event_ticket(ticket: str) -> str:
    return f"{_prefix}ticket:{ticket}"


def typing(sender_id: int, receiver_id: int) -> str:
    return f"{_prefix}typing:{sender_id}:{receiver_id}"
