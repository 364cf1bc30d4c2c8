"""Swiper's settings: one pydantic-settings class, defaults overridden by ``SWIPER_*`` environment variables.

One frozen object, validated once at start-up. A bad value raises ``SettingsError`` whose message names
the variable, so ``server.py`` can stop with one readable line instead of a traceback.
"""
from __future__ import annotations

import contextvars
import os
import re
import sys
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, Field, NonNegativeFloat, PositiveFloat, PositiveInt, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_JWT_SECRET = "dev-only-secret-change-me-please-0123456789"
DEFAULT_MEDIA_DIR = str(Path(__file__).resolve().parents[1] / "var" / "media")
ENV_PREFIX = "SWIPER_"


class SettingsError(ValueError):
    """A ``SWIPER_*`` variable holds a value Swiper cannot run with."""


@dataclass(frozen=True)
class MySQLURL:
    host: str
    port: int
    user: str
    password: str
    database: str


def parse_mysql_url(url: str) -> MySQLURL:
    parts = urlsplit(url)
    if parts.scheme != "mysql" or not parts.hostname or not parts.path.strip("/"):
        raise ValueError("expected mysql://user:pass@host:port/db")
    return MySQLURL(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.strip("/"),
    )


def _matching(pattern: str, expected: str) -> AfterValidator:
    def check(raw: str) -> str:
        if not re.fullmatch(pattern, raw):
            raise ValueError(f"expected {expected}")
        return raw
    return AfterValidator(check)


def _timezone(raw: str) -> str:
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone") from None
    return raw


def _mysql_url(raw: str) -> str:
    parse_mysql_url(raw)
    return raw


MySQLUrl = Annotated[str, AfterValidator(_mysql_url)]
RedisUrl = Annotated[str, _matching(r"rediss?://[^/\s?]+(/\d+)?/?(\?\S*)?", "redis://host:port/db")]
Endpoint = Annotated[str, _matching(r"[A-Za-z0-9.-]+(:\d{1,5})?", "host[:port]")]
MediaUrl = Annotated[str, _matching(r"(https?://[A-Za-z0-9.-]+(:\d{1,5})?)?(/[A-Za-z0-9._~-]+)+/?",
                                    "a path like /media or an http(s) URL with a path"),
                     AfterValidator(lambda raw: raw.rstrip("/"))]
TimeZone = Annotated[str, AfterValidator(_timezone)]
PAYMENT_CHANNELS = ("alipay", "wechat")


def _channels(raw: str) -> str:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in PAYMENT_CHANNELS]
    if unknown:
        raise ValueError(f"unknown channel {unknown[0]!r}; expected a comma-separated subset of alipay,wechat")
    return ",".join(dict.fromkeys(names))


