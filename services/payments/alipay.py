"""Alipay (``alipay.trade.app.pay``, RSA2), through python-alipay-sdk for signing and verification only.

The SDK's own calls to the gateway use blocking ``urlopen``, so queries and closes are sent here with Tornado's
``AsyncHTTPClient``, signed by the SDK, and their answers verified with Alipay's public key over the exact text of
the ``…_response`` value (found by a JSON-aware scan: the SDK's brace counting is fooled by a brace in a string).
Its ``build_body`` stamps a naive ``datetime.now()``; every call passes a timestamp in Asia/Shanghai instead.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import zoneinfo
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from alipay import AliPay
from tornado.httpclient import HTTPRequest

from conf import Settings
from models import VipOrder
from services.errors import NotificationRejectedError, UpstreamError
from services.payments.channel import ProviderHttp, TradeEvent, fen_from_yuan, local_time, read_pem, yuan

log = logging.getLogger("swiper.payments.alipay")
ALIPAY_TZ = zoneinfo.ZoneInfo("Asia/Shanghai")  # Alipay reads every time it is given in Beijing time
PAID = ("TRADE_SUCCESS", "TRADE_FINISHED")
FAILED = "Alipay did not answer as expected; try again."


class AlipayChannel:
    name = "alipay"

    def __init__(self, settings: Settings) -> None:
        self._sdk = AliPay(appid=settings.alipay_app_id, app_notify_url=settings.alipay_notify_url,
                           app_private_key_string=read_pem(settings.alipay_private_key_file, "PRIVATE KEY"),
                           alipay_public_key_string=read_pem(settings.alipay_public_key_file, "PUBLIC KEY"),
                           sign_type="RSA2")
        self.app_id = settings.alipay_app_id
        self.seller_id = settings.alipay_seller_id
        self.notify_url = settings.alipay_notify_url
        self.gateway = settings.alipay_gateway
        self._provider = ProviderHttp(self.gateway, settings.payment_timeout)

    async def aclose(self) -> None:
        self._provider.close()

    @staticmethod
    def _timestamp() -> str:
        return dt.datetime.now(ALIPAY_TZ).strftime("%Y-%m-%d %H:%M:%S")

    async def start(self, order: VipOrder, subject: str) -> str:
        """The signed order string for the Alipay app SDK; nothing is sent to Alipay until the user pays."""
        biz = {"out_trade_no": order.order_no, "total_amount": yuan(order.amount_fen), "subject": subject,
               "product_code": "QUICK_MSECURITY_PAY",
               "time_expire": local_time(order.expires_at, ALIPAY_TZ).strftime("%Y-%m-%d %H:%M:%S")}
        data = self._sdk.build_body("alipay.trade.app.pay", biz, notify_url=self.notify_url,
                                    timestamp=self._timestamp())
        return self._sdk.sign_data(data)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeEvent:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NotificationRejectedError("not UTF-8") from None
        form = dict(parse_qsl(text, keep_blank_values=True))
        signature, sign_type = form.get("sign", ""), form.get("sign_type", "")
        if not signature or sign_type != "RSA2":
            raise NotificationRejectedError("missing sign or sign_type other than RSA2")
        # Alipay signs every non-empty parameter except sign and sign_type, sorted, with ITS key (never ours)
        signed = {k: v for k, v in form.items() if k not in ("sign", "sign_type") and v != ""}
        try:
            valid = self._sdk.verify(signed, signature)
        except Exception:  # malformed base64 and the like: not Alipay's signature either way
            valid = False
        if not valid:
            raise NotificationRejectedError("signature does not verify with Alipay's public key")
        if form.get("app_id") != self.app_id:
            raise NotificationRejectedError(f"app_id {form.get('app_id')!r} is not ours")
        if form.get("seller_id") != self.seller_id:
            raise NotificationRejectedError(f"seller_id {form.get('seller_id')!r} is not ours")
        order_no, status = form.get("out_trade_no", ""), form.get("trade_status", "")
        total = fen_from_yuan(form.get("total_amount", ""))
        if not order_no or total is None:
            raise NotificationRejectedError("no out_trade_no or total_amount")
        refund = fen_from_yuan(form.get("refund_fee", "") or "0") or 0
        common = {"order_no": order_no, "trade_no": form.get("trade_no") or None, "amount_fen": total, "raw": text}
        if refund > 0:  # refunds come as TRADE_CLOSED (all refunded) or TRADE_SUCCESS (part refunded)
            return TradeEvent(kind="refunded", refund_fen=refund, **common)
        if status in PAID:
            return TradeEvent(kind="paid", **common)
        if status == "TRADE_CLOSED":
            return TradeEvent(kind="closed", **common)
        return TradeEvent(kind="ignored", detail=status, **common)

    async def query(self, order_no: str) -> TradeEvent:
        answer = await self._call("alipay.trade.query", {"out_trade_no": order_no})
        if answer.get("code") != "10000":
            if answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":  # the user never opened the payment
                return TradeEvent(kind="missing", order_no=order_no)
            log.warning("alipay.trade.query %s: %s %s", order_no, answer.get("sub_code"), answer.get("sub_msg"))
            raise UpstreamError(FAILED)
        if answer.get("out_trade_no") != order_no:
            log.error("alipay.trade.query %s answered for %r", order_no, answer.get("out_trade_no"))
            raise UpstreamError(FAILED)
        status = answer.get("trade_status", "")
        kind = "paid" if status in PAID else "closed" if status == "TRADE_CLOSED" else "pending"
        return TradeEvent(kind=kind, order_no=order_no, trade_no=answer.get("trade_no"),
                          amount_fen=fen_from_yuan(answer.get("total_amount", "")),
                          raw=json.dumps(answer, ensure_ascii=False))

    async def close(self, order_no: str) -> bool:
        answer = await self._call("alipay.trade.close", {"out_trade_no": order_no})
        if answer.get("code") == "10000" or answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return True  # closed now, or never opened (then it can never be paid: time_expire has passed)
        if answer.get("sub_code") == "ACQ.TRADE_STATUS_ERROR":  # paid, finished or closed already
            return False
        log.warning("alipay.trade.close %s: %s %s", order_no, answer.get("sub_code"), answer.get("sub_msg"))
        raise UpstreamError(FAILED)

    async def _call(self, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        """One gateway call: the SDK signs, Tornado sends, and the answer's signature is checked."""
        body = self._sdk.sign_data(self._sdk.build_body(method, biz, timestamp=self._timestamp()))
        request = HTTPRequest(self.gateway, method="POST", body=body, ssl_options=self._provider.ssl,
                              headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
                              connect_timeout=min(3.0, self._provider.timeout), request_timeout=self._provider.timeout)
        try:
            response = await self._provider.client().fetch(request, raise_error=False)
        except Exception as exc:
            log.warning("%s failed: %s: %s", method, type(exc).__name__, exc)
            raise UpstreamError(FAILED) from None
        text = (response.body or b"").decode("utf-8", "replace")
        if response.code != 200:
            log.warning("%s: HTTP %s %r", method, response.code, text[:200])
            raise UpstreamError(FAILED)
        key = method.replace(".", "_") + "_response"
        try:
            content, signature = signed_content(text, key)
        except ValueError as exc:
            log.warning("%s: unreadable answer (%s) %r", method, exc, text[:200])
            raise UpstreamError(FAILED) from None
        try:
            valid = bool(signature) and self._sdk._verify(content, signature)
        except Exception:
            valid = False
        if not valid:
            log.error("%s: answer not signed by Alipay's key: %r", method, text[:300])
            raise UpstreamError(FAILED)
        return json.loads(content)


def signed_content(text: str, key: str) -> tuple[str, str]:
    """The exact text of the top-level ``key`` value (what Alipay signed) and the top-level ``sign``."""
    document = json.loads(text)
    if not isinstance(document, dict) or not isinstance(document.get(key), dict):
        raise ValueError(f"no {key}")
    signature = document.get("sign")
    depth, i, n = 0, 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = _string_end(text, i)
            if depth == 1 and json.loads(text[i:end]) == key:
                j = end
                while text[j] in " \t\r\n:":
                    j += 1
                return text[j:_value_end(text, j)], signature if isinstance(signature, str) else ""
            i = end
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        i += 1
    raise ValueError(f"no {key}")


def _string_end(text: str, start: int) -> int:
    """The index just past the JSON string starting at ``start``."""
    i = start + 1
    while text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _value_end(text: str, start: int) -> int:
    """The index just past the JSON object starting at ``start``."""
    depth, i = 0, start
    while True:
        char = text[i]
        if char == '"':
            i = _string_end(text, i)
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
