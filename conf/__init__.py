"""Swiper's settings: defaults overridden by ``SWIPER_*`` environment variables.

One frozen object, validated once at start-up. A bad value raises ``SettingsError`` whose message names
the variable, so ``server.py`` can stop with one readable line instead of a traceback.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_JWT_SECRET = "dev-only-secret-change-me-please-0123456789"
DEFAULT_MEDIA_DIR = str(Path(__file__).resolve().parents[1] / "var" / "media")


class SettingsError(ValueError):
    """A ``SWIPER_*`` variable holds a value Swiper cannot run with."""


@dataclass(frozen=True)
class MySQLURL:
    host: str
    port: int
    user: str
    password: str
    database: str


@dataclass(frozen=True)
class Settings:
    env: str = "dev"
    host: str = "127.0.0.1"
    log_level: str = "INFO"

    mysql_url: str = "mysql://swiper:swiper@127.0.0.1:3306/swiper"
    mysql_pool_size: int = 20
    mysql_connect_timeout: float = 2.0
    mysql_query_timeout: float = 5.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "swiper:"
    redis_pool_size: int = 50
    redis_timeout: float = 2.0

    jwt_secret: str = DEFAULT_JWT_SECRET
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600

    sms_backend: str = "console"
    aliyun_access_key_id: str = ""
    aliyun_access_key_secret: str = ""
    aliyun_sms_sign_name: str = "Swiper"
    aliyun_sms_template_code: str = "SMS_000000"
    aliyun_sms_endpoint: str = "dysmsapi.aliyuncs.com"
    aliyun_sms_protocol: str = "https"
    aliyun_sms_ca_file: str = ""
    sms_timeout: float = 3.0
    sms_code_ttl: int = 300
    sms_max_attempts: int = 5
    sms_cooldown: int = 60
    sms_hour_limit: int = 5
    sms_day_limit: int = 10
    sms_ip_day_limit: int = 20

    qiniu_access_key: str = ""
    qiniu_secret_key: str = ""
    qiniu_bucket: str = ""
    qiniu_domain: str = ""
    qiniu_up_host: str = "https://up.qiniup.com"
    storage_backend: str = "local"
    storage_timeout: float = 5.0      # seconds for one upload to Qiniu (connect + send + answer)
    media_dir: str = DEFAULT_MEDIA_DIR  # the local backend's files
    media_url: str = "/media"          # the local backend's public URL base (a path, or an absolute URL)

    rate_limit_enabled: bool = True
    rate_limit_window: int = 60
    rate_limit_anonymous: int = 60
    rate_limit_user: int = 120
    rate_limit_vip: int = 300
    rate_limit_verify: int = 10
    timezone: str = "Asia/Shanghai"
    daily_like_limit: int = 100
    rewind_window: int = 300

    max_json_body: int = 64 * 1024
    profile_cache_ttl: int = 3600
    local_cache_ttl: float = 10.0  # seconds a process keeps revocations and accounts it read; 0: off
    drain_timeout: float = 10.0
    job_period: int = 60
    event_loop: str = "uvloop"  # or asyncio (the standard loop)
    slow_callback_ms: int = 0  # > 0: asyncio debug mode, logging every loop step slower than this

    @property
    def mysql(self) -> MySQLURL:
        return parse_mysql_url(self.mysql_url)

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"


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


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _choice(*allowed: str) -> Callable[[str], str]:
    def check(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return raw
    return check


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def check(raw: str) -> Any:
        value = kind(raw)
        if value <= 0:
            raise ValueError("must be positive")
        return value
    return check


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def check(raw: str) -> Any:
        value = kind(raw)
        if not value >= 0:
            raise ValueError("must be 0 or more")
        return value
    return check


def _timezone(raw: str) -> str:
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone") from None
    return raw


def _redis_url(raw: str) -> str:
    if not re.fullmatch(r"rediss?://[^/\s]+(/\d+)?", raw):
        raise ValueError("expected redis://host:port/db")
    return raw


def _media_url(raw: str) -> str:
    if not re.fullmatch(r"(https?://[A-Za-z0-9.-]+(:\d{1,5})?)?(/[A-Za-z0-9._~-]+)+/?", raw):
        raise ValueError("expected a path like /media or an http(s) URL with a path")
    return raw.rstrip("/")


def _mysql_url(raw: str) -> str:
    parse_mysql_url(raw)
    return raw


def _endpoint(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d{1,5})?", raw):
        raise ValueError("expected host[:port]")
    return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    "env": _choice("dev", "test", "prod"),
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
    "mysql_url": _mysql_url,
    "redis_url": _redis_url,
    "sms_backend": _choice("aliyun", "console"),
    "aliyun_sms_endpoint": _endpoint,
    "aliyun_sms_protocol": _choice("http", "https"),
    "storage_backend": _choice("local", "qiniu"),
    "media_url": _media_url,
    "timezone": _timezone,
    "event_loop": _choice("asyncio", "uvloop"),
}


def _parser_for(f: dataclasses.Field) -> Callable[[str], Any]:
    if f.name in _PARSERS:
        return _PARSERS[f.name]
    if f.type == "bool":
        return _bool
    if f.type == "int" and f.name == "slow_callback_ms":
        return int
    if f.name == "local_cache_ttl":
        return _non_negative(float)
    if f.type == "int":
        return _positive(int)
    if f.type == "float":
        return _positive(float)
    return str


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings; ``overrides`` win over the environment (tests use them)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        name = "SWIPER_" + f.name.upper()
        if f.name in overrides:
            values[f.name] = overrides.pop(f.name)
            continue
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            values[f.name] = _parser_for(f)(raw.strip())
        except ValueError as exc:
            raise SettingsError(f"{name}={raw!r}: {exc}") from None
    if overrides:
        raise SettingsError(f"unknown settings: {', '.join(sorted(overrides))}")
    settings = Settings(**values)
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
    if len(s.jwt_secret) < 32:
        raise SettingsError("SWIPER_JWT_SECRET: must be at least 32 characters")
    if s.sms_backend == "aliyun" and not (s.aliyun_access_key_id and s.aliyun_access_key_secret):
        raise SettingsError("SWIPER_ALIYUN_ACCESS_KEY_ID: the aliyun SMS backend needs an access key id and secret")
    if s.storage_backend == "qiniu" and not (s.qiniu_access_key and s.qiniu_secret_key and s.qiniu_bucket
                                             and s.qiniu_domain):
        raise SettingsError("SWIPER_STORAGE_BACKEND: qiniu needs SWIPER_QINIU_ACCESS_KEY, _SECRET_KEY, _BUCKET, _DOMAIN")
    if s.is_prod:
        if s.jwt_secret == DEFAULT_JWT_SECRET:
            raise SettingsError("SWIPER_JWT_SECRET: the default secret is refused when SWIPER_ENV=prod")
        if s.sms_backend == "console":
            raise SettingsError("SWIPER_SMS_BACKEND: the console backend is refused when SWIPER_ENV=prod")
