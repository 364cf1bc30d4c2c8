"""Safety and the album: blocks (one row per direction), bans and their record, report cases with their filings
and copied messages, album photos, and stored objects waiting to be deleted."""
from __future__ import annotations

import peewee

from models.base import BaseModel, DateTimeMicroField, utcnow

REPORT_REASONS = ("spam", "fake", "inappropriate", "harassment", "underage", "other")


class Block(BaseModel):
    user_id = peewee.BigIntegerField()
    target_id = peewee.BigIntegerField()
    created_at = DateTimeMicroField(default=utcnow)

    class Meta:
        table_name = "block"
        primary_key = peewee.CompositeKey("user_id", "target_id")


class Ban(BaseModel):
    """A user banned now (the row goes at unban); ``BanEvent`` keeps the history."""

    user_id = peewee.BigIntegerField(primary_key=True)
    reason = peewee.CharField(max_length=500)
    banned_at = DateTimeMicroField(default=utcnow)

    class Meta:
        table_name = "ban"


class BanEvent(BaseModel):
    id = peewee.BigAutoField()
    user_id = peewee.BigIntegerField()
    action = peewee.CharField(max_length=5)  # ban | unban
    reason = peewee.CharField(max_length=500, default="")
    operator = peewee.CharField(max_length=64, default="")
    created_at = DateTimeMicroField(default=utcnow)

    class Meta:
        table_name = "ban_event"


class ReportCase(BaseModel):
    id = peewee.BigAutoField()
    reporter_id = peewee.BigIntegerField()
    reported_id = peewee.BigIntegerField()
    reason = peewee.CharField(max_length=16)
    state = peewee.CharField(max_length=6, default="open")
    filings = peewee.IntegerField(default=0)
    opened_at = DateTimeMicroField(default=utcnow)
    updated_at = DateTimeMicroField(default=utcnow)

    class Meta:
        table_name = "report_case"


class ReportFiling(BaseModel):
    id = peewee.BigAutoField()
    case_id = peewee.BigIntegerField()
    reason = peewee.CharField(max_length=16)
    detail = peewee.CharField(max_length=500, default="")
    created_at = DateTimeMicroField(default=utcnow)

    class Meta:
        table_name = "report_filing"


class ReportMessage(BaseModel):
    case_id = peewee.BigIntegerField()
    message_id = peewee.BigIntegerField()
    seq = peewee.IntegerField()
    sender_id = peewee.BigIntegerField()
    text = peewee.TextField()
    sent_at = DateTimeMicroField()

    class Meta:
        table_name = "report_message"
        primary_key = peewee.CompositeKey("case_id", "message_id")


class Photo(BaseModel):
    id = peewee.BigAutoField()
    user_id = peewee.BigIntegerField()
    key = peewee.CharField(max_length=255)
    position = peewee.IntegerField()
    created_at = DateTimeMicroField(default=utcnow)

    class Meta:
        table_name = "photo"


class StorageDeletion(BaseModel):
    key = peewee.CharField(max_length=255, primary_key=True)
    created_at = DateTimeMicroField(default=utcnow)
    attempts = peewee.IntegerField(default=0)

    class Meta:
        table_name = "storage_deletion"