def _gateway(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an https:// URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("http:// only for a loopback address; use https://")
    return raw.rstrip("/") if parts.path in ("", "/") else raw


def _is_loopback(host: str) -> bool:
    return host == "localhost" or host == "::1" or re.fullmatch(r"127\.\d+\.\d+\.\d+", host) is not None


PaymentChannels = Annotated[str, AfterValidator(_channels)]
Gateway = Annotated[str, AfterValidator(_gateway)]


class Settings(BaseSettings):
    """Every setting with its default; README's table lists the same names (a test compares them)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid", str_strip_whitespace=True,
                                      case_sensitive=False)

    env: Literal["dev", "test", "prod"] = "dev"
    host: str = "127.0.0.1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    mysql_url: MySQLUrl = "mysql://swiper:swiper@127.0.0.1:3306/swiper"
    mysql_pool_size: PositiveInt = 20
    mysql_connect_timeout: PositiveFloat = 2.0
    mysql_query_timeout: PositiveFloat = 5.0
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "swiper:"
    redis_pool_size: PositiveInt = 50
    redis_timeout: PositiveFloat = 2.0
    redis_cluster: bool = False  # SWIPER_REDIS_URL is then a startup node of a Redis Cluster (db 0)
    redis_slot_guard: bool = False  # refuse any call whose keys span two hash slots, even on one Redis (tests)
    # read-committed: InnoDB then takes no gap locks, like TiDB; the tests run the mutual-like race under both
    mysql_isolation: Literal["repeatable-read", "read-committed"] = "repeatable-read"
    mysql_replica_urls: str = ""  # comma-separated mysql:// URLs for lag-tolerant reads
    read_your_writes_window: NonNegativeFloat = 5.0  # seconds a user's reads stay on the primary after a write
    replica_max_lag: NonNegativeFloat = 5.0  # seconds of replication lag past which a replica is skipped

    jwt_secret: str = Field(DEFAULT_JWT_SECRET, min_length=32)
    access_token_ttl: PositiveInt = 900
    refresh_token_ttl: PositiveInt = 30 * 24 * 3600

    sms_backend: Literal["aliyun", "console"] = "console"
    aliyun_access_key_id: str = ""
    aliyun_access_key_secret: str = ""
    aliyun_sms_sign_name: str = "Swiper"
    aliyun_sms_template_code: str = "SMS_000000"
    aliyun_sms_endpoint: Endpoint = "dysmsapi.aliyuncs.com"
    aliyun_sms_protocol: Literal["http", "https"] = "https"
    aliyun_sms_ca_file: str = ""
    sms_timeout: PositiveFloat = 3.0
    sms_code_ttl: PositiveInt = 300
    sms_max_attempts: PositiveInt = 5
    sms_cooldown: PositiveInt = 60
    sms_hour_limit: PositiveInt = 5
    sms_day_limit: PositiveInt = 10
    sms_ip_day_limit: PositiveInt = 20

    qiniu_access_key: str = ""
    qiniu_secret_key: str = ""
    qiniu_bucket: str = ""
    qiniu_domain: str = ""
    qiniu_up_host: str = "https://up.qiniup.com"
    qiniu_rs_host: Gateway = "https://rs.qiniuapi.com"  # the management API, for deleting objects
    storage_backend: Literal["local", "qiniu"] = "local"
    storage_timeout: PositiveFloat = 5.0  # seconds for one upload to Qiniu (connect + send + answer)
    media_dir: str = DEFAULT_MEDIA_DIR  # the local backend's files
    media_url: MediaUrl = "/media"  # the local backend's public URL base (a path, or an absolute URL)

    rate_limit_enabled: bool = True
    rate_limit_window: PositiveInt = 60
    rate_limit_anonymous: PositiveInt = 60
    rate_limit_user: PositiveInt = 120
    rate_limit_vip: PositiveInt = 300
    rate_limit_verify: PositiveInt = 10
    rate_limit_notify: PositiveInt = 1000  # payment notifications per window per client IP
    timezone: TimeZone = "Asia/Shanghai"
    daily_like_limit: PositiveInt = 100
    rewind_window: PositiveInt = 300
    location_cells_per_hour: PositiveInt = 12  # distinct cells a position or passport may enter per sliding hour

    message_rate_limit: PositiveInt = 30  # chat messages per minute per user (on whatever rate_limit_enabled says)
    ws_ping_interval: PositiveFloat = 25.0  # seconds between pings of each WebSocket (below nginx's read timeout)
    payment_channels: PaymentChannels = ""  # empty: purchases off (plans are still listed)
    order_ttl: PositiveInt = 1800
    order_query_after: PositiveInt = 300
    payment_timeout: PositiveFloat = 5.0  # seconds for one call to Alipay or WeChat Pay
    alipay_app_id: str = ""
    alipay_seller_id: str = ""
    alipay_private_key_file: str = ""  # ours (the app private key), PEM
    alipay_public_key_file: str = ""  # Alipay's public key, PEM
    alipay_gateway: Gateway = "https://openapi.alipay.com/gateway.do"
    alipay_notify_url: str = ""
    wechat_app_id: str = ""
    wechat_mch_id: str = ""
    wechat_private_key_file: str = ""  # ours (the merchant API certificate's key), PEM
    wechat_cert_serial: str = ""
    wechat_apiv3_key: str = ""
    wechat_platform_public_key_file: str = ""
    wechat_platform_public_key_id: str = ""
    wechat_gateway: Gateway = "https://api.mch.weixin.qq.com"
    wechat_notify_url: str = ""

    max_json_body: PositiveInt = 64 * 1024
    profile_cache_ttl: PositiveInt = 3600
    local_cache_ttl: NonNegativeFloat = 10.0  # seconds a process keeps revocations and accounts it read; 0: off
    drain_timeout: PositiveFloat = 10.0
    job_period: PositiveInt = 60
    event_loop: Literal["asyncio", "uvloop"] = "uvloop"
    slow_callback_ms: int = 0  # > 0: asyncio debug mode, logging every loop step slower than this

    @property
    def mysql(self) -> MySQLURL:
        return parse_mysql_url(self.mysql_url)

    @property
    def replicas(self) -> tuple[MySQLURL, ...]:
        return tuple(parse_mysql_url(url.strip()) for url in self.mysql_replica_urls.split(",") if url.strip())

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"

    @property
    def enabled_channels(self) -> tuple[str, ...]:
        return tuple(name for name in self.payment_channels.split(",") if name)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some values changed, validated like the original (tests use it)."""
        try:
            settings = type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise _settings_error(exc, changes) from None
        _check_consistency(settings)
        return settings

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what ``load_settings`` passes in: its overrides, then the environment it was given."""
        return init_settings, _MappingSource(settings_cls, _environment.get())


class _MappingSource(EnvSettingsSource):
    """The environment source of pydantic-settings, reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}


