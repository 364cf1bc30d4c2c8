"""SMS codes and sessions: log in, refresh, log out."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, WithJsonSchema

from handlers.base import BaseHandler
from handlers.contract import Payload, RequestModel, operation
from handlers.shapes import Profile
from services import sms_codes, tokens
from services.accounts import check_session, find_or_register, load_account, refuse_banned
from services.errors import NotAuthenticatedError, NotFoundError
from services.phones import ACCEPTED_PATTERN, MAX_INPUT_LENGTH, normalize_phone
from services.profiles import owner_view


def _six_digits(code: str) -> str:
    if not re.fullmatch(r"[0-9]{6}", code):
        raise ValueError("must be 6 digits")
    return code


Phone = Annotated[str, AfterValidator(normalize_phone), WithJsonSchema({
    "type": "string", "minLength": 11, "maxLength": MAX_INPUT_LENGTH, "pattern": ACCEPTED_PATTERN,
    "description": "a mainland mobile; +86/0086, surrounding spaces and spaces or dashes between digits are accepted",
})]
SmsCode = Annotated[str, AfterValidator(_six_digits), WithJsonSchema({"type": "string", "pattern": "^[0-9]{6}$"})]


class SendCode(RequestModel):
    phone: Phone


class CodeSent(Payload):
    resend_after: int
    expires_in: int


class LogIn(RequestModel):
    phone: Phone
    code: SmsCode


class Refresh(RequestModel):
    refresh_token: str


class TokenPair(Payload):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class Session(TokenPair):
    is_new_user: bool
    user: Profile


def token_payload(pair: tokens.TokenPair) -> dict[str, Any]:
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token, "token_type": "Bearer",
            "expires_in": pair.expires_in}


class SmsCodesHandler(BaseHandler):
    auth_required = False

    @operation("sendLoginCode", tag="auth", summary="Send a login code", body=SendCode, response=CodeSent,
               errors=(429, 502))
    async def post(self, body: SendCode) -> None:
        """Send a login code; the answer is the same whether or not the phone is registered."""
        sent = await sms_codes.send_login_code(redis=self.redis, sms=self.sms, settings=self.settings_obj,
                                               phone=body.phone, client_ip=self.client_ip)
        self.limit_headers(sent.limits)  # a rate-limited endpoint whatever SWIPER_RATE_LIMIT_ENABLED says
        self.ok({"resend_after": sent.resend_after, "expires_in": sent.expires_in})


class SessionsHandler(BaseHandler):
    auth_required = False
    rate_limit_scope = "verify"  # code guessing: 10 a minute per IP, failing closed without Redis

    @operation("logIn", tag="auth", summary="Log in (registers on first login)", body=LogIn, response=Session,
               errors=(403,),
               links={"GetMyProfile": {"operationId": "getMyProfile"},
                      "GetUser": {"operationId": "getUser", "parameters": {"user_id": "$response.body#/data/user/id"}}})
    async def post(self, body: LogIn) -> None:
        """Log in with phone + code, registering the phone on first login."""
        verified = await sms_codes.verify_login_code(redis=self.redis, settings=self.settings_obj, phone=body.phone,
                                                     code=body.code)
        try:
            user_id, is_new = await find_or_register(phone=body.phone)
            account = await load_account(redis=self.redis, settings=self.settings_obj, user_id=user_id)
        except Exception:
            await sms_codes.restore_login_code(redis=self.redis, verified=verified)
            raise
        refuse_banned(account)  # the code is used up: a banned account does not get to try it again
        try:
            pair = await tokens.start_session(redis=self.redis, settings=self.settings_obj, user_id=user_id,
                                              gen=account.user.session_gen or 0)
            profile = await owner_view(account, self.settings_obj)
        except Exception:
            await sms_codes.restore_login_code(redis=self.redis, verified=verified)
            raise
        self.user_id = user_id
        self.ok({**token_payload(pair), "is_new_user": is_new, "user": profile})


class CurrentSessionHandler(BaseHandler):
    auth_required = False  # PUT presents a refresh token in the body; DELETE authenticates itself

    @operation("refreshSession", tag="auth", summary="Rotate the refresh token", body=Refresh, response=TokenPair,
               errors=(401, 403))
    async def put(self, body: Refresh) -> None:
        """Rotate: a used refresh token is revoked; presenting it again ends the whole session."""
        claims = tokens.decode_refresh(self.settings_obj, body.refresh_token)
        try:
            account = await load_account(redis=self.redis, settings=self.settings_obj, user_id=claims.user_id,
                                         local=self.local_caches)
        except NotFoundError:
            raise NotAuthenticatedError("The account no longer exists.") from None
        check_session(account, claims)
        self.user_id, pair = await tokens.rotate_session(redis=self.redis, settings=self.settings_obj,
                                                         refresh_token=body.refresh_token)
        self.ok(token_payload(pair))

    @operation("logOut", tag="auth", summary="Log out this device", auth=True)
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
