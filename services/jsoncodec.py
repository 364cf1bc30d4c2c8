"""The one JSON encoder: responses, cache entries and logs all go through ``dumps``/``loads``."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default)


def dumps(value: Any) -> str:
    return _encoder.encode(value)


def loads(raw: str | bytes) -> Any:
    return json.loads(raw)
