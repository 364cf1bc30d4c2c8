"""Logging in, code rules, refresh rotation with reuse detection, logout, and every kind of bad token."""
from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings

import jwt
import pytest

from services import keys, tokens
from services.errors import NotAuthenticatedError
from tests.conftest import JWT_SECRET, login, new_phone
from tests.support.client import assert_error

CODES, SESSIONS, CURRENT = "/api/v1/sms-codes", "/api/v1/sessions", "/api/v1/sessions/current"


async def request_code(client, sms_stub, phone: str) -> str:
    assert (await client.post(CODES, {"phone": phone}, headers={"X-Real-IP": "10.3.3.3"})).status == 200
    return sms_stub.last_code(phone)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_first_login_registers_then_logs_in(client, sms_stub, redis):
    phone = new_phone()
    first = await login(client, sms_stub, phone)
    body = first.body
    assert body["is_new_user"] is True and body["token_type"] == "Bearer" and body["expires_in"] == 900
    user = body["user"]
    assert user["phone"] == f"{phone[:3]}****{phone[-4:]}"
    assert user["nickname"] and user["vip"]["level"] == 0
    assert user["preferences"]["min_dating_age"] == 18 and user["preferences"]["max_dating_age"] == 45
    second = await login(client, sms_stub, phone, redis=redis)
    assert second.body["is_new_user"] is False and second.user_id == first.user_id


async def test_wrong_code_then_right_code(client, sms_stub):
    phone = new_phone()
    code = await request_code(client, sms_stub, phone)
    for _ in range(4):
        assert_error(await client.post(SESSIONS, {"phone": phone, "code": other_code(code)}), 400, "vcode_invalid")
    assert (await client.post(SESSIONS, {"phone": phone, "code": code})).status == 200


async def test_five_wrong_tries_burn_the_code(client, sms_stub):
    phone = new_phone()
    code = await request_code(client, sms_stub, phone)
    for _ in range(5):
        assert_error(await client.post(SESSIONS, {"phone": phone, "code": other_code(code)}), 400, "vcode_invalid")
    assert_error(await client.post(SESSIONS, {"phone": phone, "code": code}), 400, "vcode_invalid")


async def test_malformed_codes_are_1002_and_count_no_try(client, sms_stub):
    phone = new_phone()
    code = await request_code(client, sms_stub, phone)
    for bad in ["12345", "1234567", "abcdef", 123456, None, "12 456", "１２３４５６"]:
        resp = await client.post(SESSIONS, {"phone": phone, "code": bad})
        problem = "must be 6 digits" if isinstance(bad, str) else "must be a string"
        assert assert_error(resp, 400, "invalid_params")["data"]["fields"] == {"code": problem}
    assert (await client.post(SESSIONS, {"phone": phone, "code": code})).status == 200


async def test_code_is_single_use(client, sms_stub):
    phone = new_phone()
    code = await request_code(client, sms_stub, phone)
    assert (await client.post(SESSIONS, {"phone": phone, "code": code})).status == 200
    assert_error(await client.post(SESSIONS, {"phone": phone, "code": code}), 400, "vcode_invalid")


async def test_concurrent_logins_with_one_code_succeed_once(client, sms_stub):
    phone = new_phone()
    code = await request_code(client, sms_stub, phone)
    results = await asyncio.gather(*[client.post(SESSIONS, {"phone": phone, "code": code}) for _ in range(10)])
    assert sorted(r.status for r in results) == [200] + [400] * 9


async def request_another_code(client, sms_stub, redis, phone: str, unlike: str) -> str:
    """A new code for ``phone`` that differs from ``unlike`` (random codes repeat one time in a million: asking
    again, within the hour's five sends, makes the difference certain rather than likely)."""
    for _ in range(4):
        await redis.delete(keys.sms_cooldown(phone))
        code = await request_code(client, sms_stub, phone)
        if code != unlike:
            return code
    raise AssertionError(f"four codes in a row were {unlike}")


async def test_newer_code_replaces_older(client, sms_stub, redis):
    phone = new_phone()
    old = await request_code(client, sms_stub, phone)
    new = await request_another_code(client, sms_stub, redis, phone, unlike=old)
    assert_error(await client.post(SESSIONS, {"phone": phone, "code": old}), 400, "vcode_invalid")
    assert (await client.post(SESSIONS, {"phone": phone, "code": new})).status == 200


async def test_expired_code(client, sms_stub, redis):
    phone = new_phone()
    code = await request_code(client, sms_stub, phone)
    await redis.pexpire(keys.sms_code(phone), 1)
    await asyncio.sleep(0.01)
    assert_error(await client.post(SESSIONS, {"phone": phone, "code": code}), 400, "vcode_invalid")


async def test_code_for_another_phone_does_not_work(client, sms_stub, redis):
    a, b = new_phone(), new_phone()
    code = await request_code(client, sms_stub, a)
    b_code = await request_another_code(client, sms_stub, redis, b, unlike=code)
    assert_error(await client.post(SESSIONS, {"phone": b, "code": code}), 400, "vcode_invalid")
    assert (await client.post(SESSIONS, {"phone": b, "code": b_code})).status == 200  # b's own code still works
    assert (await client.post(SESSIONS, {"phone": a, "code": code})).status == 200


@pytest.mark.parametrize("body", [{}, {"phone": "13800138000"}, {"code": "123456"},
                                  {"phone": "13800138000", "code": "123456", "extra": True}])
async def test_login_field_errors(client, body):
    assert_error(await client.post(SESSIONS, body), 400, "invalid_params")


