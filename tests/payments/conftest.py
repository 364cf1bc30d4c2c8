"""Payments against the two provider stubs: keys made for the run, an app with both channels on, and helpers.

The app here is a second in-process app on the run's database and Redis (the suite's main app has purchases
off, as by default); its notify URLs point at itself, so a stub's notifications arrive at the real endpoints.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from handlers.base import InFlight
from models import User, VipOrder
from server import MAX_UPLOAD_BODY, make_app
from services.payments import build_channels
from services.redis_client import build_redis
from services.sms import build_sms_sender
from tests.stubs.alipay import AlipayStub, new_key, private_pem, public_pem
from tests.stubs.wechatpay import WechatPayStub
from tests.support.client import Client

ALIPAY_APP_ID, ALIPAY_SELLER_ID = "2021000000000001", "2088000000000001"
WECHAT_APP_ID, WECHAT_MCH_ID = "wx0000000000000001", "1900000001"
WECHAT_SERIAL = secrets.token_hex(20).upper()
APIV3_KEY = secrets.token_hex(16)  # 32 characters


@dataclass
class Keys:
    alipay_app: object
    wechat_merchant: object


@pytest.fixture(scope="session")
def app_keys() -> Keys:
    return Keys(new_key(), new_key())


@pytest.fixture(scope="session")
async def alipay_stub(app_keys: Keys) -> AlipayStub:
    stub = AlipayStub(app_id=ALIPAY_APP_ID, seller_id=ALIPAY_SELLER_ID,
                      app_public_key_pem=public_pem(app_keys.alipay_app))
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture(scope="session")
async def wechat_stub(app_keys: Keys) -> WechatPayStub:
    stub = WechatPayStub(app_id=WECHAT_APP_ID, mch_id=WECHAT_MCH_ID, merchant_serial=WECHAT_SERIAL,
                         merchant_public_key_pem=public_pem(app_keys.wechat_merchant), apiv3_key=APIV3_KEY)
    await stub.start()
    yield stub
    await stub.stop()


def payment_settings(base_url: str, keys_dir: Path, keys: Keys, alipay: AlipayStub, wechat: WechatPayStub) -> dict:
    """The settings that turn both channels on against the stubs, with notify URLs at ``base_url``."""
    files = {"alipay_app.pem": private_pem(keys.alipay_app), "alipay_public.pem": alipay.public_key_pem,
             "wechat_merchant.pem": private_pem(keys.wechat_merchant), "wechat_platform.pem": wechat.public_key_pem}
    for name, text in files.items():
        (keys_dir / name).write_text(text)
    return {"payment_channels": "alipay,wechat", "payment_timeout": 5.0,
            "alipay_app_id": ALIPAY_APP_ID, "alipay_seller_id": ALIPAY_SELLER_ID,
            "alipay_private_key_file": str(keys_dir / "alipay_app.pem"),
            "alipay_public_key_file": str(keys_dir / "alipay_public.pem"), "alipay_gateway": alipay.gateway,
            "alipay_notify_url": base_url + "/api/v1/payments/alipay/notify",
            "wechat_app_id": WECHAT_APP_ID, "wechat_mch_id": WECHAT_MCH_ID,
            "wechat_private_key_file": str(keys_dir / "wechat_merchant.pem"), "wechat_cert_serial": WECHAT_SERIAL,
            "wechat_apiv3_key": APIV3_KEY, "wechat_platform_public_key_file": str(keys_dir / "wechat_platform.pem"),
            "wechat_platform_public_key_id": wechat.key_id, "wechat_gateway": wechat.gateway,
            "wechat_notify_url": base_url + "/api/v1/payments/wechat/notify"}


@dataclass
class PayApp:
    url: str
    settings: object
    channels: object
    redis: object
    client: Client

    @property
    def alipay_notify(self) -> str:
        return self.url + "/api/v1/payments/alipay/notify"

    @property
    def wechat_notify(self) -> str:
        return self.url + "/api/v1/payments/wechat/notify"


@pytest.fixture(scope="session")
async def pay_app(settings, schema, redis, app_keys, alipay_stub, wechat_stub, tmp_path_factory) -> PayApp:
    sockets = bind_sockets(0, "127.0.0.1")
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    pay_settings = settings.replace(**payment_settings(url, tmp_path_factory.mktemp("keys"), app_keys, alipay_stub,
                                                       wechat_stub))
    app_redis, sms = build_redis(pay_settings), build_sms_sender(pay_settings)
    channels = build_channels(pay_settings)
    app = make_app(pay_settings, redis=app_redis, sms=sms, in_flight=InFlight(), payment_channels=channels)
    server = HTTPServer(app, max_body_size=MAX_UPLOAD_BODY)
    server.add_sockets(sockets)
    yield PayApp(url, pay_settings, channels, app_redis, Client(url))
    server.stop()
    await server.close_all_connections()
    await channels.aclose()
    await app_redis.aclose()
    await sms.aclose()


async def buy(pay_app: PayApp, token: str, plan: str = "gold-1m", channel: str = "alipay") -> dict:
    resp = await pay_app.client.post("/api/v1/vip/orders", {"plan": plan, "channel": channel}, token=token)
    assert resp.status == 200, resp.body
    return resp.data


async def order_row(order_no: str) -> VipOrder:
    return await VipOrder.aio_get(VipOrder.order_no == order_no)


async def user_row(user_id: int) -> User:
    return await User.aio_get(User.id == user_id)
