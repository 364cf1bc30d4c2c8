"""A local stand-in for Alipay's open gateway and its asynchronous notifications.

It holds its own RSA key pair (Alipay's "platform" key, made at start), knows the app's public key, and checks
each gateway request as Alipay does: RSA2 (SHA256withRSA) over every non-empty parameter but ``sign``, sorted,
joined ``k=v&…`` with raw values; app id, charset, a timestamp within 15 minutes in Beijing time. It implements
the signature itself (``cryptography``), never through the SDK the server uses, so a mistake on either side
shows. It answers ``alipay.trade.query`` and ``alipay.trade.close`` signed over the exact JSON text of the
``…_response`` value, remembers trades, and builds and sends notifications, good or scripted wrong.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import zoneinfo
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import tornado.web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.stubs.server import StubServer

BEIJING = zoneinfo.ZoneInfo("Asia/Shanghai")
MAX_SKEW = dt.timedelta(minutes=15)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa2_sign(key: rsa.RSAPrivateKey, content: str) -> str:
    return base64.b64encode(key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(public_key: Any, content: str, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature), content.encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:
        return False


def sign_content(params: dict[str, str], *, leave_out: tuple[str, ...]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in leave_out and v != "")


@dataclass
class Trade:
    out_trade_no: str
    total_amount: str
    subject: str = ""
    status: str = "WAIT_BUYER_PAY"
    trade_no: str = ""


class AlipayStub(StubServer):
    def __init__(self, *, app_id: str, seller_id: str, app_public_key_pem: str) -> None:
        super().__init__()
        self.app_id, self.seller_id = app_id, seller_id
        self.app_public_key = serialization.load_pem_public_key(app_public_key_pem.encode())
        self.key = new_key()
        self.forger_key = new_key()  # for "forged" answers; made now, since making a key takes ~100 ms of CPU
        self.public_key_pem = public_pem(self.key)
        self.trades: dict[str, Trade] = {}
        self.received: list[dict[str, Any]] = []   # verified gateway calls: {"method", "biz"}
        self.rejected: list[str] = []
        self.answer_mode = "ok"   # "unsigned" | "forged": how query/close answers are (mis)signed

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.port}/gateway.do"

    async def start(self) -> None:
        await self.listen([(r"/gateway.do", _Gateway, {"stub": self})])


    # -- what the Alipay app does with the order string ---------------------------------------------------
    def open_order_string(self, order_string: str) -> dict[str, Any]:
        """Check the app's order string as Alipay does when the user opens it; the trade then exists."""
        params = dict(parse_qsl(order_string, keep_blank_values=True))
        problem = self._request_problem(params)
        assert not problem, problem
        assert params["method"] == "alipay.trade.app.pay", params["method"]
        biz = json.loads(params["biz_content"])
        assert biz["product_code"] == "QUICK_MSECURITY_PAY" and params.get("notify_url"), params
        self.trades.setdefault(biz["out_trade_no"], Trade(biz["out_trade_no"], biz["total_amount"],
                                                          biz["subject"]))
        return {**params, "biz": biz}

    def pay(self, out_trade_no: str, total_amount: str | None = None) -> Trade:
        """The user pays (the trade is made first if the order string was never opened)."""
        trade = self.trades.get(out_trade_no) or Trade(out_trade_no, total_amount or "0.00")
        self.trades[out_trade_no] = trade
        trade.status = "TRADE_SUCCESS"
        trade.trade_no = trade.trade_no or dt.datetime.now(BEIJING).strftime("%Y%m%d") + secrets.token_hex(10)
        return trade

    # -- notifications --------------------------------------------------------------------------------------
    def notification(self, trade_of: str, *, trade_status: str = "TRADE_SUCCESS",
                     sign_with: rsa.RSAPrivateKey | None = None, **fields: str) -> dict[str, str]:
        """A notification for a trade, signed (by Alipay's key unless ``sign_with``) after ``fields`` apply."""
        trade = self.trades[trade_of]
        out_trade_no = trade_of
        now = dt.datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        params = {"notify_time": now, "notify_type": "trade_status_sync", "notify_id": secrets.token_hex(16),
                  "app_id": self.app_id, "charset": "utf-8", "version": "1.0", "sign_type": "RSA2",
                  "trade_no": trade.trade_no, "out_trade_no": out_trade_no, "buyer_id": "2088102177846880",
                  "seller_id": self.seller_id, "trade_status": trade_status, "total_amount": trade.total_amount,
                  "receipt_amount": trade.total_amount, "buyer_pay_amount": trade.total_amount,
                  "subject": trade.subject, "gmt_create": now, "gmt_payment": now, "passback_params": ""}
        params.update(fields)
        params["sign"] = rsa2_sign(sign_with or self.key, sign_content(params, leave_out=("sign", "sign_type")))
        return params

    def refund_notification(self, out_trade_no: str, refund_fee: str | None = None) -> dict[str, str]:
        trade = self.trades[out_trade_no]
        full = refund_fee is None or refund_fee == trade.total_amount
        trade.status = "TRADE_CLOSED" if full else trade.status
        now = dt.datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S.000")
        return self.notification(out_trade_no, trade_status=trade.status, refund_fee=refund_fee or trade.total_amount,
                                 gmt_refund=now, out_biz_no=secrets.token_hex(8))

    @staticmethod
    async def send(url: str, params: dict[str, str]) -> tuple[int, str]:
        body = "&".join(f"{k}={quote_plus(v)}" for k, v in params.items())
        response = await AsyncHTTPClient().fetch(HTTPRequest(
            url, method="POST", body=body, request_timeout=30,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}), raise_error=False)
        return response.code, (response.body or b"").decode()

    # -- the gateway -----------------------------------------------------------------------------------------
    def _request_problem(self, params: dict[str, str]) -> str:
        if params.get("sign_type") != "RSA2":
            return "sign_type must be RSA2"
        if params.get("app_id") != self.app_id:
            return "isv.invalid-app-id"
        if params.get("charset") != "utf-8":
            return "isv.invalid-charset"
        try:
            sent = dt.datetime.strptime(params.get("timestamp", ""), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            return "isv.invalid-timestamp"
        if abs(dt.datetime.now(BEIJING) - sent) > MAX_SKEW:
            return "isv.invalid-timestamp (not Beijing time?)"
        if not rsa2_verify(self.app_public_key, sign_content(params, leave_out=("sign",)), params.get("sign", "")):
            return "isv.invalid-signature"
        return ""

    def answer(self, method: str, params: dict[str, str]) -> str:
        problem = self._request_problem(params)
        response_key = method.replace(".", "_") + "_response"
        if problem:
            self.rejected.append(problem)
            return json.dumps({"error_response": {"code": "40002", "msg": "Invalid Arguments",
                                                  "sub_code": problem, "sub_msg": problem}})
        biz = json.loads(params.get("biz_content") or "{}")
        self.received.append({"method": method, "biz": biz})
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None:
            inner = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                     "sub_msg": "交易不存在", "out_trade_no": biz.get("out_trade_no"), "buyer_pay_amount": "0.00",
                     "point_amount": "0.00", "invoice_amount": "0.00", "receipt_amount": "0.00"}
        elif method == "alipay.trade.query":
            inner = {"code": "10000", "msg": "Success", "trade_no": trade.trade_no or None,
                     "out_trade_no": trade.out_trade_no, "buyer_logon_id": "159****5620",
                     "trade_status": trade.status, "total_amount": trade.total_amount,
                     "buyer_pay_amount": trade.total_amount if trade.trade_no else "0.00",
                     "fund_bill_list": [{"amount": trade.total_amount, "fund_channel": "ALIPAYACCOUNT"}],
                     "send_pay_date": dt.datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")}
            inner = {k: v for k, v in inner.items() if v is not None}
        elif method == "alipay.trade.close":
            if trade.status == "WAIT_BUYER_PAY":
                trade.status = "TRADE_CLOSED"
                inner = {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no}
            else:
                inner = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR",
                         "sub_msg": "交易状态不合法"}
        else:
            inner = {"code": "40004", "msg": "Business Failed", "sub_code": "isv.unsupported-method"}
        inner_text = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
        if self.answer_mode == "unsigned":
            return f'{{"{response_key}":{inner_text}}}'
        key = self.forger_key if self.answer_mode == "forged" else self.key
        return f'{{"{response_key}":{inner_text},"sign":"{rsa2_sign(key, inner_text)}"}}'


class _Gateway(tornado.web.RequestHandler):
    def initialize(self, stub: AlipayStub) -> None:
        self.stub = stub

    def _params(self) -> dict[str, str]:
        params = dict(parse_qsl(self.request.query, keep_blank_values=True))
        if self.request.body:
            params.update(parse_qsl(self.request.body.decode("utf-8"), keep_blank_values=True))
        return params

    async def post(self) -> None:
        params = self._params()
        self.set_header("Content-Type", "text/html;charset=utf-8")   # as Alipay labels its JSON
        self.finish(self.stub.answer(params.get("method", ""), params))

    get = post
