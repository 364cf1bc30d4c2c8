"""Payloads more than one resource answers with: a user (public and owner's view), a membership, list pages,
the error envelope. The services build these as plain dicts on the hot paths; the contract tests check every
answer against these declarations (through the OpenAPI document generated from them)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from pydantic import ConfigDict, Field

from handlers.contract import Gender, Payload

T = TypeVar("T")


class Error(Payload):
    """Every failure: ``code`` and ``error`` from API.md's table, ``data`` with details (``fields`` for 1002)."""

    code: int
    error: str
    message: str
    data: dict[str, Any] | None


class Membership(Payload):
    level: int
    name: str
    expires_at: dt.datetime | None
    permissions: list[str]


class UserCard(Payload):
    """What both views of a user show."""

    id: int
    nickname: str
    gender: Gender | None
    age: int | None
    avatar: str | None
    location: str | None


class PublicUser(UserCard):
    """Anyone else's view: never phone, birthday or preferences."""

    distance_km: int | None  # bucketed, between cell centres, from my search origin; null: either has no position
    photos: list[str]  # album URLs in the owner's order; empty when the owner is only_match and we are not matched


class Photo(Payload):
    id: int
    url: str


class PreferencesView(Payload):
    dating_gender: Gender | None
    location: str | None
    min_distance: int
    max_distance: int
    min_dating_age: int
    max_dating_age: int
    vibration: bool
    only_match: bool
    auto_play: bool


class Profile(UserCard):
    """The owner's view of their own profile."""

    phone: str
    birthday: dt.date | None
    vip: Membership
    preferences: PreferencesView
    photos: list[Photo]  # my album, in my order


class Message(Payload):
    """One chat message; ``seq`` counts 1, 2, 3… within its conversation, in the order the server committed them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: int
    seq: int
    from_: int = Field(alias="from")  # the sender's user id
    text: str
    client_id: str
    sent_at: dt.datetime


class Page(Payload, Generic[T]):
    """A list with a cursor: pass ``next_cursor`` as ``?cursor=`` for the next page (null: no more)."""

    items: list[T]
    next_cursor: str | None


class Items(Payload, Generic[T]):
    """A list without a cursor."""

    items: list[T]
