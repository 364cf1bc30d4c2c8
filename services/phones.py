"""Phone numbers: the one normalisation of what clients send, and the one masked form shown or logged."""
from __future__ import annotations

import re


MAX_INPUT_LENGTH = 32
# What ``normalize_phone`` accepts, as one pattern (the OpenAPI document publishes it): an optional +86/0086
# prefix followed by spaces or one dash, then the 11 digits with at most one space or dash between two of them.
ACCEPTED_PATTERN = r"^\s*(?:(?:\+86|0086)(?:\s*|-))?1[ -]?[3-9](?:[ -]?[0-9]){9}\s*$"
_ACCEPTED = re.compile(ACCEPTED_PATTERN)


def normalize_phone(raw: str) -> str:
    """Strip +86/0086, whitespace, spaces and dashes; the result must be a mainland mobile number (else
    ``ValueError``, which a request model reports as the field's problem)."""
    if len(raw) > MAX_INPUT_LENGTH:
        raise ValueError(f"must be at most {MAX_INPUT_LENGTH} characters")
    if not _ACCEPTED.match(raw):
        raise ValueError("not a mainland mobile number")
    return re.sub(r"[^0-9]", "", raw)[-11:]


def mask_phone(phone: str) -> str:
    """``138****8000``: enough for a person to recognise their number, too little to identify it."""
    return f"{phone[:3]}****{phone[-4:]}"
