"""SMS codes and sessions: log in, refresh, log out."""
from __future__ import annotations

from typing import Any

from handlers.base import BaseHandler, require_fields
from services import sms_codes, tokens
from services.errors import InvalidParamsError
from services.phones import normalize_phone
from services.accounts import find_or_register, load_account
from services.profiles import owner_view


def token_payload(pair: tokens.TokenPair) -> dict[str, Any]:
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token, "token_type": "Bearer",
            "expires_in": pair.expires_in}


class SmsCodesHandler(BaseHandler):
    auth_required = False

    async def post(self) -> None:
        """Send a login code; the answer is the same whether or not the phone is registered."""
        body = self.json_body()
        require_fields(body, "phone")
        phone = normalize_phone(body["phone"])
        sent = await sms_codes.send_login_code(redis=self.redis, sms=self.sms, settings=self.settings_obj,
                                               phone=phone, client_ip=self.client_ip)
        self.limit_headers(sent.limits)  # a rate-limited endpoint whatever SWIPER_RATE_LIMIT_ENABLED says
        self.ok({"resend_after": sent.resend_after, "expires_in": sent.expires_in})


class SessionsHandler(BaseHandler):
    auth_required = False
    rate_limit_scope = "verify"  # code guessing: 10 a minute per IP, failing closed without Redis

    async def post(self) -> None:
        """Log in with phone + code, registering the phone on first login."""
        body = self.json_body()
        require_fields(body, "phone", "code")
        phone = normalize_phone(body["phone"])
        verified = await sms_codes.verify_login_code(redis=self.redis, settings=self.settings_obj, phone=phone,
                                                     code=body["code"])
        try:
            user_id, is_new = await find_or_register(phone=phone)
            account = await load_account(redis=self.redis, settings=self.settings_obj, user_id=user_id)
            pair = await tokens.start_session(redis=self.redis, settings=self.settings_obj, user_id=user_id)
            profile = await owner_view(account, self.settings_obj)
        except Exception:
            await sms_codes.restore_login_code(redis=self.redis, verified=verified)
            raise
        self.user_id = user_id
        self.ok({**token_payload(pair), "is_new_user": is_new, "user": profile})


class CurrentSessionHandler(BaseHandler):
    auth_required = False  # PUT presents a refresh token in the body; DELETE authenticates itself

    async def put(self) -> None:
        """Rotate: a used refresh token is revoked; presenting it again ends the whole session."""
        body = self.json_body()
        require_fields(body, "refresh_token")
        if not isinstance(body["refresh_token"], str):
            raise InvalidParamsError.for_fields({"refresh_token": "must be a string"})
        self.user_id, pair = await tokens.rotate_session(redis=self.redis, settings=self.settings_obj,
                                                         refresh_token=body["refresh_token"])
        self.ok(token_payload(pair))

    async def delete(self) -> None:
        """Log out this device only, at once in every process."""
        await self.authenticate()
        assert self.claims is not None
        await tokens.end_session(redis=self.redis, settings=self.settings_obj, claims=self.claims)
        self.ok(None)


routes = [
    (r"/api/v1/sms-codes", SmsCodesHandler),
    (r"/api/v1/sessions", SessionsHandler),
    (r"/api/v1/sessions/current", CurrentSessionHandler),
]
