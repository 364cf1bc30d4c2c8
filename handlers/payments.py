"""VIP purchases: plans, my orders, and the two providers' notify endpoints.

The notify endpoints are not JSON-envelope endpoints: Alipay posts a form and wants the text ``success`` (else it
retries), WeChat Pay posts signed JSON and wants 204 or an error ``{"code": "FAIL", "message": ...}``. They need
no token; their only limit is the per-IP ``notify`` scope, and every answer, errors included, is in the
provider's format.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from typing import Annotated
from urllib.parse import parse_qs

from pydantic import ConfigDict, Field, StringConstraints

from handlers.base import BaseHandler
from handlers.contract import Limit, Payload, QueryModel, RequestModel, operation
from handlers.shapes import Error, Items, Membership, Page
from services import ratelimit
from services.errors import AppError, MethodNotAllowedError, NotificationRejectedError
from services.payments import PaymentChannels, orders, plans
from services.payments.apply import apply_event

log = logging.getLogger("swiper.payments.notify")
ORDER_NO = "[0-9A-Za-z]{1,32}"
PlanId = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class Plan(Payload):
    id: str
    level: int
    months: int
    price_fen: int


class Plans(Items[Plan]):
    pass


class CreateOrder(RequestModel):
    """Only what to buy and how to pay: the price is the server's (an ``amount`` or ``price_fen`` field is 1002)."""

    plan: PlanId
    channel: Literal["alipay", "wechat"]


class WechatAppPayParams(Payload):
    """The fields the WeChat Pay app SDK's PayReq takes."""

    appid: str
    partnerid: str
    prepayid: str
    package: str
    noncestr: str
    timestamp: str
    sign: str


class Order(Payload):
    order_no: str
    plan: str
    level: int
    months: int
    amount_fen: int
    channel: Literal["alipay", "wechat"]
    status: Literal["pending", "paid", "closed", "refunded"]
    created_at: dt.datetime
    expires_at: dt.datetime  # an unpaid order is closed then
    paid_at: dt.datetime | None
    vip: Membership | None  # my membership, once the order is paid


class CreatedOrder(Order):
    pay_params: str | WechatAppPayParams  # alipay: the signed order string; wechat: the APP pay fields


class OrdersPage(Page[Order]):
    pass


class PageQuery(QueryModel):
    limit: Limit = 20
    cursor: str | None = None


class PaymentsHandler(BaseHandler):
    @property
    def payment_channels(self) -> PaymentChannels:
        return self.application.settings["payment_channels"]


class PlansHandler(PaymentsHandler):
    auth_required = False

    @operation("listVipPlans", tag="vip", summary="What can be bought (listed even when purchases are off)",
               response=Plans)
    async def get(self) -> None:
        """Every plan on sale, by level then length."""
        self.ok({"items": [plans.plan_view(plan) for plan in await plans.load_plans()]})


class OrdersHandler(PaymentsHandler):
    @operation("createVipOrder", tag="vip", summary="Buy a plan: a new pending order and the SDK's pay params",
               body=CreateOrder, response=CreatedOrder, errors=(409, 502),
               links={"GetOrder": {"operationId": "getVipOrder",
                                   "parameters": {"order_no": "$response.body#/data/order_no"}}})
    async def post(self, body: CreateOrder) -> None:
        """Every call makes a new order at the plan's price."""
        account = await self.current_account()
        self.ok(await orders.create_order(settings=self.settings_obj, channels=self.payment_channels,
                                          user=account.user, plan_id=body.plan, channel=body.channel))

    @operation("listVipOrders", tag="vip", summary="My orders, newest first", query=PageQuery, response=OrdersPage)
    async def get(self, query: PageQuery) -> None:
        """My orders, newest first."""
        account = await self.current_account()
        items, cursor = await orders.list_orders(settings=self.settings_obj, user=account.user, limit=query.limit,
                                                 cursor=query.cursor)
        self.ok({"items": items, "next_cursor": cursor})


class OrderHandler(PaymentsHandler):
    @operation("getVipOrder", tag="vip", summary="One of my orders (with my membership once paid)",
               response=Order, errors=(404,))
    async def get(self, order_no: str) -> None:
        """The order's status; once paid, my membership too."""
        account = await self.current_account()
        self.ok(await orders.get_order(user=account.user, order_no=order_no))


# -- the providers' notifications ---------------------------------------------------------------------------
class AlipayNotification(Payload):
    """Alipay's asynchronous notification (form-encoded); it carries more fields than these, all signed."""

    model_config = ConfigDict(extra="allow")
    notify_id: str
    app_id: str
    out_trade_no: str
    trade_status: str
    total_amount: str
    sign_type: str
    sign: str


class WechatResource(Payload):
    algorithm: str
    ciphertext: str
    nonce: str
    associated_data: str | None = None
    original_type: str | None = None


class WechatNotification(Payload):
    model_config = ConfigDict(extra="allow")
    id: str
    event_type: str
    resource_type: str
    resource: WechatResource


