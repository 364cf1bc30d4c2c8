"""Payment settings refuse a half-configured channel; the Alipay answer scan finds the exact signed text."""
from __future__ import annotations

import json

import pytest

from conf import SettingsError, load_settings
from services.payments.alipay import signed_content
from tests.payments.conftest import payment_settings


@pytest.fixture
def complete(tmp_path, app_keys, alipay_stub, wechat_stub) -> dict[str, str]:
    values = payment_settings("https://api.example.com", tmp_path, app_keys, alipay_stub, wechat_stub)
    values["alipay_gateway"] = "https://openapi.alipay.com/gateway.do"
    values["wechat_gateway"] = "https://api.mch.weixin.qq.com"
    return {f"SWIPER_{name.upper()}": str(value) for name, value in values.items()}


def test_purchases_are_off_by_default():
    assert load_settings({}).enabled_channels == ()


def test_a_complete_configuration_loads_in_prod(complete):
    prod = {**complete, "SWIPER_ENV": "prod", "SWIPER_JWT_SECRET": "x" * 40, "SWIPER_SMS_BACKEND": "aliyun",
            "SWIPER_ALIYUN_ACCESS_KEY_ID": "k", "SWIPER_ALIYUN_ACCESS_KEY_SECRET": "s"}
    assert load_settings(prod).enabled_channels == ("alipay", "wechat")


@pytest.mark.parametrize("variable", ["SWIPER_ALIPAY_APP_ID", "SWIPER_ALIPAY_SELLER_ID",
                                      "SWIPER_ALIPAY_PRIVATE_KEY_FILE", "SWIPER_ALIPAY_PUBLIC_KEY_FILE",
                                      "SWIPER_ALIPAY_NOTIFY_URL", "SWIPER_WECHAT_MCH_ID", "SWIPER_WECHAT_APIV3_KEY",
                                      "SWIPER_WECHAT_PRIVATE_KEY_FILE", "SWIPER_WECHAT_CERT_SERIAL",
                                      "SWIPER_WECHAT_PLATFORM_PUBLIC_KEY_FILE", "SWIPER_WECHAT_NOTIFY_URL"])
def test_an_enabled_channel_missing_a_setting_is_refused_by_name(complete, variable):
    with pytest.raises(SettingsError, match=variable):
        load_settings({**complete, variable: ""})


@pytest.mark.parametrize("variable, value", [
    ("SWIPER_ALIPAY_PRIVATE_KEY_FILE", "/nonexistent/key.pem"), ("SWIPER_WECHAT_APIV3_KEY", "short"),
    ("SWIPER_PAYMENT_CHANNELS", "alipay,paypal"), ("SWIPER_ALIPAY_GATEWAY", "http://gateway.example.com/"),
    ("SWIPER_WECHAT_GATEWAY", "ftp://127.0.0.1"), ("SWIPER_WECHAT_NOTIFY_URL", "not a url")])
def test_bad_payment_values_are_refused_by_name(complete, variable, value):
    with pytest.raises(SettingsError, match=variable):
        load_settings({**complete, variable: value})


def test_prod_wants_https_notify_urls(complete):
    prod = {**complete, "SWIPER_ENV": "prod", "SWIPER_JWT_SECRET": "x" * 40, "SWIPER_SMS_BACKEND": "aliyun",
            "SWIPER_ALIYUN_ACCESS_KEY_ID": "k", "SWIPER_ALIYUN_ACCESS_KEY_SECRET": "s",
            "SWIPER_ALIPAY_NOTIFY_URL": "http://api.example.com/api/v1/payments/alipay/notify"}
    with pytest.raises(SettingsError, match="SWIPER_ALIPAY_NOTIFY_URL"):
        load_settings(prod)


def test_the_signed_text_is_found_exactly_even_with_braces_in_strings():
    inner = '{"code":"10000","msg":"a } { \\" tricky","nested":{"list":[{"a":"}"}]},"x":"alipay_trade_query_response"}'
    text = '{"note":"alipay_trade_query_response {","alipay_trade_query_response" : ' + inner + ',"sign":"SIG"}'
    assert signed_content(text, "alipay_trade_query_response") == (inner, "SIG")
    assert json.loads(inner)["msg"] == 'a } { " tricky'
    with pytest.raises(ValueError):
        signed_content('{"error_response":{"code":"40002"}}', "alipay_trade_query_response")
