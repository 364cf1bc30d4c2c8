"""The base of every handler: request id, client IP, auth in ``prepare``, JSON in, envelope out, one error path."""
from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from tornado import httputil, web
from tornado.iostream import StreamClosedError

from conf import Settings
from handlers.contract import QueryModel, RequestModel, parse_json, parse_query
from services import accounts, jsoncodec, ratelimit, tokens, vip
from services.accounts import Account
from services.chat.events import EventPublisher
from services.chat.sockets import SocketHub
from services.local_cache import LocalCaches
from services.errors import (AppError, InternalError, InvalidParamsError, MethodNotAllowedError,
                             NotAuthenticatedError, NotFoundError, PayloadTooLargeError, as_unavailable)
from services.sms import SmsSender

error_log = logging.getLogger("swiper.error")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
BODY_WAIT = 10.0  # seconds a refused request's body may take to arrive before its connection is closed instead
_STATUS_ERRORS: dict[int, type[AppError]] = {404: NotFoundError, 405: MethodNotAllowedError,
                                             413: PayloadTooLargeError, 400: InvalidParamsError}


class InFlight:
    """Counts requests being handled, so a draining process knows when it may exit."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False


@web.stream_request_body
class BaseHandler(web.RequestHandler):
    """Bodies are streamed so an oversized one is refused without holding it in memory."""

    auth_required = True
    rate_limited = True  # the general per-IP / per-user request limits
    rate_limit_scope: str | None = None  # an extra, tighter per-IP scope (e.g. "verify")
    max_body_size: int | None = None  # None: settings.max_json_body

    def initialize(self) -> None:
        incoming = self.request.headers.get("X-Request-ID", "")
        self.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
        self.set_header("X-Request-ID", self.request_id)
        self.user_id: int | None = None
        self.claims: tokens.AccessClaims | None = None
        self._account: Account | None = None
        self._prefetched: accounts.Prefetched | None = None  # the account's cache entry, read with the revocation
        self._rate_headers: dict[str, str] = {}
        self._rate_verdict: ratelimit.Verdict | None = None
        self._body_chunks: list[bytes] = []
        self._body_size = 0
        self._body_too_large = False
        self._counted = True
        self._discard_body = False  # a refused request's body is read and dropped
        self._close_after_answer = False
        self.in_flight.count += 1
        if self.in_flight.draining:
            self.set_header("Connection", "close")  # so keep-alive clients move to another process

    # -- shared clients, typed -------------------------------------------------------------------------------
    @property
    def settings_obj(self) -> Settings:
        return self.application.settings["swiper_settings"]

    @property
    def redis(self) -> Redis:
        return self.application.settings["redis"]

    @property
    def sms(self) -> SmsSender:
        return self.application.settings["sms"]

    @property
    def events(self) -> EventPublisher:
        return self.application.settings["events"]

    @property
    def hub(self) -> SocketHub:
        return self.application.settings["hub"]

    @property
    def rate_fallback(self) -> ratelimit.LocalWindows:
        return self.application.settings["rate_fallback"]

    @property
    def local_caches(self) -> LocalCaches:
        return self.application.settings["local_caches"]

    @property
    def in_flight(self) -> InFlight:
        return self.application.settings["in_flight"]

    @property
    def client_ip(self) -> str:
        return self.request.headers.get("X-Real-IP", "").strip() or self.request.remote_ip or "unknown"

    # -- request lifecycle -------------------------------------------------------------------------------------
    @classmethod
    @functools.cache
    def implemented_methods(cls) -> tuple[str, ...]:
        return tuple(m for m in cls.SUPPORTED_METHODS
                     if getattr(cls, m.lower()) is not getattr(web.RequestHandler, m.lower()))

    async def prepare(self) -> None:
        """Admit the request or refuse it; a refusal still reads the body, so the connection stays usable."""
        try:
            await self.admit()
        except Exception as exc:
            if not isinstance(exc, PayloadTooLargeError):
                await self._consume_body()
            raise

    async def _consume_body(self) -> None:
        """Let Tornado read (and drop) the rest of the request before the error answer is written.

        Tornado reads a streamed body only after ``prepare`` resolves its ``_prepared_future``; an answer finished
        before the body was read makes it close the keep-alive connection after the answer, without a
        ``Connection: close`` header, and a client reusing that connection gets a reset (issue 10, item 7). So on
        a refusal the future is resolved here, the body is read into nothing, and only then does the error go
        out. A body that does not arrive within ``BODY_WAIT`` seconds is not waited for: that answer says
        ``Connection: close``.
        """
        self._discard_body = True
        prepared = self._prepared_future
        if prepared is not None and not prepared.done():
            prepared.set_result(None)
        body = getattr(self.request, "_body_future", None)
        if body is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(body), BODY_WAIT)
        except (TimeoutError, StreamClosedError):
            self._close_after_answer = True

    async def admit(self) -> None:
        """The checks every request passes before its method runs: method, size, token, rate limits."""
        if self.request.method not in self.implemented_methods():
            raise MethodNotAllowedError()
        limit = self.max_body_size or self.settings_obj.max_json_body
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLargeError(f"The request body is over {limit} bytes.")
        if self.auth_required:
            await self.authenticate()
        if self.rate_limited and self.settings_obj.rate_limit_enabled:
            await self.apply_rate_limits()

    async def apply_rate_limits(self) -> None:
        """Per user (more for VIPs) when signed in, else per client IP; plus this route's tighter scope."""
        settings = self.settings_obj
        common = {"redis": self.redis, "fallback": self.rate_fallback, "window": settings.rate_limit_window}
        if self.user_id is not None:
            account = await self.current_account()
            is_vip = vip.effective_level(account.user) > 0
            verdict = await ratelimit.check(**common, scope="user", identity=str(self.user_id),
                                            limit=settings.rate_limit_vip if is_vip else settings.rate_limit_user)
        else:
            verdict = await ratelimit.check(**common, scope="ip", identity=self.client_ip,
                                            limit=settings.rate_limit_anonymous)
        if self.rate_limit_scope is not None:
            scoped = await ratelimit.check(**common, scope=self.rate_limit_scope, identity=self.client_ip,
                                           limit=getattr(settings, f"rate_limit_{self.rate_limit_scope}"),
                                           fail_closed=True)
            verdict = ratelimit.Verdict.tightest(verdict, scoped)
        self.limit_headers(verdict)

    def limit_headers(self, verdict: ratelimit.Verdict) -> None:
        """Announce a limit in the RateLimit headers; of several limits on one request, the tightest is shown."""
        if self._rate_verdict is not None:
            verdict = ratelimit.Verdict.tightest(self._rate_verdict, verdict)
        self._rate_verdict = verdict
        self._rate_headers = verdict.headers()
        for name, value in self._rate_headers.items():
            self.set_header(name, value)

    def data_received(self, chunk: bytes) -> None:
        if self._discard_body:
            return
        self._body_size += len(chunk)
        if self._body_size > (self.max_body_size or self.settings_obj.max_json_body):
            self._body_too_large = True
            self._body_chunks.clear()
        elif not self._body_too_large:
            self._body_chunks.append(chunk)

    @property
    def body(self) -> bytes:
        if self._body_too_large:
            raise PayloadTooLargeError()
        return b"".join(self._body_chunks)

    async def authenticate(self) -> None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        self.claims, self._prefetched = await accounts.authenticate(
            redis=self.redis, settings=self.settings_obj, access_token=token.strip(), local=self.local_caches)
        self.user_id = self.claims.user_id
        accounts.check_session(await self.current_account(), self.claims)
        await accounts.route_reads(redis=self.redis, settings=self.settings_obj, user_id=self.user_id,
                                   writing=self.request.method not in ("GET", "HEAD", "OPTIONS"))

    async def current_account(self) -> Account:
        """The signed-in user's rows (loaded once per request); a token for a deleted user is no session."""
        assert self.user_id is not None
        if self._account is None:
            try:
                self._account = await accounts.load_account(
                    redis=self.redis, settings=self.settings_obj, user_id=self.user_id, prefetched=self._prefetched,
                    local=self.local_caches)
            except NotFoundError:
                raise NotAuthenticatedError("The account no longer exists.") from None
        return self._account

    def parse_body(self, model: type[RequestModel]) -> RequestModel:
        """The JSON body as its declared model, or one 1002 naming every problem by dotted path."""
        return parse_json(model, self.body)

    def parse_query(self, model: type[QueryModel]) -> QueryModel:
        """The query string as its declared model (unknown, repeated or malformed parameters are 1002)."""
        return parse_query(model, self.request.query_arguments)

    def ok(self, data: Any = None) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(jsoncodec.dumps({"code": 0, "data": data}))

    def on_finish(self) -> None:
        self._uncount()

    def on_connection_close(self) -> None:
        self._uncount()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.in_flight.count -= 1

    # -- errors ----------------------------------------------------------------------------------------------
    def _app_error(self, exc: BaseException | None, status: int) -> AppError:
        if isinstance(exc, AppError):
            return exc
        if exc is not None and (unavailable := as_unavailable(exc)) is not None:
            return unavailable
        if isinstance(exc, web.HTTPError) or exc is None:
            cls = _STATUS_ERRORS.get(status)
            if cls is not None:
                return cls()
        return InternalError()

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        error = self._app_error(value, getattr(value, "status_code", 500))
        if isinstance(error, InternalError):
            error_log.error("unhandled error %s %s request_id=%s", self.request.method, self.request.uri,
                            self.request_id, exc_info=(typ, value, tb))
        elif error.status >= 500:
            error_log.warning("%s %s request_id=%s: %s (%s)", self.request.method, self.request.path,
                              self.request_id, error.error, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        error = self._app_error(exc, status_code)
        self.clear()
        self.set_status(error.status)
        self.set_header("X-Request-ID", self.request_id)
        for name, value in {**self._rate_headers, **error.headers}.items():
            self.set_header(name, value)
        if isinstance(error, MethodNotAllowedError):
            self.set_header("Allow", ", ".join(self.implemented_methods()))
        if isinstance(error, PayloadTooLargeError) or self.in_flight.draining or self._close_after_answer:
            self.set_header("Connection", "close")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(jsoncodec.dumps(error.envelope()))


def requires_permission(permission: str) -> Callable:
    """Guard a handler method with a VIP permission: 403 ``permission_denied`` naming it."""
    def decorate(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(method)
        async def guarded(self: BaseHandler, *args: Any, **kwargs: Any) -> None:
            account = await self.current_account()
            await vip.require_permission(account.user, permission)
            await method(self, *args, **kwargs)
        return guarded
    return decorate


class NotFoundHandler(BaseHandler):
    """Every path without a route: the envelope's 404, whatever the method."""

    auth_required = False

    async def admit(self) -> None:
        raise NotFoundError("No such route.")


def access_log(handler: web.RequestHandler) -> None:
    """One line per request: method, path, status, ms, request id, user id."""
    request: httputil.HTTPServerRequest = handler.request
    status = handler.get_status()
    level = logging.INFO if status < 500 else logging.WARNING
    logging.getLogger("swiper.access").log(
        level, "%s %s %d %.1fms rid=%s uid=%s", request.method, request.path, status,
        1000.0 * request.request_time(), getattr(handler, "request_id", "") or "-",
        getattr(handler, "user_id", None) or "-")
