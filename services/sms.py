"""SMS senders: ``ConsoleSmsSender`` for development, ``AliyunSmsSender`` (Alibaba Cloud Dysms) for real.

Loop stalls: over HTTPS darabonba-core's ``DaraCore.async_do_action`` builds a new SSLContext (system store +
certifi, 30-60 ms of blocking) and a new aiohttp session for every call. We wrap that one static method: while
the ``_TRANSPORT`` ContextVar is set (only inside ``AliyunSmsSender.send_code``) the request goes through the
sender's own aiohttp session, whose SSLContext is built once in ``__init__``; any other caller gets the SDK's
code unchanged. Signing, errors and response parsing stay the SDK's; tests/services/test_sms.py guards this.
SDK retries are off: its backoff uses a blocking ``time.sleep`` on the loop.
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import ssl
from typing import Any, Protocol

import aiohttp
import certifi
from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as DysmsClient
from alibabacloud_tea_openapi import models as open_api_models
from darabonba.core import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DaraCore
from darabonba.exceptions import RetryError, UnretryableException
from darabonba.policy.retry import RetryOptions
from darabonba.request import DaraRequest
from darabonba.response import DaraResponse
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

from conf import Settings
from services.errors import UpstreamError
from services.phones import mask_phone

log = logging.getLogger("swiper.sms")

SEND_FAILED = "The SMS could not be sent; try again shortly."
_PROVIDER_ERRORS = (TeaException, UnretryableException, aiohttp.ClientError, asyncio.TimeoutError, OSError)


class SmsSender(Protocol):
    async def send_code(self, phone: str, code: str) -> None:
        """Deliver ``code`` to ``phone``; raises ``UpstreamError`` on any provider error or timeout."""
        ...

    async def aclose(self) -> None:
        ...


class ConsoleSmsSender:
    """Development only (settings refuse it in prod): the code goes to the log instead of a phone."""

    async def send_code(self, phone: str, code: str) -> None:
        log.warning("SMS code for %s: %s", mask_phone(phone), code)

    async def aclose(self) -> None:
        pass


class _SharedTransport:
    """Does the SDK's HTTP step with one long-lived session and one SSLContext instead of new ones per call."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            # keepalive below typical server idle timeouts, so a pooled connection is rarely stale
            connector = aiohttp.TCPConnector(ssl=self._ssl_context, limit=20, keepalive_timeout=10.0)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=True)
            self._session_loop = loop
        return self._session

    async def do_action(self, request: DaraRequest, runtime: dict[str, Any]) -> DaraResponse:
        """Same contract as ``DaraCore.async_do_action`` for what our sender configures (no proxy, cert, ca)."""
        self.requests += 1
        url = DaraCore.compose_url(request)
        connect_ms = runtime.get("connectTimeout") or DEFAULT_CONNECT_TIMEOUT
        read_ms = runtime.get("readTimeout") or DEFAULT_READ_TIMEOUT
        timeout = aiohttp.ClientTimeout(sock_connect=int(connect_ms) / 1000, sock_read=int(read_ms) / 1000)
        body = request.body.encode() if isinstance(request.body, str) else (request.body or b"")
        response = DaraResponse()
        try:
            async with self._session_here().request(request.method, url, data=body, headers=request.headers,
                                                    timeout=timeout) as raw:
                response.body = await raw.read()
                response.headers = {k.lower(): v for k, v in raw.headers.items()}
                response.status_code = raw.status
                response.status_message = raw.reason
                response.response = raw
        except (OSError, aiohttp.ClientError) as exc:
            raise RetryError(str(exc)) from exc   # what the SDK's own transport raises
        return response

    async def aclose(self) -> None:
        if self._session is not None and self._session_loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None


_TRANSPORT: contextvars.ContextVar[_SharedTransport | None] = contextvars.ContextVar(
    "swiper_aliyun_transport", default=None)