class WechatSignatureHeaders(Payload):
    signature: str = Field(alias="Wechatpay-Signature")
    timestamp: str = Field(alias="Wechatpay-Timestamp")
    nonce: str = Field(alias="Wechatpay-Nonce")
    serial: str = Field(alias="Wechatpay-Serial")


class WechatFailure(Payload):
    code: Literal["FAIL"]
    message: str


AlipayAnswer = Literal["success", "failure"]
ALIPAY_REQUIRED = {name for name, info in AlipayNotification.model_fields.items() if info.is_required()}
PROVIDER_ERRORS = (413, 429, 503)
ENVELOPE_405 = {405: ("application/json", Error)}


class NotifyHandler(PaymentsHandler):
    """What both notify endpoints share: no token, the per-IP ``notify`` limit only, provider-format errors."""

    auth_required = False
    rate_limit_scope = "notify"
    channel = ""

    async def apply_rate_limits(self) -> None:
        """Only the ``notify`` scope: a provider's servers send from few addresses, far above the anonymous limit."""
        settings = self.settings_obj
        verdict = await ratelimit.check(redis=self.redis, fallback=self.rate_fallback, scope="notify",
                                        identity=self.client_ip, limit=settings.rate_limit_notify,
                                        window=settings.rate_limit_window)
        self.limit_headers(verdict)

    async def receive(self) -> None:
        """Verify and apply the notification; a rejection is logged with why."""
        try:
            if self.channel not in self.payment_channels:
                raise NotificationRejectedError(f"the {self.channel} channel is not enabled on this server")
            provider = self.payment_channels.get(self.channel)
            event = provider.parse_notification(self.request.headers, self.body)
            await apply_event(redis=self.redis, settings=self.settings_obj, event=event, channel=self.channel,
                              source="notification")
        except NotificationRejectedError as exc:
            log.warning("%s notification refused from %s: %s request_id=%s", self.channel, self.client_ip, exc,
                        self.request_id)
            raise

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        error = self._app_error(exc, status_code)
        if isinstance(error, MethodNotAllowedError):  # never a provider's call: the API's own envelope
            super().write_error(status_code, **kwargs)
            return
        self.clear()
        self.set_header("X-Request-ID", self.request_id)
        for name, value in {**self._rate_headers, **error.headers}.items():
            self.set_header(name, value)
        if self.in_flight.draining or self._close_after_answer:
            self.set_header("Connection", "close")
        status = self.rejection_status(error)
        status = 503 if status >= 500 else status  # nothing was applied; the provider retries later
        self.set_status(status)
        self.write_rejection(status, error)


class AlipayNotifyHandler(NotifyHandler):
    channel = "alipay"

    @operation("receiveAlipayNotification", tag="payments", summary="Alipay's payment notification",
               content="custom", form=AlipayNotification, form_media="application/x-www-form-urlencoded",
               replies={200: ("text/plain", AlipayAnswer), 400: ("text/plain", Literal["failure"]),
                        **{status: ("text/plain", Literal["failure"]) for status in PROVIDER_ERRORS}, **ENVELOPE_405})
    async def post(self) -> None:
        """``success`` once the payment is applied (now or before); ``failure`` (200) when it does not verify."""
        await self.receive()
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("success")

    def rejection_status(self, error: AppError) -> int:
        if isinstance(error, NotificationRejectedError):
            try:  # a body without the declared fields is no notification at all: 400; one that does not check out, 200
                form = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
            except (UnicodeDecodeError, ValueError):
                return 400
            return 200 if ALIPAY_REQUIRED <= set(form) else 400
        return error.status

    def write_rejection(self, status: int, error: AppError) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("failure")


class WechatNotifyHandler(NotifyHandler):
    channel = "wechat"

    @operation("receiveWechatPayNotification", tag="payments", summary="WeChat Pay's (v3) payment notification",
               content="custom", body=None, form=WechatNotification, form_media="application/json",
               headers=WechatSignatureHeaders,
               replies={204: (None, None), 400: ("application/json", WechatFailure),
                        **{status: ("application/json", WechatFailure) for status in PROVIDER_ERRORS}, **ENVELOPE_405})
    async def post(self) -> None:
        """204 once the payment is applied (now or before); 400 in WeChat's format when it does not verify."""
        await self.receive()
        self.set_status(204)
        self.finish()

    def rejection_status(self, error: AppError) -> int:
        return 400 if isinstance(error, NotificationRejectedError) else error.status

    def write_rejection(self, status: int, error: AppError) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        message = "the notification does not check out" if isinstance(error, NotificationRejectedError) \
            else "try again later"
        self.finish({"code": "FAIL", "message": message})


routes = [
    (r"/api/v1/vip/plans", PlansHandler),
    (r"/api/v1/vip/orders", OrdersHandler),
    (rf"/api/v1/vip/orders/({ORDER_NO})", OrderHandler),
    (r"/api/v1/payments/alipay/notify", AlipayNotifyHandler),
    (r"/api/v1/payments/wechat/notify", WechatNotifyHandler),
]
