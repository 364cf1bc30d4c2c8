"""Settings: one validated object; a bad value stops start-up with one line naming the variable."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conf import DEFAULT_JWT_SECRET, Settings, SettingsError, load_settings
from tests.support.processes import ROOT


def test_defaults_load():
    settings = load_settings({})
    assert settings.access_token_ttl == 900 and settings.refresh_token_ttl == 30 * 24 * 3600
    assert settings.sms_code_ttl == 300 and settings.daily_like_limit == 100 and settings.timezone == "Asia/Shanghai"


def test_environment_overrides():
    settings = load_settings({"SWIPER_SMS_CODE_TTL": "120", "SWIPER_RATE_LIMIT_ENABLED": "false",
                              "SWIPER_REDIS_URL": "redis://10.0.0.1:6380/2", "SWIPER_TIMEZONE": "UTC"})
    assert settings.sms_code_ttl == 120 and settings.rate_limit_enabled is False
    assert settings.redis_url == "redis://10.0.0.1:6380/2" and settings.timezone == "UTC"


@pytest.mark.parametrize("name, value", [
    ("SWIPER_SMS_CODE_TTL", "abc"), ("SWIPER_SMS_CODE_TTL", "-5"), ("SWIPER_DAILY_LIKE_LIMIT", "0"),
    ("SWIPER_RATE_LIMIT_ENABLED", "maybe"), ("SWIPER_SMS_BACKEND", "pigeon"), ("SWIPER_TIMEZONE", "Mars/Base"),
    ("SWIPER_MYSQL_URL", "postgres://x@y/z"), ("SWIPER_MYSQL_URL", "mysql://host-only"),
    ("SWIPER_REDIS_URL", "http://x"), ("SWIPER_ALIYUN_SMS_PROTOCOL", "ftp"), ("SWIPER_ENV", "staging"),
    ("SWIPER_ALIYUN_SMS_ENDPOINT", "http://x/y"), ("SWIPER_STORAGE_BACKEND", "s3"), ("SWIPER_JWT_SECRET", "short"),
])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(SettingsError) as err:
        load_settings({name: value})
    assert name in str(err.value)


def test_prod_refuses_default_secret_and_console_sms():
    secret = "a-real-production-secret-of-sufficient-length"
    with pytest.raises(SettingsError, match="SWIPER_JWT_SECRET"):
        load_settings({"SWIPER_ENV": "prod", "SWIPER_SMS_BACKEND": "aliyun", "SWIPER_ALIYUN_ACCESS_KEY_ID": "k",
                       "SWIPER_ALIYUN_ACCESS_KEY_SECRET": "s"})
    assert DEFAULT_JWT_SECRET
    with pytest.raises(SettingsError, match="SWIPER_SMS_BACKEND"):
        load_settings({"SWIPER_ENV": "prod", "SWIPER_JWT_SECRET": secret})
    prod = load_settings({"SWIPER_ENV": "prod", "SWIPER_JWT_SECRET": secret, "SWIPER_SMS_BACKEND": "aliyun",
                          "SWIPER_ALIYUN_ACCESS_KEY_ID": "k", "SWIPER_ALIYUN_ACCESS_KEY_SECRET": "s"})
    assert prod.is_prod


def test_server_stops_with_one_line():
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--port", "1"], cwd=ROOT,
                            env={"SWIPER_SMS_CODE_TTL": "soon", "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SWIPER_SMS_CODE_TTL" in lines[0], result.stderr


def readme_settings() -> dict[str, str | None]:
    """README's settings table: variable -> its default as written (None where the default is described in words)."""
    table: dict[str, str | None] = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`SWIPER_"):
            continue
        names = re.findall(r"`(SWIPER_[A-Z0-9_]+)`", cells[0])
        defaults = re.findall(r"`([^`]*)`", cells[1])
        if cells[1] == "—":
            defaults = [""] * len(names)
        if len(defaults) != len(names):
            defaults = [None] * len(names)  # described in words ("a development value", "<repo>/var/media")
        table.update(zip(names, defaults))
    return table


def test_readme_lists_every_setting_with_its_default():
    """The README's table and the Settings class say the same (issue 11: names and defaults from one source)."""
    documented = readme_settings()
    fields = {f"SWIPER_{name.upper()}": info.default for name, info in Settings.model_fields.items()}
    assert set(documented) == set(fields), {"undocumented": set(fields) - set(documented),
                                            "not settings": set(documented) - set(fields)}
    for variable, written in documented.items():
        if written is None:
            continue
        written = written.replace("<repo>", str(ROOT))
        default = fields[variable]
        if isinstance(default, bool):
            assert written == str(default).lower(), variable
        elif isinstance(default, (int, float)):
            assert float(written) == default, variable
        else:
            assert written == default, variable
