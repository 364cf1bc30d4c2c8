"""Opaque list cursors, signed so that a cursor the server did not issue is refused (1002)."""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from conf import Settings
from services import jsoncodec
from services.errors import InvalidParamsError


def _sign(settings: Settings, payload: bytes) -> str:
    digest = hmac.new(settings.jwt_secret.encode(), b"cursor:" + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")


def encode_cursor(settings: Settings, position: dict[str, Any]) -> str:
    payload = jsoncodec.dumps(position)
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _sign(settings, payload)


def decode_cursor(settings: Settings, cursor: str) -> dict[str, Any]:
    invalid = InvalidParamsError.for_fields({"cursor": "not a cursor this server issued"})
    body, _, signature = cursor.partition(".")
    if not body.isascii():
        raise invalid
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        raise invalid from None
    # compare bytes: compare_digest refuses str with non-ASCII characters, and a client may send anything
    if not signature or not hmac.compare_digest(signature.encode(), _sign(settings, payload).encode()):
        raise invalid
    try:
        position = jsoncodec.loads(payload)
    except ValueError:
        raise invalid from None
    if not isinstance(position, dict):
        raise invalid
    return position
