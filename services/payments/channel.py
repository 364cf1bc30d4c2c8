"""The protocol every payment provider implements, and what the rest of the package learns from one."""
from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import certifi
from tornado.httpclient import AsyncHTTPClient

from conf import Settings
from models import VipOrder
from services.errors import InvalidParamsError

log = logging.getLogger("swiper.payments")
TradeKind = Literal["paid", "refunded", "closed", "pending", "missing", "ignored"]


@dataclass(frozen=True)
class TradeEvent:
    """What a verified notification or a verified query answer says about one of our orders.

    ``amount_fen`` is the trade's total; ``refund_fen`` what a refund gave back. ``raw`` is the text as the
    provider sent it, kept on the order for bookkeeping and disputes.
    """

    kind: TradeKind
    order_no: str
    trade_no: str | None = None
    amount_fen: int | None = None
    refund_fen: int = 0
    raw: str = ""
    detail: str = ""


class PaymentChannel(Protocol):
    name: str

    async def start(self, order: VipOrder, subject: str) -> Any:
        """What the client's payment SDK needs for this order (Alipay: the signed order string; WeChat: the
        APP pay fields). Raises ``UpstreamError`` when the provider fails."""
        ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeEvent:
        """Verify a notification as the provider specifies; ``NotificationRejectedError`` when it does not check
        out. Pure CPU (one RSA verification, maybe one AES-GCM decryption), well under a millisecond."""
        ...

    async def query(self, order_no: str) -> TradeEvent:
        """The trade's state at the provider, from a verified answer (``missing``: the provider has no such trade)."""
        ...

    async def close(self, order_no: str) -> bool:
        """Close the trade so it can no longer be paid; False when the provider refused because it was paid."""
        ...

    async def aclose(self) -> None:
        ...


class PaymentChannels:
    """The channels this process has enabled (``SWIPER_PAYMENT_CHANNELS``), built once at start-up."""

    def __init__(self, channels: Mapping[str, PaymentChannel]) -> None:
        self._channels = dict(channels)

    def __contains__(self, name: str) -> bool:
        return name in self._channels

    def names(self) -> tuple[str, ...]:
        return tuple(self._channels)

    def get(self, name: str) -> PaymentChannel:
        """The enabled channel, or 1002 naming ``channel``."""
        channel = self._channels.get(name)
        if channel is None:
            raise InvalidParamsError.for_fields({"channel": "this payment channel is not enabled"})
        return channel

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.aclose()


def build_channels(settings: Settings) -> PaymentChannels:
    """Load each enabled channel's keys now, so a bad key file stops start-up instead of the first purchase."""
    from services.payments.alipay import AlipayChannel
    from services.payments.wechat import WechatChannel
    kinds = {"alipay": AlipayChannel, "wechat": WechatChannel}
    return PaymentChannels({name: kinds[name](settings) for name in settings.enabled_channels})


def read_pem(path: str, kind: Literal["PRIVATE KEY", "PUBLIC KEY"]) -> str:
    """A key file's PEM text. Alipay's and WeChat's consoles hand out bare base64 keys as often as PEM files, so
    a bare key is wrapped in the PEM armour it lacks."""
    text = Path(path).read_text().strip()
    if "-----BEGIN" in text:
        return text + "\n"
    body = "".join(text.split())
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


class ProviderHttp:
    """One long-lived ``AsyncHTTPClient`` per provider, its TLS context built at start-up (building it lazily
    would cost ~30 ms of the loop on the first call)."""

    def __init__(self, gateway: str, timeout: float) -> None:
        self.timeout = timeout
        self.ssl: ssl.SSLContext | None = None
        if gateway.startswith("https://"):
            self.ssl = ssl.create_default_context()
            self.ssl.load_verify_locations(cafile=certifi.where())
        self._client: AsyncHTTPClient | None = None

    def client(self) -> AsyncHTTPClient:
        if self._client is None:  # created inside the running loop, on first use
            self._client = AsyncHTTPClient(force_instance=True, max_clients=20, max_body_size=1024 * 1024)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def fen_from_yuan(text: str) -> int | None:
    """``"30.00"`` → 3000; anything that is not an exact amount in fen → None."""
    from decimal import Decimal, InvalidOperation
    try:
        value = Decimal(text) * 100
    except (InvalidOperation, TypeError):
        return None
    if not value.is_finite() or value != value.to_integral_value() or value < 0:
        return None
    return int(value)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def local_time(moment: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """A naive-UTC column value in the given zone (providers want Asia/Shanghai wall-clock times)."""
    return moment.replace(tzinfo=dt.timezone.utc).astimezone(tz)
