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


class SwipePair(BaseModel):
    """One row per unordered pair (low_id < high_id) once either has liked the other: the lock the two sides of a
    mutual like serialise on (``likes`` counts the likes that took it; its value means nothing else)."""

    low_id = peewee.BigIntegerField()
    high_id = peewee.BigIntegerField()
    likes = peewee.IntegerField(default=0)

    class Meta:
        table_name = "swipe_pair"
        primary_key = peewee.CompositeKey("low_id", "high_id")


class Match(BaseModel):
    """A match is also its conversation: ``last_seq`` is the seq of its newest message, each side's read position
    is the seq they have read up to, ``last_activity_at`` the match or its newest message (the list's order)."""

    id = peewee.BigAutoField()
    user_a = peewee.BigIntegerField()
    user_b = peewee.BigIntegerField()
    created_at = DateTimeMicroField(default=utcnow)
    last_seq = peewee.IntegerField(default=0)
    a_read_seq = peewee.IntegerField(default=0)
    b_read_seq = peewee.IntegerField(default=0)
    last_activity_at = DateTimeMicroField(null=True)

    class Meta:
        table_name = "match"
        indexes = (
            (("user_a", "user_b"), True),
            (("user_a", "last_activity_at", "id"), False),
            (("user_b", "last_activity_at", "id"), False),
        )


class Message(BaseModel):
    """One message of a match's conversation; ``seq`` 1, 2, 3… in commit order; a client_id stores once."""

    id = peewee.BigAutoField()
    match_id = peewee.BigIntegerField()
    seq = peewee.IntegerField()
    sender_id = peewee.BigIntegerField()
    client_id = peewee.CharField(max_length=64)
    text = peewee.TextField()
    created_at = DateTimeMicroField(default=utcnow)

    class Meta:
        table_name = "message"
        indexes = (
            (("match_id", "seq"), True),
            (("match_id", "sender_id", "client_id"), True),
        )
