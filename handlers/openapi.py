"""The OpenAPI 3 document. ``OPERATIONS`` must name every route and method the app serves: a test enforces it."""
from __future__ import annotations

import inspect
import re
from functools import lru_cache
from typing import Any

from tornado import web

from services.phones import ACCEPTED_PATTERN, MAX_INPUT_LENGTH

STR, INT, BOOL, NUM = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "number"}


def nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


def obj(required: list[str] | None = None, closed: bool = True, **props: Any) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


GENDER = {"type": "string", "enum": ["male", "female"]}
# 1..32 characters with no surrounding whitespace and no control characters (what the server keeps after trimming)
SHORT_TEXT = {"type": "string", "minLength": 1, "maxLength": 32,
              "pattern": r"^[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?$"}
MAX_ID = 2**63 - 1
PREFERENCE_PROPS = {
    "dating_gender": nullable(GENDER), "location": nullable(SHORT_TEXT),
    "min_distance": {"type": "integer", "minimum": 0, "maximum": 1000},
    "max_distance": {"type": "integer", "minimum": 0, "maximum": 1000},
    "min_dating_age": {"type": "integer", "minimum": 18, "maximum": 100},
    "max_dating_age": {"type": "integer", "minimum": 18, "maximum": 100},
    "vibration": BOOL, "only_match": BOOL, "auto_play": BOOL,
}
MEMBERSHIP = obj(["level", "name", "expires_at", "permissions"], level=INT, name=STR,
                 expires_at=nullable({"type": "string", "format": "date-time"}),
                 permissions={"type": "array", "items": STR})
PUBLIC_USER = obj(["id", "nickname", "gender", "age", "avatar", "location"], id=INT, nickname=STR,
                  gender=nullable(GENDER), age=nullable(INT), avatar=nullable(STR), location=nullable(STR))
PROFILE = obj(["id", "phone", "nickname", "gender", "birthday", "age", "avatar", "location", "vip", "preferences"],
              **PUBLIC_USER["properties"], phone=STR, birthday=nullable({"type": "string", "format": "date"}),
              vip=ref("Membership"), preferences=obj(list(PREFERENCE_PROPS), **PREFERENCE_PROPS))
TOKENS = {"access_token": STR, "refresh_token": STR, "token_type": {"type": "string", "enum": ["Bearer"]},
          "expires_in": INT}
SCHEMAS = {
    "Error": obj(["code", "error", "message", "data"], code=INT, error=STR, message=STR,
                 data=nullable({"type": "object"})),
    "Membership": MEMBERSHIP, "PublicUser": PUBLIC_USER, "Profile": PROFILE,
    "TokenPair": obj(list(TOKENS), **TOKENS),
    "Session": obj([*TOKENS, "is_new_user", "user"], **TOKENS, is_new_user=BOOL, user=ref("Profile")),
    "VipLevel": obj(["level", "name", "price", "permissions"], level=INT, name=STR, price=NUM,
                    permissions={"type": "array", "items": STR}),
    "Dependencies": obj(None, closed=False, mysql=STR, redis=STR),
    "SwipeResult": obj(["matched", "likes_remaining", "resets_at"], matched=BOOL,
                       likes_remaining=nullable(INT), resets_at=nullable({"type": "string", "format": "date-time"})),
    "MatchedUser": obj(["id", "nickname", "gender", "age", "avatar", "location", "matched_at"],
                       **PUBLIC_USER["properties"], matched_at={"type": "string", "format": "date-time"}),
    "LikingUser": obj(["id", "nickname", "gender", "age", "avatar", "location", "action", "swiped_at"],
                      **PUBLIC_USER["properties"], action={"type": "string", "enum": ["like", "superlike"]},
                      swiped_at={"type": "string", "format": "date-time"}),
    "HotEntry": obj(["rank", "score", "user"], rank=INT, score=INT, user=ref("PublicUser")),
}


def page_of(item: dict, cursor: bool = True) -> dict:
    if cursor:
        return obj(["items", "next_cursor"], items={"type": "array", "items": item}, next_cursor=nullable(STR))
    return obj(["items"], items={"type": "array", "items": item})
PHONE = {"type": "string", "minLength": 11, "maxLength": MAX_INPUT_LENGTH, "pattern": ACCEPTED_PATTERN,
         "description": "a mainland mobile; +86/0086, surrounding spaces and spaces or dashes between digits are accepted"}
PROFILE_PATCH = obj(None, nickname=SHORT_TEXT, gender=GENDER, birthday={"type": "string", "format": "date"},
                    location=SHORT_TEXT, preferences=obj(None, **{k: v for k, v in PREFERENCE_PROPS.items()
                                                                  if k not in ("dating_gender", "location")},
                                                         dating_gender=GENDER, location=SHORT_TEXT))

ERRORS_BY_STATUS = {400: "invalid input", 401: "not authenticated", 403: "permission denied", 404: "not found",
                    405: "method not allowed", 409: "conflict", 413: "payload too large", 429: "rate limited",
                    502: "upstream failed", 503: "unavailable"}


def op(summary: str, data: dict | None, *, errors: tuple[int, ...], body: dict | None = None,
       auth: bool = True, params: list[dict] | None = None, bare: bool = False, text: bool = False) -> dict:
    if text:
        ok = {"description": "OK", "content": {"text/plain": {"schema": STR}}}
    elif bare:
        ok = {"description": "OK", "content": {"application/json": {"schema": data or {"type": "object"}}}}
    else:
        envelope = obj(["code", "data"], code={"type": "integer", "enum": [0]},
                       data=data if data is not None else {"nullable": True})
        ok = {"description": "OK", "content": {"application/json": {"schema": envelope}}}
    codes = set(errors) | {405} | ({401} if auth else set()) | ({400, 413} if body else set())
    responses = {"200": ok}
    for status in sorted(codes):
        responses[str(status)] = {"description": ERRORS_BY_STATUS[status],
                                  "content": {"application/json": {"schema": ref("Error")}}}
    operation: dict[str, Any] = {"summary": summary, "responses": responses, "security": [{"bearer": []}] if auth
                                 else []}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        operation["parameters"] = params
    return operation


