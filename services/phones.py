"""Phone numbers: the one normalisation of what clients send, and the one masked form shown or logged."""
from __future__ import annotations

import re

from services.errors import InvalidParamsError

_PHONE_PREFIX = re.compile(r"^(\+86|0086)")
_PHONE = re.compile(r"1[3-9][0-9]{9}")
_SEPARATED_DIGITS = re.compile(r"[0-9](?:[ -]?[0-9])*")
MAX_INPUT_LENGTH = 32
# What ``normalize_phone`` accepts, as one pattern (the OpenAPI document publishes it).
ACCEPTED_PATTERN = r"^\s*(?:\+86|0086)?\s*1[ -]?[3-9](?:[ -]?[0-9]){9}\s*$"


def normalize_phone(raw: object) -> str:
    """Strip +86/0086, whitespace, spaces and dashes; the result must be a mainland mobile number."""
    if not isinstance(raw, str):
        raise InvalidParamsError.for_fields({"phone": "must be a string"})
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidParamsError.for_fields({"phone": f"at most {MAX_INPUT_LENGTH} characters"})
    phone = _PHONE_PREFIX.sub("", raw.strip()).strip()
    if not _SEPARATED_DIGITS.fullmatch(phone) or not _PHONE.fullmatch(phone := re.sub(r"[ -]", "", phone)):
        raise InvalidParamsError.for_fields({"phone": "not a mainland mobile number"})
    return phone


def mask_phone(phone: str) -> str:
    """``138****8000``: enough for a person to recognise their number, too little to identify it."""
    return f"{phone[:3]}****{phone[-4:]}"