def _install_transport_hook() -> None:
    """Route ``DaraCore.async_do_action`` to the active sender's transport; idempotent, fails loudly if gone."""
    current = DaraCore.async_do_action
    if getattr(current, "swiper_routed", False):
        return
    if not inspect.iscoroutinefunction(current):
        raise RuntimeError("darabonba-core changed: DaraCore.async_do_action is not a coroutine function")
    sdk_do_action = current

    async def routed(request: DaraRequest, runtime_option: dict[str, Any] | None = None) -> DaraResponse:
        transport = _TRANSPORT.get()
        if transport is None:
            return await sdk_do_action(request, runtime_option)
        return await transport.do_action(request, runtime_option or {})

    routed.swiper_routed = True  # type: ignore[attr-defined]
    DaraCore.async_do_action = staticmethod(routed)  # type: ignore[method-assign]


def _build_ssl_context(ca_file: str) -> ssl.SSLContext:
    """Built once at start-up. With a CA file, trust only it; otherwise the system store plus certifi (as the SDK)."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    return context


class AliyunSmsSender:
    """Sends the code through Dysms SendSms with the SDK's async client; one client for the app's lifetime."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        timeout_ms = max(1, round(settings.sms_timeout * 1000))
        config = open_api_models.Config(
            access_key_id=settings.aliyun_access_key_id,
            access_key_secret=settings.aliyun_access_key_secret,
            endpoint=settings.aliyun_sms_endpoint,
            protocol=settings.aliyun_sms_protocol,
            connect_timeout=timeout_ms,
            read_timeout=timeout_ms,
            # Only Config.retry_options drives retries in tea-openapi 0.4 (RuntimeOptions.autoretry is ignored).
            retry_options=RetryOptions(retryable=False),
            ca=settings.aliyun_sms_ca_file or None,   # used by the SDK only if our transport hook were bypassed
        )
        self._client = DysmsClient(config)
        self._runtime = RuntimeOptions(autoretry=False, max_attempts=0)
        self._transport = _SharedTransport(_build_ssl_context(settings.aliyun_sms_ca_file))
        _install_transport_hook()

    async def send_code(self, phone: str, code: str) -> None:
        request = sms_models.SendSmsRequest(
            phone_numbers=phone,
            sign_name=self._settings.aliyun_sms_sign_name,
            template_code=self._settings.aliyun_sms_template_code,
            template_param=json.dumps({"code": code}, separators=(",", ":")),
        )
        token = _TRANSPORT.set(self._transport)
        try:
            async with asyncio.timeout(self._settings.sms_timeout + 1):
                response = await self._client.send_sms_with_options_async(request, self._runtime)
        except _PROVIDER_ERRORS as exc:
            self._log_failure(phone, exc)
            raise UpstreamError(SEND_FAILED) from None   # the chained exception holds the signed request
        finally:
            _TRANSPORT.reset(token)
        body = response.body
        if body is None or body.code != "OK":
            log.warning("Aliyun SendSms to %s refused: code=%s message=%s request_id=%s", mask_phone(phone),
                        getattr(body, "code", None), getattr(body, "message", None),
                        getattr(body, "request_id", None))
            raise UpstreamError(SEND_FAILED)

    @staticmethod
    def _log_failure(phone: str, exc: BaseException) -> None:
        inner = getattr(exc, "inner_exception", None) or exc
        log.warning("Aliyun SendSms to %s failed: %s code=%s message=%s", mask_phone(phone),
                    type(inner).__name__, getattr(inner, "code", None),
                    getattr(inner, "message", None) or str(inner) or "timed out")

    async def aclose(self) -> None:
        await self._transport.aclose()


def build_sms_sender(settings: Settings) -> SmsSender:
    """The sender the settings ask for; the app builds one at start-up and closes it at shutdown."""
    if settings.sms_backend == "aliyun":
        return AliyunSmsSender(settings)
    return ConsoleSmsSender()
