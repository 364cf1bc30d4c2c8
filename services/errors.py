"""The one error hierarchy: each class carries the HTTP status, code and name of API.md's table.

Services raise these; ``handlers.base.BaseHandler.write_error`` turns any of them into the envelope.
The default messages here are the user-facing strings, kept in one place.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any

import aiomysql
import peewee
import redis.exceptions


class AppError(Exception):
    status = 500
    code = 1099
    error = "internal_error"
    message = "Something went wrong on our side."

    def __init__(self, message: str | None = None, *, data: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.data = data
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"code": self.code, "error": self.error, "message": self.message, "data": self.data}


class VcodeInvalidError(AppError):
    status, code, error = 400, 1000, "vcode_invalid"
    message = "The verification code is wrong or has expired."


class NotAuthenticatedError(AppError):
    status, code, error = 401, 1001, "not_authenticated"
    message = "Missing, invalid, expired or revoked token."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="swiper"')


class InvalidParamsError(AppError):
    status, code, error = 400, 1002, "invalid_params"
    message = "The request is not valid."

    @classmethod
    def for_fields(cls, fields: dict[str, str]) -> "InvalidParamsError":
        names = ", ".join(sorted(fields))
        return cls(f"Invalid fields: {names}.", data={"fields": fields})


class NotificationRejectedError(InvalidParamsError):
    """A payment notification that does not check out (signature, app, merchant, order, amount): nothing is
    applied, and the notify endpoints answer it in the provider's own format (Alipay ``failure``, WeChat 400)."""

    message = "The notification does not check out."


class FileInvalidError(AppError):
    status, code, error = 400, 1003, "file_invalid"
    message = "The upload is missing, too large or not an image."


class PermissionDeniedError(AppError):
    status, code, error = 403, 1004, "permission_denied"
    message = "Your membership does not include this feature."

    def __init__(self, permission: str) -> None:
        super().__init__(f"This needs the VIP permission '{permission}'.", data={"permission": permission})


class NotFoundError(AppError):
    status, code, error = 404, 1005, "not_found"
    message = "Not found."


class RateLimitedError(AppError):
    status, code, error = 429, 1006, "rate_limited"
    message = "Too many requests; try again later."

    def __init__(self, retry_after: int, message: str | None = None, *, data: Any = None) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(message, data={"retry_after": retry_after, **(data or {})},
                         headers={"Retry-After": str(retry_after)})


class QuotaExceededError(AppError):
    status, code, error = 429, 1007, "quota_exceeded"
    message = "Today's quota is used up."

    def __init__(self, quota: str, *, limit: int, resets_at: dt.datetime, message: str | None = None) -> None:
        """Like every 429, it says when to come back: ``Retry-After`` in whole seconds until the quota resets."""
        retry_after = max(1, math.ceil((resets_at - dt.datetime.now(dt.timezone.utc)).total_seconds()))
        super().__init__(message or f"Today's {quota} quota is used up.",
                         data={"quota": quota, "limit": limit, "resets_at": resets_at},
                         headers={"Retry-After": str(retry_after)})


class ConflictError(AppError):
    status, code, error = 409, 1008, "conflict"
    message = "This conflicts with the current state."


class UpstreamError(AppError):
    status, code, error = 502, 1009, "upstream_failed"
    message = "An outside provider failed; try again."


class UnavailableError(AppError):
    status, code, error = 503, 1010, "unavailable"
    message = "The service is temporarily unavailable; try again shortly."


class MethodNotAllowedError(AppError):
    status, code, error = 405, 1011, "method_not_allowed"
    message = "This method is not allowed on this path."


class PayloadTooLargeError(AppError):
    status, code, error = 413, 1012, "payload_too_large"
    message = "The request body is too large."


class AccountBannedError(AppError):
    status, code, error = 403, 1013, "account_banned"
    message = "This account was banned."


class NotMatchedError(AppError):
    status, code, error = 403, 1014, "not_matched"
    message = "You are not matched with this user (any more)."


class InternalError(AppError):
    pass


BY_STATUS: dict[int, type[AppError]] = {
    400: InvalidParamsError, 401: NotAuthenticatedError, 403: PermissionDeniedError, 404: NotFoundError,
    405: MethodNotAllowedError, 409: ConflictError, 413: PayloadTooLargeError, 429: RateLimitedError,
    502: UpstreamError, 503: UnavailableError,
}


# MySQL client/server errors that mean "the database is unreachable or overloaded", not "the query is wrong".
# 1317 query interrupted (KILL QUERY, a shutdown), 1927 connection killed: the statement never ran to its end
_MYSQL_UNAVAILABLE_CODES = {1040, 1053, 1205, 1317, 1927, 2002, 2003, 2005, 2006, 2013, 2014, 2026, 2055}


def as_unavailable(exc: BaseException) -> UnavailableError | None:
    """Map an infrastructure failure (Redis or MySQL down, timed out, pool exhausted) to 503, else None."""
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return UnavailableError(data={"dependency": "redis"})
    if isinstance(exc, (redis.exceptions.BusyLoadingError, redis.exceptions.ReadOnlyError)):
        return UnavailableError(data={"dependency": "redis"})
    # a Redis Cluster failing over or missing a master: CLUSTERDOWN, MASTERDOWN, TRYAGAIN, a slot nobody serves
    if isinstance(exc, (redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError,
                        redis.exceptions.SlotNotCoveredError)):
        return UnavailableError(data={"dependency": "redis"})
    mysql_errors = (peewee.OperationalError, peewee.InterfaceError, aiomysql.OperationalError,
                    aiomysql.InterfaceError)
    if isinstance(exc, mysql_errors):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code is None or code == 0 or code in _MYSQL_UNAVAILABLE_CODES:
            return UnavailableError(data={"dependency": "mysql"})
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return UnavailableError()
    return None