async def test_refresh_rotates_and_reuse_revokes_family(client, sms_stub):
    session = await login(client, sms_stub)
    rotated = await client.put(CURRENT, {"refresh_token": session.refresh_token})
    assert rotated.status == 200
    new = rotated.data
    assert set(new) >= {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (await client.get("/api/v1/profile", token=new["access_token"])).status == 200
    # the old refresh token again: reuse, the whole family ends, access tokens included
    assert_error(await client.put(CURRENT, {"refresh_token": session.refresh_token}), 401, "not_authenticated")
    assert_error(await client.put(CURRENT, {"refresh_token": new["refresh_token"]}), 401, "not_authenticated")
    assert_error(await client.get("/api/v1/profile", token=new["access_token"]), 401, "not_authenticated")
    assert_error(await client.get("/api/v1/profile", token=session.access_token), 401, "not_authenticated")


async def test_refresh_chain_keeps_working(client, sms_stub):
    session = await login(client, sms_stub)
    token = session.refresh_token
    for _ in range(3):
        resp = await client.put(CURRENT, {"refresh_token": token})
        assert resp.status == 200
        token = resp.data["refresh_token"]


async def test_refresh_field_errors(client, user):
    assert_error(await client.put(CURRENT, {}), 400, "invalid_params")
    for wrong_shape in (42, None, True, ["x"], {"token": "x"}):  # a body of the wrong shape is 1002, naming the field
        body = assert_error(await client.put(CURRENT, {"refresh_token": wrong_shape}), 400, "invalid_params")
        assert set(body["data"]["fields"]) == {"refresh_token"}
    for not_a_token in ("", "x", user.access_token):  # a string that is no refresh token is 1001
        assert_error(await client.put(CURRENT, {"refresh_token": not_a_token}), 401, "not_authenticated")


async def test_logout_ends_only_this_session(client, sms_stub, redis):
    phone = new_phone()
    first = await login(client, sms_stub, phone)
    second = await login(client, sms_stub, phone, redis=redis)
    resp = await client.delete(CURRENT, token=first.access_token)
    assert resp.status == 200 and resp.json == {"code": 0, "data": None}
    assert_error(await client.get("/api/v1/profile", token=first.access_token), 401, "not_authenticated")
    assert_error(await client.put(CURRENT, {"refresh_token": first.refresh_token}), 401, "not_authenticated")
    assert (await client.get("/api/v1/profile", token=second.access_token)).status == 200
    assert_error(await client.delete(CURRENT, token=first.access_token), 401, "not_authenticated")


def forge(claims: dict, key: str = JWT_SECRET, alg: str = "HS256") -> str:
    with warnings.catch_warnings():  # the right secret is short for HS512: that token must fail anyway
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=alg)


def unsigned(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_bad_tokens_are_401(client, user):
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    now = int(time.time())
    refresh_claims = jwt.decode(user.refresh_token, options={"verify_signature": False})
    bad = {
        "alg none": unsigned(claims),
        "wrong key": forge(claims, key="another-secret-that-is-long-enough-0123456789"),
        "expired": forge({**claims, "iat": now - 2000, "exp": now - 1000}),
        "refresh as access": user.refresh_token,
        "forged refresh typ": forge({**refresh_claims, "typ": "access", "exp": now + 60}, key="x" * 40),
        "no jti": forge({k: v for k, v in claims.items() if k != "jti"}),
        "no exp": forge({k: v for k, v in claims.items() if k != "exp"}),
        "HS512": forge(claims, alg="HS512"),
        "garbage": "not.a.token",
        "unknown user": forge({**claims, "sub": "999999999"}),
        "non-numeric sub": forge({**claims, "sub": "abc"}),
    }
    for name, token in bad.items():
        resp = await client.get("/api/v1/profile", token=token)
        assert resp.status == 401, name
        assert_error(resp, 401, "not_authenticated")
    for header in ["", "Bearer", "Basic abc", f"Token {user.access_token}"]:
        resp = await client.get("/api/v1/profile", headers={"Authorization": header} if header else {})
        assert_error(resp, 401, "not_authenticated")


async def test_a_remembered_token_is_refused_once_it_expires(client, user, settings):
    """decode_access remembers tokens it verified (tokens._verified) and must still refuse one past its exp."""
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    expires = int(time.time()) + 2
    token = forge({**claims, "jti": "short-lived", "exp": expires})  # signed with the run's key: a real token
    assert tokens.decode_access(settings, token).expires_at == expires
    assert (await client.get("/api/v1/profile", token=token)).status == 200
    while time.time() <= expires:  # real waiting, a second or two
        await asyncio.sleep(0.05)
    assert token in tokens._verified  # still remembered: the refusal must come from the remembered expiry
    body = assert_error(await client.get("/api/v1/profile", token=token), 401, "not_authenticated")
    assert "expired" in body["message"]
    with pytest.raises(NotAuthenticatedError, match="expired"):
        tokens.decode_access(settings, token)


async def test_concurrent_refreshes_with_one_token_rotate_once(client, sms_stub):
    """Only one rotation can win; the others are reuse of a spent token, which ends the session."""
    session = await login(client, sms_stub)
    results = await asyncio.gather(*[client.put(CURRENT, {"refresh_token": session.refresh_token})
                                     for _ in range(5)])
    assert sorted(r.status for r in results) == [200] + [401] * 4
    winner = next(r for r in results if r.status == 200).data
    assert_error(await client.get("/api/v1/profile", token=winner["access_token"]), 401, "not_authenticated")
