"""The album: add (the avatar's checks and metadata stripping, at most 9), delete, order; and
``<PublicUser>.photos`` under ``only_match`` on/off × matched/not × every place a PublicUser appears."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from models import Photo, Preferences
from services.accounts import forget_account
from tests.conftest import unique_city
from tests.handlers.test_blocks import like
from tests.support.client import assert_error
from tests.support.events import EventSocket
from tests.support.images import SECRET, jpeg, multipart, png, webp

PHOTOS = "/api/v1/profile/photos"


async def add(client, person, data=None, *, name="photo"):
    body, headers = multipart([(name, "p.jpg", "image/jpeg", data if data is not None else png())])
    return await client.request("PUT", PHOTOS, body=body, headers=headers, token=person.token)


async def added(client, person, data=None) -> list[dict]:
    resp = await add(client, person, data)
    assert resp.status == 200, resp.body
    return resp.data["items"]


async def set_only_match(redis, person, value: bool) -> None:
    await Preferences.update(only_match=value).where(Preferences.user == person.id).aio_execute()
    await forget_account(redis=redis, user_id=person.id)


async def test_add_order_delete(client, make_person, settings, app):
    me = await make_person()
    first = await added(client, me, jpeg(metadata=True))
    assert len(first) == 1 and set(first[0]) == {"id", "url"}
    assert re.fullmatch(rf"/media/photos/{me.id}/[A-Za-z0-9_-]{{22}}\.jpg", first[0]["url"])
    stored = Path(settings.media_dir, first[0]["url"].removeprefix("/media/"))
    assert stored.is_file() and SECRET not in stored.read_bytes()  # metadata stripped like the avatar's
    second = await added(client, me, webp())
    third = await added(client, me)
    assert [p["id"] for p in third] == [first[0]["id"], second[-1]["id"], third[-1]["id"]]
    ids = [p["id"] for p in third]
    profile = await client.get("/api/v1/profile", token=me.token)
    assert profile.data["photos"] == third
    reordered = await client.put(PHOTOS + "/order", {"ids": [ids[2], ids[0], ids[1]]}, token=me.token)
    assert reordered.status == 200 and [p["id"] for p in reordered.data["items"]] == [ids[2], ids[0], ids[1]]
    assert [p["id"] for p in (await client.get("/api/v1/profile", token=me.token)).data["photos"]] == \
        [ids[2], ids[0], ids[1]]
    left = await client.delete(f"{PHOTOS}/{ids[0]}", token=me.token)
    assert left.status == 200 and [p["id"] for p in left.data["items"]] == [ids[2], ids[1]]
    await app.settings["storage_cleanup"].wait()
    assert not stored.exists()  # a deleted photo's object goes after the answer
    assert (await client.get(first[0]["url"])).status == 404
    nine = await added(client, me)
    for _ in range(9 - len(nine)):
        nine = await added(client, me)
    assert len(nine) == 9
    error = assert_error(await add(client, me), 400, "invalid_params")
    assert "photo" in error["data"]["fields"]
    assert await Photo.select().where(Photo.user_id == me.id).aio_count() == 9
    await app.settings["storage_cleanup"].wait()
    assert len(list(Path(settings.media_dir, "photos", str(me.id)).iterdir())) == 9  # the 10th stored nothing


async def test_bad_inputs(client, make_person):
    me, other = await make_person(), await make_person()
    theirs = (await added(client, other))[0]["id"]
    mine = (await added(client, me))[0]["id"]
    assert_error(await client.delete(f"{PHOTOS}/{theirs}", token=me.token), 404, "not_found")
    assert_error(await client.delete(f"{PHOTOS}/{2**62}", token=me.token), 404, "not_found")
    assert_error(await add(client, me, b"not an image"), 400, "file_invalid")
    assert_error(await add(client, me, name="avatar"), 400, "file_invalid")
    body, headers = multipart([("photo", "p.png", "image/png", png()), ("colour", None, None, b"red")])
    error = assert_error(await client.request("PUT", PHOTOS, body=body, headers=headers, token=me.token), 400,
                         "invalid_params")
    assert "colour" in error["data"]["fields"]
    for ids in ([theirs], [mine, mine], [], [mine, theirs]):
        error = assert_error(await client.put(PHOTOS + "/order", {"ids": ids}, token=me.token), 400, "invalid_params")
        assert "ids" in error["data"]["fields"]
    for body, field in (({"ids": ["1"]}, "ids.0"), ({"ids": mine}, "ids"), ({}, "ids"),
                        ({"ids": [mine], "x": 1}, "x"), ({"ids": list(range(1, 11))}, "ids")):
        error = assert_error(await client.put(PHOTOS + "/order", body, token=me.token), 400, "invalid_params")
        assert field in error["data"]["fields"], error
    assert_error(await client.put(PHOTOS + "/order", body=b"[", token=me.token,
                                  headers={"Content-Type": "application/json"}), 400, "invalid_params")
    assert_error(await client.get(PHOTOS, token=me.token), 405, "method_not_allowed")
    assert_error(await client.put(PHOTOS + "/order", {"ids": [mine]}), 401, "not_authenticated")


# -- only_match: every place a PublicUser appears ----------------------------------------------------------------

async def places(client, viewer, owner) -> dict[str, list[str]]:
    """``photos`` of ``owner`` in each place ``viewer`` can see them (the places that apply to their state)."""
    seen: dict[str, list[str]] = {}
    profile = await client.get(f"/api/v1/users/{owner.id}", token=viewer.token)
    assert profile.status == 200
    seen["profile"] = profile.data["photos"]
    for name, path in (("feed", "/api/v1/recommendations?limit=50"), ("matches", "/api/v1/matches?limit=50"),
                       ("likes", "/api/v1/likes/received?limit=50")):
        resp = await client.get(path, token=viewer.token)
        assert resp.status == 200, resp.body
        for item in resp.data["items"]:
            if item["id"] == owner.id:
                seen[name] = item["photos"]
    ranking = await client.get("/api/v1/rankings/hot?limit=50", token=viewer.token)
    for entry in ranking.data["items"]:
        if entry["user"]["id"] == owner.id:
            seen["ranking"] = entry["user"]["photos"]
    blocks = await client.get("/api/v1/blocks", token=viewer.token)
    for entry in blocks.data["items"]:
        if entry["user"]["id"] == owner.id:
            seen["blocks"] = entry["user"]["photos"]
    return seen


@pytest.mark.parametrize("only_match", [True, False])
async def test_not_matched_viewers(client, make_person, redis, only_match):
    city = unique_city()
    owner = await make_person(city=city, gender="male", dating_gender="female")
    viewer = await make_person(city=city, gender="female", dating_gender="male", level=2)
    await added(client, owner)
    urls = [p["url"] for p in await added(client, owner)]
    await set_only_match(redis, owner, only_match)
    fan = await make_person()
    await like(client, fan, owner)  # a positive score: in the ranking
    await like(client, owner, viewer)  # owner waits in viewer's likes received, and is still in viewer's feed
    expected = [] if only_match else urls
    seen = await places(client, viewer, owner)
    assert set(seen) == {"profile", "likes", "ranking", "feed"}, seen
    assert all(photos == expected for photos in seen.values()), seen
    blocker = await make_person()
    await client.post("/api/v1/blocks", {"user_id": owner.id}, token=blocker.token)
    assert (await places_blocked(client, blocker, owner)) == expected


async def places_blocked(client, viewer, owner):
    blocks = await client.get("/api/v1/blocks", token=viewer.token)
    [entry] = [e for e in blocks.data["items"] if e["user"]["id"] == owner.id]
    return entry["user"]["photos"]


@pytest.mark.parametrize("only_match", [True, False])
async def test_matched_viewers_see_the_album(client, make_person, redis, app_url, only_match):
    owner = await make_person(gender="male")
    viewer = await make_person(level=2)
    urls = [p["url"] for p in await added(client, owner)]
    await set_only_match(redis, owner, only_match)
    fan = await make_person()
    await like(client, fan, owner)
    socket = await EventSocket.open(app_url, token=viewer.token)
    try:
        await like(client, viewer, owner)
        assert (await like(client, owner, viewer))["matched"]
        event = await socket.next_of("match")
        assert event["user"]["id"] == owner.id and event["user"]["photos"] == urls
    finally:
        socket.close()
    seen = await places(client, viewer, owner)
    assert set(seen) == {"profile", "matches", "ranking"}, seen
    assert all(photos == urls for photos in seen.values()), seen
    # unmatched again: only_match hides the album once more
    assert (await client.delete(f"/api/v1/matches/{owner.id}", token=viewer.token)).status == 200
    seen = await places(client, viewer, owner)
    assert all(photos == ([] if only_match else urls) for photos in seen.values()), seen