# The mapping the ``Settings`` being built reads: pydantic-settings builds its sources inside ``__init__``, so
# ``load_settings`` hands its environment over through this variable for the duration of one build.
_environment: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("swiper_settings_environ",
                                                                                  default={})


def _settings_error(exc: ValidationError, given: Mapping[str, Any], environ: Mapping[str, str] | None = None
                    ) -> SettingsError:
    """One line naming the first bad variable and what was wrong with it."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    variable = ENV_PREFIX + name.upper()
    if error["type"] == "extra_forbidden":
        return SettingsError(f"unknown settings: {name}")
    raw = given.get(name, (environ or {}).get(variable))
    message = str(error["msg"]).removeprefix("Value error, ")
    message = {"string_too_short": "must be at least 32 characters"}.get(error["type"], message)
    return SettingsError(f"{variable}={raw!r}: {message}")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings; ``overrides`` win over the environment (tests use them)."""
    environ = os.environ if environ is None else environ
    relevant = {name: value for name, value in environ.items() if name.upper().startswith(ENV_PREFIX)
                and name[len(ENV_PREFIX):].lower() in Settings.model_fields}
    token = _environment.set(relevant)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise _settings_error(exc, overrides, relevant) from None
    finally:
        _environment.reset(token)
    _check_consistency(settings)
    return settings


def load_settings_or_exit(program: str) -> Settings:
    """For entry points: a bad setting ends the process with one line naming the variable (exit status 2)."""
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"{program}: bad setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _check_consistency(s: Settings) -> None:
    for url in filter(None, (u.strip() for u in s.mysql_replica_urls.split(","))):
        try:
            parse_mysql_url(url)
        except ValueError:
            raise SettingsError(f"SWIPER_MYSQL_REPLICA_URLS: {url!r}: expected mysql://user:pass@host:port/db") from None
    database = re.search(r"//[^/]+/(\d+)", s.redis_url)
    if s.redis_cluster and database and database.group(1) != "0":
        raise SettingsError("SWIPER_REDIS_URL: a Redis Cluster has only db 0")
    if s.sms_backend == "aliyun" and not (s.aliyun_access_key_id and s.aliyun_access_key_secret):
        raise SettingsError("SWIPER_ALIYUN_ACCESS_KEY_ID: the aliyun SMS backend needs an access key id and secret")
    if s.storage_backend == "qiniu" and not (s.qiniu_access_key and s.qiniu_secret_key and s.qiniu_bucket
                                             and s.qiniu_domain):
        raise SettingsError("SWIPER_STORAGE_BACKEND: qiniu needs SWIPER_QINIU_ACCESS_KEY, _SECRET_KEY, _BUCKET, _DOMAIN")
    _check_payment_channels(s)
    if s.is_prod:
        if s.jwt_secret == DEFAULT_JWT_SECRET:
            raise SettingsError("SWIPER_JWT_SECRET: the default secret is refused when SWIPER_ENV=prod")
        if s.sms_backend == "console":
            raise SettingsError("SWIPER_SMS_BACKEND: the console backend is refused when SWIPER_ENV=prod")


_CHANNEL_NEEDS = {
    "alipay": ("alipay_app_id", "alipay_seller_id", "alipay_private_key_file", "alipay_public_key_file",
               "alipay_notify_url"),
    "wechat": ("wechat_app_id", "wechat_mch_id", "wechat_private_key_file", "wechat_cert_serial",
               "wechat_apiv3_key", "wechat_platform_public_key_file", "wechat_notify_url"),
}


def _check_payment_channels(s: Settings) -> None:
    """An enabled channel needs its ids, keys and notify URL; key files must exist (in prod and elsewhere, since
    a half-configured channel would take money it cannot confirm)."""
    for channel in s.enabled_channels:
        for name in _CHANNEL_NEEDS[channel]:
            value = getattr(s, name)
            variable = ENV_PREFIX + name.upper()
            if not value:
                raise SettingsError(f"{variable}: the {channel} channel (SWIPER_PAYMENT_CHANNELS) needs it")
            if name.endswith("_file") and not os.path.isfile(value):
                raise SettingsError(f"{variable}={value!r}: no such file")
            if name.endswith("_notify_url") and not re.fullmatch(r"https?://[^\s/]+/\S*", value):
                raise SettingsError(f"{variable}={value!r}: expected the public https:// URL of the notify endpoint")
        if channel == "wechat" and len(s.wechat_apiv3_key.encode()) != 32:
            raise SettingsError("SWIPER_WECHAT_APIV3_KEY: must be exactly 32 bytes")
    if s.is_prod:
        for channel in s.enabled_channels:
            url = getattr(s, f"{channel}_notify_url")
            if not url.startswith("https://"):
                raise SettingsError(f"SWIPER_{channel.upper()}_NOTIFY_URL: must be https:// when SWIPER_ENV=prod")
