"""WeChat Pay v3, APP payments, with wechatpayv3's pure signing and crypto functions (``wechatpayv3.utils``).

Its ``WeChatPay`` client sends with blocking ``requests``; its async client builds an httpx TLS context per
client and, on an unknown ``Wechatpay-Serial``, downloads certificates in the middle of verifying. So requests go
through Tornado's ``AsyncHTTPClient`` here, signed with ``build_authorization``; answers and notifications are
verified against the one configured platform key (WeChat Pay's public key, ``PUB_KEY_ID_…``, or a platform
certificate, whose serial is then the expected ``Wechatpay-Serial``), with a timestamp freshness check the SDK
does not make, and notification resources are decrypted with the APIv3 key (AES-256-GCM).
"""
from __future__ import annotations

import json
import logging
import secrets
import time
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tornado.httpclient import HTTPRequest
from wechatpayv3.utils import (aes_decrypt, build_authorization, load_certificate, load_private_key,
                               load_public_key, rsa_sign, rsa_verify)

from conf import Settings
from models import VipOrder
from services import jsoncodec
from services.errors import NotificationRejectedError, UpstreamError
from services.payments.channel import ProviderHttp, TradeEvent, local_time, read_pem

log = logging.getLogger("swiper.payments.wechat")
WECHAT_TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
MAX_CLOCK_SKEW = 300  # seconds; WeChat Pay's own advice for Wechatpay-Timestamp
FAILED = "WeChat Pay did not answer as expected; try again."
CLOSED_STATES = ("CLOSED", "REVOKED", "PAYERROR")


