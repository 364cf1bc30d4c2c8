"""A local stand-in for WeChat Pay API v3 (APP payments) and its notifications, in public-key mode.

It holds its own platform RSA key (id ``PUB_KEY_ID_…``, made at start) and checks every request as WeChat Pay
does: ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,signature=…,timestamp=…,serial_no=…`` with
the merchant's public key over ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n``, the merchant id and certificate
serial, a timestamp within 5 minutes, a nonce used once, and ``Wechatpay-Serial`` naming its key. Answers carry
``Wechatpay-Timestamp/-Nonce/-Signature/-Serial`` signed over ``TS\\nNONCE\\nBODY\\n``. Notifications have their
resource encrypted with AES-256-GCM under the APIv3 key. Its own implementation (``cryptography``), never the
SDK the server uses.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import time
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.stubs.alipay import new_key, public_pem, rsa2_sign, rsa2_verify
from tests.stubs.server import StubServer

BEIJING = zoneinfo.ZoneInfo("Asia/Shanghai")
_AUTH = re.compile(r'^WECHATPAY2-SHA256-RSA2048 (.+)$')


@dataclass
class Trade:
    out_trade_no: str
    total: int
    appid: str
    description: str
    prepay_id: str
    state: str = "NOTPAY"
    transaction_id: str = ""
    request: dict[str, Any] = field(default_factory=dict)


class WechatPayStub(StubServer):
    def __init__(self, *, app_id: str, mch_id: str, merchant_serial: str, merchant_public_key_pem: str,
                 apiv3_key: str) -> None:
        super().__init__()
        self.app_id, self.mch_id, self.merchant_serial, self.apiv3_key = app_id, mch_id, merchant_serial, apiv3_key
        self.merchant_key = serialization.load_pem_public_key(merchant_public_key_pem.encode())
        self.key = new_key()
        self.forger_key = new_key()  # for "forged" answers; made now, since making a key takes ~100 ms of CPU
        self.key_id = "PUB_KEY_ID_" + secrets.token_hex(12).upper()
        self.public_key_pem = public_pem(self.key)
        self.trades: dict[str, Trade] = {}
        self.received: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.answer_mode = "ok"   # "unsigned" | "forged" | "stale"
        self._nonces: set[str] = set()

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.listen([(r"/v3/.*", _Api, {"stub": self})])

    # -- what the WeChat app does with the pay params -----------------------------------------------------
    def check_app_pay(self, params: dict[str, str]) -> Trade:
        """Check the APP pay fields as WeChat does when the app calls PayReq."""
        trade = next(t for t in self.trades.values() if t.prepay_id == params["prepayid"])
        assert params["appid"] == self.app_id and params["partnerid"] == self.mch_id, params
        assert params["package"] == "Sign=WXPay", params
        message = f"{params['appid']}\n{params['timestamp']}\n{params['noncestr']}\n{params['prepayid']}\n"
        assert rsa2_verify(self.merchant_key, message, params["sign"]), "APP pay sign does not verify"
        return trade

    def pay(self, out_trade_no: str) -> Trade:
        trade = self.trades[out_trade_no]
        trade.state = "SUCCESS"
        trade.transaction_id = trade.transaction_id or "42000" + secrets.token_hex(12)
        return trade

    # -- notifications --------------------------------------------------------------------------------------
    def transaction(self, trade: Trade, **changes: Any) -> dict[str, Any]:
        now = dt.datetime.now(BEIJING).isoformat(timespec="seconds")
        content = {"appid": trade.appid, "mchid": self.mch_id, "out_trade_no": trade.out_trade_no,
                   "transaction_id": trade.transaction_id, "trade_type": "APP", "trade_state": trade.state,
                   "trade_state_desc": "支付成功" if trade.state == "SUCCESS" else "未支付", "bank_type": "OTHERS",
                   "attach": "", "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                   "amount": {"total": trade.total, "payer_total": trade.total, "currency": "CNY",
                              "payer_currency": "CNY"}}
        if trade.state == "SUCCESS":
            content["success_time"] = now
        content.update(changes)
        return content

    def notification(self, out_trade_no: str, *, event_type: str = "TRANSACTION.SUCCESS",
                     content: dict[str, Any] | None = None, sign_with: Any = None, timestamp: int | None = None,
                     serial: str | None = None, apiv3_key: str | None = None) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a notification, encrypted and signed as WeChat Pay does unless told otherwise."""
        trade = self.trades[out_trade_no]
        if content is None:
            content = self.transaction(trade)
        nonce, associated = secrets.token_hex(6), "transaction" if event_type.startswith("TRANSACTION") else "refund"
        ciphertext = AESGCM((apiv3_key or self.apiv3_key).encode()).encrypt(
            nonce.encode(), json.dumps(content, ensure_ascii=False).encode(), associated.encode())
        event = {"id": secrets.token_hex(16), "create_time": dt.datetime.now(BEIJING).isoformat(timespec="seconds"),
                 "resource_type": "encrypt-resource", "event_type": event_type,
                 "summary": "支付成功" if event_type == "TRANSACTION.SUCCESS" else "退款成功",
                 "resource": {"original_type": associated, "algorithm": "AEAD_AES_256_GCM",
                              "ciphertext": base64.b64encode(ciphertext).decode(), "associated_data": associated,
                              "nonce": nonce}}
        body = json.dumps(event, ensure_ascii=False).encode()
        return self.signed_headers(body, sign_with=sign_with, timestamp=timestamp, serial=serial), body

    def refund_notification(self, out_trade_no: str, refund: int | None = None) -> tuple[dict[str, str], bytes]:
        trade = self.trades[out_trade_no]
        refund = trade.total if refund is None else refund
        trade.state = "REFUND"
        content = {"mchid": self.mch_id, "out_trade_no": out_trade_no, "transaction_id": trade.transaction_id,
                   "out_refund_no": secrets.token_hex(8), "refund_id": "50000" + secrets.token_hex(10),
                   "refund_status": "SUCCESS", "success_time": dt.datetime.now(BEIJING).isoformat(timespec="seconds"),
                   "amount": {"total": trade.total, "refund": refund, "payer_total": trade.total,
                              "payer_refund": refund}, "user_received_account": "支付用户零钱"}
        return self.notification(out_trade_no, event_type="REFUND.SUCCESS", content=content)

    def signed_headers(self, body: bytes, *, sign_with: Any = None, timestamp: int | None = None,
                       serial: str | None = None) -> dict[str, str]:
        stamp, nonce = str(timestamp if timestamp is not None else int(time.time())), secrets.token_hex(16)
        signature = rsa2_sign(sign_with or self.key, f"{stamp}\n{nonce}\n{body.decode()}\n")
        return {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
                "Wechatpay-Serial": serial or self.key_id, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                "Content-Type": "application/json"}

    @staticmethod
    async def send(url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        response = await AsyncHTTPClient().fetch(HTTPRequest(url, method="POST", body=body, headers=headers,
                                                             request_timeout=30), raise_error=False)
        return response.code, (response.body or b"").decode()

    # -- the API ---------------------------------------------------------------------------------------------
    def _request_problem(self, request: Any) -> str:
        match = _AUTH.match(request.headers.get("Authorization", ""))
        if match is None:
            return "SIGN_ERROR: no WECHATPAY2-SHA256-RSA2048 Authorization"
        fields = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if fields.get("mchid") != self.mch_id:
            return "MCH_NOT_EXISTS"
        if fields.get("serial_no") != self.merchant_serial:
            return "SIGN_ERROR: unknown merchant certificate serial"
        if not fields.get("timestamp", "").isdigit() or abs(time.time() - int(fields["timestamp"])) > 300:
            return "SIGN_ERROR: timestamp not within 5 minutes"
        if request.headers.get("Wechatpay-Serial") != self.key_id:
            return "PARAM_ERROR: Wechatpay-Serial is not the platform public key id"
        nonce = fields.get("nonce_str", "")
        message = f"{request.method}\n{request.uri}\n{fields['timestamp']}\n{nonce}\n{request.body.decode()}\n"
        if not rsa2_verify(self.merchant_key, message, fields.get("signature", "")):
            return "SIGN_ERROR: signature does not verify"
        if not nonce or nonce in self._nonces:
            return "SIGN_ERROR: nonce used before"
        self._nonces.add(nonce)
        return ""

    def answer(self, request: Any) -> tuple[int, dict[str, Any] | None]:
        problem = self._request_problem(request)
        if problem:
            self.rejected.append(problem)
            return 401, {"code": problem.split(":")[0], "message": problem}
        body = json.loads(request.body) if request.body else {}
        self.received.append({"method": request.method, "uri": request.uri, "body": body})
        path = request.path
        if request.method == "POST" and path == "/v3/pay/transactions/app":
            if body.get("mchid") != self.mch_id or body.get("appid") != self.app_id:
                return 400, {"code": "PARAM_ERROR", "message": "appid和mch_id不匹配"}
            if not body.get("notify_url", "").startswith("http"):
                return 400, {"code": "PARAM_ERROR", "message": "notify_url格式不正确"}
            trade = self.trades.get(body["out_trade_no"])
            if trade is None:
                trade = Trade(body["out_trade_no"], body["amount"]["total"], body["appid"], body["description"],
                              "wx" + secrets.token_hex(16), request=body)
                self.trades[trade.out_trade_no] = trade
            return 200, {"prepay_id": trade.prepay_id}
        found = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)(/close)?", path)
        if found is None:
            return 404, {"code": "NOT_FOUND", "message": "no such API"}
        trade = self.trades.get(found.group(1))
        if found.group(2):
            if trade is None:
                return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
            if trade.state == "SUCCESS":
                return 400, {"code": "ORDERPAID", "message": "订单已支付"}
            trade.state = "CLOSED"
            return 204, None
        if request.query_arguments.get("mchid") != [self.mch_id.encode()]:
            return 400, {"code": "PARAM_ERROR", "message": "mchid"}
        if trade is None:
            return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
        return 200, self.transaction(trade)


class _Api(tornado.web.RequestHandler):
    def initialize(self, stub: WechatPayStub) -> None:
        self.stub = stub

    async def _handle(self) -> None:
        status, answer = self.stub.answer(self.request)
        body = b"" if answer is None else json.dumps(answer, ensure_ascii=False).encode()
        self.set_status(status)
        mode = self.stub.answer_mode
        if mode != "unsigned":
            headers = self.stub.signed_headers(body, sign_with=self.stub.forger_key if mode == "forged" else None,
                                               timestamp=int(time.time()) - 3600 if mode == "stale" else None)
            for name, value in headers.items():
                self.set_header(name, value)
        if body:
            self.set_header("Content-Type", "application/json")
            self.write(body)
        self.finish()

    get = post = _handle
