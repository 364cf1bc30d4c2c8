"""Swipes and matches. One swipe per (user, target); one match per unordered pair (user_a < user_b)."""
from __future__ import annotations

import peewee

from models.base import BaseModel, DateTimeMicroField, utcnow

ACTIONS = {"dislike": 0, "like": 1, "superlike": 2}
ACTION_NAMES = {value: name for name, value in ACTIONS.items()}


class Swipe(BaseModel):
    id = peewee.BigAutoField()
    user_id = peewee.BigIntegerField()
    target_id = peewee.BigIntegerField()
    action = peewee.SmallIntegerField()
    created_at = DateTimeMicroField(default=utcnow)
    counted = peewee.BooleanField(default=False)  # taken from the daily like quota (so a rewind gives it back)

    class Meta:
        table_name = "swipe"
        indexes = (
            (("user_id", "target_id"), True),
            (("target_id", "created_at"), False),
            (("user_id", "created_at"), False),
        )


class Match(BaseModel):
    id = peewee.BigAutoField()
    user_a = peewee.BigIntegerField()
    user_b = peewee.BigIntegerField()
    created_at = DateTimeMicroField(default=utcnow)

    class Meta:
        table_name = "match"
        indexes = (
            (("user_a", "user_b"), True),
            (("user_a", "created_at"), False),
            (("user_b", "created_at"), False),
        )
