"""Single-use tickets for opening the event socket without an ``Authorization`` header (browsers, some SDKs).

A ticket stands for the session that asked for it (user, token family and session generation) for
``TICKET_TTL`` seconds, once: redeeming deletes it in the same step (GETDEL), and the session must still be live
when it is redeemed (the socket checks the account's generation and ban like every request).
"""
from __future__ import annotations

import re
import secrets

from redis.asyncio import Redis

from services import keys
from services.errors import NotAuthenticatedError
from services.tokens import AccessClaims

TICKET_TTL = 30
_TICKET = re.compile(r"[A-Za-z0-9_-]{32}")


async def issue_ticket(*, redis: Redis, claims: AccessClaims) -> str:
    ticket = secrets.token_urlsafe(24)
    await redis.set(keys.event_ticket(ticket), f"{claims.user_id}:{claims.family}:{claims.expires_at}:{claims.gen}",
                    ex=TICKET_TTL)
    return ticket


async def redeem_ticket(*, redis: Redis, ticket: str) -> AccessClaims:
    """The session a ticket stands for; a used, expired, unknown or revoked one is 1001."""
    if not _TICKET.fullmatch(ticket):
        raise NotAuthenticatedError("Not a ticket this server issued.")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.getdel(keys.event_ticket(ticket))
        value, = await pipe.execute()
    if value is None:
        raise NotAuthenticatedError("The ticket is unknown, used or expired.")
    user_id, family, expires_at, *gen = value.split(":")
    if await redis.exists(keys.auth_revoked(family)):
        raise NotAuthenticatedError("The session has ended.")
    return AccessClaims(user_id=int(user_id), family=family, jti="ticket", expires_at=int(expires_at),
                        gen=int(gen[0]) if gen else 0)
