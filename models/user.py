"""Users (phone unique, nickname unique by exact value) and their dating preferences."""
from __future__ import annotations

import peewee

from models.base import BaseModel, DateTimeMicroField, utcnow


class User(BaseModel):
    id = peewee.BigAutoField()
    phone = peewee.CharField(max_length=11, unique=True)
    nickname = peewee.CharField(max_length=32, unique=True)
    gender = peewee.CharField(max_length=6, null=True)
    birthday = peewee.DateField(null=True)
    location = peewee.CharField(max_length=32, null=True)
    avatar_key = peewee.CharField(max_length=255, null=True)
    vip_level = peewee.SmallIntegerField(default=0)
    vip_expires_at = DateTimeMicroField(null=True)
    created_at = DateTimeMicroField(default=utcnow)
    updated_at = DateTimeMicroField(default=utcnow)
    last_active_at = DateTimeMicroField(default=utcnow)
    rewind_floor = peewee.BigIntegerField(default=0)  # swipes with id <= this can no longer be rewound
    # Position, only ever as an H3 cell (services/location): never the coordinates it was snapped from.
    geo_cell = peewee.BigIntegerField(null=True)    # resolution 8, about 1 km across
    geo_coarse = peewee.BigIntegerField(null=True)  # its resolution-5 parent: the feed index's first column
    geo_updated_at = DateTimeMicroField(null=True)
    passport_cell = peewee.BigIntegerField(null=True)  # anylocation's search origin, resolution 8
    session_gen = peewee.IntegerField(default=0)  # tokens of another generation are dead (a ban bumps it)
    banned_at = DateTimeMicroField(null=True)
    ban_reason = peewee.CharField(max_length=500, null=True)
    photo_count = peewee.SmallIntegerField(default=0)  # kept by services.album in its transactions

    class Meta:
        table_name = "user"


class Preferences(BaseModel):
    user = peewee.ForeignKeyField(User, primary_key=True, on_delete="CASCADE", backref="preferences")
    dating_gender = peewee.CharField(max_length=6, null=True)
    location = peewee.CharField(max_length=32, null=True)
    min_distance = peewee.IntegerField(default=1)
    max_distance = peewee.IntegerField(default=10)
    min_dating_age = peewee.SmallIntegerField(default=18)
    max_dating_age = peewee.SmallIntegerField(default=45)
    vibration = peewee.BooleanField(default=True)
    only_match = peewee.BooleanField(default=True)
    auto_play = peewee.BooleanField(default=True)

    class Meta:
        table_name = "preferences"


class SessionRevocation(BaseModel):
    """A revoked token family (a device's session), kept as long as its tokens could be presented. Redis holds the
    same (``auth:revoked:<fam>``) for the fast path; this copy lets authentication go on while Redis is down."""

    family = peewee.CharField(max_length=24, primary_key=True)
    user_id = peewee.BigIntegerField()
    expires_at = DateTimeMicroField()

    class Meta:
        table_name = "session_revocation"