class WechatChannel:
    name = "wechat"

    def __init__(self, settings: Settings) -> None:
        self.app_id = settings.wechat_app_id
        self.mch_id = settings.wechat_mch_id
        self.cert_serial = settings.wechat_cert_serial
        self.apiv3_key = settings.wechat_apiv3_key
        self.notify_url = settings.wechat_notify_url
        self.gateway = settings.wechat_gateway.rstrip("/")
        self._private_key = load_private_key(read_pem(settings.wechat_private_key_file, "PRIVATE KEY"))
        self.platform_serial, self._platform_key = _platform_key(settings)
        self._provider = ProviderHttp(self.gateway, settings.payment_timeout)

    async def aclose(self) -> None:
        self._provider.close()

    async def start(self, order: VipOrder, subject: str) -> dict[str, str]:
        """Prepay (``/v3/pay/transactions/app``), then the APP pay fields, signed with our merchant key."""
        body = {"appid": self.app_id, "mchid": self.mch_id, "description": subject,
                "out_trade_no": order.order_no,
                "time_expire": local_time(order.expires_at, WECHAT_TZ).isoformat(timespec="seconds"),
                "notify_url": self.notify_url, "amount": {"total": order.amount_fen, "currency": "CNY"}}
        status, answer = await self._call("POST", "/v3/pay/transactions/app", body)
        prepay_id = answer.get("prepay_id") if status == 200 and isinstance(answer, dict) else None
        if not isinstance(prepay_id, str) or not prepay_id:
            log.warning("prepay for %s: %s %r", order.order_no, status, answer)
            raise UpstreamError(FAILED)
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signature = rsa_sign(self._private_key, f"{self.app_id}\n{timestamp}\n{nonce}\n{prepay_id}\n")
        return {"appid": self.app_id, "partnerid": self.mch_id, "prepayid": prepay_id, "package": "Sign=WXPay",
                "noncestr": nonce, "timestamp": timestamp, "sign": signature}

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeEvent:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NotificationRejectedError("not UTF-8") from None
        problem = self._signature_problem(headers, text)
        if problem:
            raise NotificationRejectedError(problem)
        try:
            event = json.loads(text)
            resource = event["resource"]
            if event.get("resource_type") != "encrypt-resource" or resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise NotificationRejectedError("not an AEAD_AES_256_GCM resource")
            plain = aes_decrypt(nonce=resource["nonce"], ciphertext=resource["ciphertext"],
                                associated_data=resource.get("associated_data") or "", apiv3_key=self.apiv3_key)
        except NotificationRejectedError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError):
            raise NotificationRejectedError("not a WeChat Pay notification") from None
        if plain is None:
            raise NotificationRejectedError("the resource does not decrypt with our APIv3 key")
        try:
            content = json.loads(plain)
        except ValueError:
            raise NotificationRejectedError("the resource is not JSON") from None
        if not isinstance(content, dict):
            raise NotificationRejectedError("the resource is not an object")
        if content.get("mchid") != self.mch_id:
            raise NotificationRejectedError(f"mchid {content.get('mchid')!r} is not ours")
        event_type = str(event.get("event_type", ""))
        if event_type == "TRANSACTION.SUCCESS":
            if content.get("appid") != self.app_id:
                raise NotificationRejectedError(f"appid {content.get('appid')!r} is not ours")
            return self._trade(content, raw=plain)
        if event_type == "REFUND.SUCCESS":
            amount = content.get("amount") or {}
            return TradeEvent(kind="refunded", order_no=str(content.get("out_trade_no", "")),
                              trade_no=content.get("transaction_id"), amount_fen=_int(amount.get("total")),
                              refund_fen=_int(amount.get("refund")) or 0, raw=plain)
        return TradeEvent(kind="ignored", order_no=str(content.get("out_trade_no", "")), raw=plain,
                          detail=event_type)

    def _trade(self, content: dict[str, Any], raw: str) -> TradeEvent:
        state = content.get("trade_state")
        order_no = str(content.get("out_trade_no", ""))
        amount = content.get("amount") or {}
        if state in ("SUCCESS", "REFUND"):  # REFUND: it was paid; the refund has its own notification
            if amount.get("currency", "CNY") != "CNY":
                raise NotificationRejectedError("not in CNY")
            return TradeEvent(kind="paid", order_no=order_no, trade_no=content.get("transaction_id"),
                              amount_fen=_int(amount.get("total")), raw=raw)
        kind = "closed" if state in CLOSED_STATES else "pending"
        return TradeEvent(kind=kind, order_no=order_no, raw=raw, detail=str(state))

    def _signature_problem(self, headers: Mapping[str, str], text: str) -> str:
        """Why an answer or notification is not WeChat Pay's, or '' when it is."""
        serial = headers.get("Wechatpay-Serial", "")
        if serial != self.platform_serial:
            return f"Wechatpay-Serial {serial!r} is not the configured platform key"
        timestamp = headers.get("Wechatpay-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW:
            return "Wechatpay-Timestamp is missing or not within 5 minutes of now"
        signature, nonce = headers.get("Wechatpay-Signature", ""), headers.get("Wechatpay-Nonce", "")
        if not signature or not nonce or not rsa_verify(timestamp, nonce, text, signature, self._platform_key):
            return "Wechatpay-Signature does not verify with the platform key"
        return ""

    async def query(self, order_no: str) -> TradeEvent:
        status, answer = await self._call(
            "GET", f"/v3/pay/transactions/out-trade-no/{quote(order_no)}?mchid={quote(self.mch_id)}")
        if status == 404 or (isinstance(answer, dict) and answer.get("code") == "ORDER_NOT_EXIST"):
            return TradeEvent(kind="missing", order_no=order_no)
        if status != 200 or not isinstance(answer, dict):
            log.warning("query %s: %s %r", order_no, status, answer)
            raise UpstreamError(FAILED)
        if answer.get("out_trade_no") != order_no or answer.get("mchid") != self.mch_id \
                or answer.get("appid") != self.app_id:
            log.error("query %s answered for another order or merchant: %r", order_no, answer)
            raise UpstreamError(FAILED)
        return self._trade(answer, raw=json.dumps(answer, ensure_ascii=False))

    async def close(self, order_no: str) -> bool:
        status, answer = await self._call("POST", f"/v3/pay/transactions/out-trade-no/{quote(order_no)}/close",
                                          {"mchid": self.mch_id})
        if status in (200, 204):
            return True
        code = answer.get("code") if isinstance(answer, dict) else None
        if code in ("ORDERPAID", "ORDER_PAID"):
            return False
        if code in ("ORDER_CLOSED", "ORDER_NOT_EXIST"):
            return True
        log.warning("close %s: %s %r", order_no, status, answer)
        raise UpstreamError(FAILED)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Send one signed request; return the status and the answer, whose signature has been checked."""
        text = jsoncodec.dumps(body).decode() if body is not None else ""
        authorization = build_authorization(path, method, self.mch_id, self.cert_serial, self._private_key,
                                            data=text or None, nonce_str=secrets.token_hex(16).upper())
        headers = {"Authorization": authorization, "Accept": "application/json",
                   "Content-Type": "application/json", "Wechatpay-Serial": self.platform_serial,
                   "User-Agent": "swiper (tornado AsyncHTTPClient)"}
        request = HTTPRequest(self.gateway + path, method=method, headers=headers,
                              body=text if method != "GET" else None, ssl_options=self._provider.ssl,
                              connect_timeout=min(3.0, self._provider.timeout), request_timeout=self._provider.timeout)
        try:
            response = await self._provider.client().fetch(request, raise_error=False)
        except Exception as exc:
            log.warning("%s %s failed: %s: %s", method, path, type(exc).__name__, exc)
            raise UpstreamError(FAILED) from None
        if response.code == 599 or response.code >= 500:
            log.warning("%s %s: HTTP %s", method, path, response.code)
            raise UpstreamError(FAILED)
        answer_text = (response.body or b"").decode("utf-8", "replace")
        problem = self._signature_problem(response.headers, answer_text)
        if problem:
            log.error("%s %s: answer refused: %s", method, path, problem)
            raise UpstreamError(FAILED)
        try:
            return response.code, json.loads(answer_text) if answer_text else None
        except ValueError:
            raise UpstreamError(FAILED) from None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _platform_key(settings: Settings) -> tuple[str, Any]:
    """(the serial answers and notifications must carry, the key that verifies them)."""
    text = Path(settings.wechat_platform_public_key_file).read_text()
    if "BEGIN CERTIFICATE" in text:
        certificate = load_certificate(text)
        if certificate is None:
            raise ValueError(f"{settings.wechat_platform_public_key_file}: not a PEM certificate")
        return format(certificate.serial_number, "X"), certificate.public_key()
    if not settings.wechat_platform_public_key_id:
        raise ValueError("SWIPER_WECHAT_PLATFORM_PUBLIC_KEY_ID is needed with a platform public key")
    return settings.wechat_platform_public_key_id, load_public_key(read_pem(
        settings.wechat_platform_public_key_file, "PUBLIC KEY"))
