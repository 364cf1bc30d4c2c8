"""scripts/manage.py: migrate is idempotent; grant-vip sets, expires and ends memberships."""
from __future__ import annotations

import asyncio
import datetime as dt
import sys

from services import tokens
from tests.conftest import server_env
from tests.support.processes import ROOT


async def manage(settings, *args: str) -> tuple[int, str]:
    env = {**server_env(settings), "PATH": "/usr/bin:/bin"}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "scripts" / "manage.py"), *args,
                                                cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode, out.decode()


async def test_migrate_twice_changes_nothing(settings, schema):
    code, out = await manage(settings, "migrate")
    assert code == 0 and "none (schema up to date)" in out, out
    code, out = await manage(settings, "migrate")
    assert code == 0 and "none" in out and "Warning" not in out, out


async def test_grant_vip_days_until_and_end(settings, client, user):
    code, out = await manage(settings, "grant-vip", user.phone, "3", "--days", "30")
    assert code == 0, out
    vip = (await client.get("/api/v1/vip", token=user.access_token)).data
    assert vip["level"] == 3 and "anylocation" in vip["permissions"]
    expires = dt.datetime.fromisoformat(vip["expires_at"])
    assert abs((expires - dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=30)) < dt.timedelta(minutes=5)

    code, out = await manage(settings, "grant-vip", user.phone, "2", "--until", "2020-01-01T00:00:00")
    assert code == 0, out
    assert (await client.get("/api/v1/vip", token=user.access_token)).data["level"] == 0

    await manage(settings, "grant-vip", user.phone, "1", "--until", "2099-01-01T08:00:00+08:00")
    vip = (await client.get("/api/v1/vip", token=user.access_token)).data
    assert vip["level"] == 1 and vip["expires_at"].startswith("2099-01-01T00:00:00")
    code, out = await manage(settings, "grant-vip", user.phone, "0", "--days", "1")
    assert code == 0 and (await client.get("/api/v1/vip", token=user.access_token)).data["level"] == 0


async def test_grant_vip_errors(settings, schema):
    code, out = await manage(settings, "grant-vip", "13000000001", "2", "--days", "1")
    assert code == 1 and "No user" in out
    code, out = await manage(settings, "grant-vip", "13000000001", "9", "--days", "1")
    assert code == 1 and "level" in out
    code, out = await manage(settings, "grant-vip", "not-a-phone", "1", "--days", "1")
    assert code == 1


async def test_migrate_writes_the_revocations_in_force_back_to_redis(settings, schema, client, user, redis):
    """A Redis that lost its data (or a release that renamed its keys) must not make a signed-out device's access
    token good again: migrate, which every deploy runs, rewrites what MySQL holds."""
    from services import keys
    signed_out = await client.delete("/api/v1/sessions/current", token=user.access_token)
    assert signed_out.status == 200, signed_out.body
    family = tokens.decode_access(settings, user.access_token).family
    await redis.delete(keys.auth_revoked(family))  # Redis forgot it
    await manage(settings, "migrate")
    assert await redis.exists(keys.auth_revoked(family)) == 1
    assert 0 < await redis.pttl(keys.auth_revoked(family)) <= settings.access_token_ttl * 1000 + 2000
    code, out = await manage(settings, "migrate")
    assert code == 0 and "session revocations in force written to Redis: " in out, out