USER_ID = [{"name": "user_id", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}}]


def limit_param(default: int) -> dict:
    return {"name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": default}}


CURSOR = {"name": "cursor", "in": "query", "required": False, "schema": STR,
          "description": "next_cursor of the previous page"}
SWIPE = obj(["user_id", "action"], user_id={"type": "integer", "minimum": 1, "maximum": MAX_ID},
            action={"type": "string", "enum": ["like", "dislike", "superlike"]})
OPERATIONS: dict[str, dict[str, dict]] = {
    "/api/v1/sms-codes": {"post": op("Send a login code", obj(["resend_after", "expires_in"], resend_after=INT,
                                                              expires_in=INT),
                                     errors=(429, 502, 503), auth=False, body=obj(["phone"], phone=PHONE))},
    "/api/v1/sessions": {"post": op("Log in (registers on first login)", ref("Session"), errors=(503,), auth=False,
                                    body=obj(["phone", "code"], phone=PHONE, code={"type": "string",
                                                                                  "pattern": "^[0-9]{6}$"}))},
    "/api/v1/sessions/current": {
        "put": op("Rotate the refresh token", ref("TokenPair"), errors=(401, 503), auth=False,
                  body=obj(["refresh_token"], refresh_token=STR)),
        "delete": op("Log out this device", None, errors=(503,)),
    },
    "/api/v1/profile": {
        "get": op("My profile", ref("Profile"), errors=(503,)),
        "patch": op("Edit my profile", ref("Profile"), errors=(403, 409, 503), body=PROFILE_PATCH),
    },
    "/api/v1/profile/avatar": {"put": {
        **op("Replace my avatar (JPEG, PNG or WebP by content, at most 5 MiB; metadata such as GPS is removed)",
             obj(["avatar"], avatar=STR), errors=(400, 413, 502, 503)),
        "requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": obj(["avatar"], avatar={"type": "string", "format": "binary"}),
            "encoding": {"avatar": {"contentType": "image/jpeg, image/png, image/webp"}}}}},
    }},
    "/api/v1/users/{user_id}": {"get": op("A user's public view", ref("PublicUser"), errors=(404, 503),
                                          params=USER_ID)},
    "/api/v1/vip/levels": {"get": op("VIP levels", obj(["items"], items={"type": "array",
                                                                         "items": ref("VipLevel")}),
                                     errors=(503,), auth=False)},
    "/api/v1/vip": {"get": op("My membership", ref("Membership"), errors=(503,))},
    "/api/v1/recommendations": {"get": op("The feed: superlikers first, then the most recently active",
                                          page_of(ref("PublicUser"), cursor=False), errors=(400, 503),
                                          params=[limit_param(10)])},
    "/api/v1/swipes": {"post": op("Like, dislike or superlike", ref("SwipeResult"), errors=(403, 404, 409, 429, 503),
                                  body=SWIPE)},
    "/api/v1/swipes/last": {"delete": op("Rewind my last swipe", obj(["user_id"], user_id=INT),
                                         errors=(403, 404, 429, 503))},
    "/api/v1/matches": {"get": op("My matches, newest first", page_of(ref("MatchedUser")), errors=(400, 503),
                                  params=[limit_param(20), CURSOR])},
    "/api/v1/matches/{user_id}": {"delete": op("Unmatch (both sides)", None, errors=(404, 503), params=USER_ID)},
    "/api/v1/likes/received": {"get": op("Who liked me (VIP liked_me)", page_of(ref("LikingUser")),
                                         errors=(400, 403, 503), params=[limit_param(20), CURSOR])},
    "/api/v1/likes/received/count": {"get": op("How many liked me", obj(["count"], count=INT), errors=(503,))},
    "/api/v1/rankings/hot": {"get": op("Hot ranking", page_of(ref("HotEntry"), cursor=False), errors=(400, 503),
                                       params=[limit_param(10)])},
    "/healthz": {"get": op("Liveness", STR, errors=(), auth=False)},
    "/readyz": {"get": op("Readiness of MySQL and Redis", ref("Dependencies"), errors=(503,), auth=False)},
    "/api/v1/openapi.json": {"get": op("This document", None, errors=(), auth=False, bare=True)},
    "/metrics": {"get": op("Prometheus metrics (not exposed through nginx)", None, errors=(), auth=False,
                           text=True)},
}


def openapi_path(pattern: str, handler: type[web.RequestHandler]) -> str:
    """Turn a route regex into an OpenAPI path, naming groups after the handler method's arguments."""
    methods = [getattr(handler, m) for m in ("get", "post", "put", "patch", "delete") if m in vars(handler)]
    names = [p for p in inspect.signature(methods[0]).parameters if p != "self"] if methods else []
    parts = iter(names)
    return re.sub(r"\([^)]*\)", lambda _m: "{" + next(parts) + "}", pattern).rstrip("$")


@lru_cache(maxsize=1)
def _document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Swiper API", "version": "1.0.0",
                 "description": "Envelope: success {code: 0, data}; failure {code, error, message, data}."},
        "paths": OPERATIONS,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


def build_spec(_app: web.Application | None = None) -> dict:
    return _document()
