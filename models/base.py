"""The model base: every table lives in ``db`` and is queried through peewee-async's ``aio_*`` API."""
from __future__ import annotations

import datetime as dt

import peewee
from peewee_async import AioModel

from models.db import db


def utcnow() -> dt.datetime:
    """Naive UTC, which is how every DATETIME column stores time."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class BaseModel(AioModel):
    class Meta:
        database = db
        legacy_table_names = False


class DateTimeMicroField(peewee.DateTimeField):
    field_type = "DATETIME(6)"
