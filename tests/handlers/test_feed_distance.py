"""The feed by distance, distance_km everywhere a PublicUser is shown, the passport, and the trilateration test."""
from __future__ import annotations

import asyncio
import datetime as dt

from h3.api import basic_int as h3

from models import Preferences, User
from models.base import utcnow
from services import keys
from services.accounts import forget_account
from tests.handlers.test_location import PASSPORT, cell_of, expected_km, offset, place, put_location, region
from tests.handlers.test_swipes import swipe
from tests.support.client import assert_error

FEED = "/api/v1/recommendations?limit=50"


async def feed(client, me) -> dict[int, int | None]:
    resp = await client.get(FEED, token=me.token)
    assert resp.status == 200, resp.body
    return {item["id"]: item["distance_km"] for item in resp.data["items"]}


async def set_range(redis, person, low: int, high: int) -> None:
    await Preferences.update(min_distance=low, max_distance=high).where(Preferences.user == person.id).aio_execute()
    await forget_account(redis=redis, user_id=person.id)


def point_at(origin_cell: int, start: tuple[float, float], *, above: float = -1.0,
             at_most: float = 1e9) -> tuple[float, float]:
    """The point due north of ``start`` (in 50 m steps) whose cell's centre is the nearest to ``origin_cell``'s
    centre with ``above < distance <= at_most`` km."""
    best, best_km = None, float("inf")
    for step in range(0, int(min(at_most, above + 5) * 20) + 60):
        point = offset(start, step / 20)
        km = h3.great_circle_distance(h3.cell_to_latlng(origin_cell), h3.cell_to_latlng(cell_of(point)), unit="km")
        if above < km <= at_most and km < best_km:
            best, best_km = point, km
    assert best is not None
    return best


def centre_km(a: int, b: int) -> float:
    return h3.great_circle_distance(h3.cell_to_latlng(a), h3.cell_to_latlng(b), unit="km")


async def test_the_radius_edges_compare_buckets(client, make_person, redis):
    home = region()
    me = await make_person(gender="male", dating_gender="female")
    origin = await place(client, me, home)
    # Just inside 10 km (bucket 10) and just past it (bucket 25); the same cell (1); about 1.5 km (2); 4 km (5).
    people = {}
    spots = {"same": home, "two": point_at(origin, home, above=1), "five": point_at(origin, home, above=2),
             "inside": point_at(origin, offset(home, 9), above=9, at_most=10),
             "outside": point_at(origin, offset(home, 9), above=10), "far": point_at(origin, offset(home, 55),
                                                                                      above=50)}
    for label, spot in spots.items():
        person = await make_person(gender="female", city="别处")
        people[label] = (person, await place(client, person, spot))
    got = {label: expected_km(origin, cell) for label, (_, cell) in people.items()}
    assert got == {"same": 1, "two": 2, "five": 5, "inside": 10, "outside": 25, "far": 100}
    assert centre_km(origin, people["inside"][1]) < 10 < centre_km(origin, people["outside"][1])
    ids = {label: person.id for label, (person, _) in people.items()}

    await set_range(redis, me, 1, 10)  # the defaults
    assert await feed(client, me) == {ids[k]: got[k] for k in ("same", "two", "five", "inside")}
    await set_range(redis, me, 1, 9)  # 9 is no bucket: the same as 5
    assert set(await feed(client, me)) == {ids["same"], ids["two"], ids["five"]}
    await set_range(redis, me, 3, 25)  # min_distance > 0: buckets 5..25
    assert set(await feed(client, me)) == {ids["five"], ids["inside"], ids["outside"]}
    await set_range(redis, me, 2, 2)
    assert set(await feed(client, me)) == {ids["two"]}
    await set_range(redis, me, 3, 4)  # no bucket between: nobody, whatever their exact distance
    assert await feed(client, me) == {}
    await set_range(redis, me, 0, 100)  # (each test's region is 500+ km from the others')
    assert set(await feed(client, me)) == set(ids.values())


async def test_positions_replace_the_city_and_the_unpositioned_are_not_shown(client, make_person, redis):
    home = region()
    me = await make_person(gender="male", dating_gender="female", city="北京")
    await place(client, me, home)
    elsewhere = await make_person(gender="female", city="上海")
    await place(client, elsewhere, offset(home, 3))
    await make_person(gender="female", city="北京")  # same city, no position
    wrong_gender = await make_person(gender="male", city="北京")
    await place(client, wrong_gender, offset(home, 1))
    too_old = await make_person(gender="female", age=50)
    await place(client, too_old, offset(home, 1))
    assert await feed(client, me) == {elsewhere.id: 5}
    # Without a position I am back on the city feed, and see no distances.
    assert (await client.delete("/api/v1/location", token=me.token)).status == 200
    city_feed = await feed(client, me)
    assert elsewhere.id not in city_feed and set(city_feed.values()) <= {None}


async def test_order_superlikers_then_nearer_rings_then_recent(client, make_person, redis):
    home = region()
    me = await make_person(gender="male", dating_gender="female")
    origin = await place(client, me, home)
    await set_range(redis, me, 0, 100)
    far_recent = await make_person(gender="female", active_minutes_ago=1)
    await place(client, far_recent, offset(home, 60))
    near_stale = await make_person(gender="female", active_minutes_ago=300)
    await place(client, near_stale, home)
    near_recent = await make_person(gender="female", active_minutes_ago=5)
    await place(client, near_recent, offset(home, 0.3))
    admirer = await make_person(gender="female", active_minutes_ago=900, level=1)
    await place(client, admirer, offset(home, 80))
    await swipe(client, admirer, me, "superlike")
    assert h3.grid_distance(h3.cell_to_parent(origin, 5), h3.cell_to_parent(cell_of(offset(home, 60)), 5)) > 1
    resp = await client.get(FEED, token=me.token)
    assert [i["id"] for i in resp.data["items"]] == [admirer.id, near_recent.id, near_stale.id, far_recent.id]
    await swipe(client, me, near_recent, "dislike")
    assert list(await feed(client, me)) == [admirer.id, near_stale.id, far_recent.id]


async def test_never_a_swiped_user_across_pages_and_walks(client, make_person, redis, monkeypatch):
    from services import recommendations
    monkeypatch.setattr(recommendations, "CANDIDATES", 4)  # several walks, each stepping over the swiped
    home = region()
    me = await make_person(gender="male", dating_gender="female")
    await place(client, me, home)
    await set_range(redis, me, 0, 100)
    everyone = set()
    for i in range(14):
        person = await make_person(gender="female", active_minutes_ago=i)
        await place(client, person, offset(home, 7 * (i % 7), 5 * (i // 7)))
        everyone.add(person.id)
    seen: set[int] = set()
    while True:
        page = (await client.get("/api/v1/recommendations?limit=3", token=me.token)).data["items"]
        if not page:
            break
        ids = {i["id"] for i in page}
        assert not ids & seen, "a swiped user came back"
        seen |= ids
        for target_id in ids:
            assert (await client.post("/api/v1/swipes", {"user_id": target_id, "action": "dislike"},
                                      token=me.token)).status == 200
    assert seen == everyone


async def test_distance_km_in_matches_likes_ranking_and_profile(client, make_person, redis):
    home = region()
    me = await make_person(level=2, gender="male", dating_gender="female")
    my_cell = await place(client, me, home)
    her = await make_person(gender="female", level=1)
    her_cell = await place(client, her, offset(home, 20))
    nowhere = await make_person(gender="female")
    await swipe(client, her, me, "superlike")
    await swipe(client, nowhere, me, "like")
    km = expected_km(my_cell, her_cell)
    assert km == 25
    liked = (await client.get("/api/v1/likes/received", token=me.token)).data["items"]
    assert {i["id"]: i["distance_km"] for i in liked} == {her.id: km, nowhere.id: None}
    await redis.zincrby(keys.hot_ranking(), 10**6, str(her.id))  # to the top of the (suite-wide) ranking
    ranking = (await client.get("/api/v1/rankings/hot?limit=50", token=me.token)).data["items"]
    assert ranking[0]["user"]["id"] == her.id and ranking[0]["user"]["distance_km"] == km
    cells = dict(await User.select(User.id, User.geo_cell).where(User.id.in_([e["user"]["id"] for e in ranking]))
                 .tuples().aio_execute())
    assert [e["user"]["distance_km"] for e in ranking] == [
        expected_km(my_cell, cells[e["user"]["id"]]) if cells[e["user"]["id"]] else None for e in ranking]
    await swipe(client, me, her)
    assert [(i["id"], i["distance_km"]) for i in (await client.get("/api/v1/matches", token=her.token)).data[
        "items"]] == [(me.id, km)]
    assert (await client.get(f"/api/v1/users/{her.id}", token=me.token)).data["distance_km"] == km
    assert (await client.get(f"/api/v1/users/{me.id}", token=her.token)).data["distance_km"] == km
    assert (await client.get(f"/api/v1/users/{me.id}", token=nowhere.token)).data["distance_km"] is None
    assert "distance_km" not in (await client.get("/api/v1/profile", token=me.token)).data


async def test_the_passport_moves_only_what_i_see(client, make_person, redis):
    home, trip = region(), region()
    me = await make_person(level=3, gender="male", dating_gender="female")
    my_cell = await place(client, me, home)
    local = await make_person(gender="female")
    local_cell = await place(client, local, offset(home, 4))
    there = await make_person(gender="female")
    there_cell = await place(client, there, offset(trip, 2))
    assert set(await feed(client, me)) == {local.id}
    resp = await client.put(PASSPORT, {"lat": trip[0], "lng": trip[1]}, token=me.token)
    assert resp.status == 200, resp.body
    passport = cell_of(trip)
    assert await feed(client, me) == {there.id: expected_km(passport, there_cell)}
    seen = (await client.get(f"/api/v1/users/{local.id}", token=me.token)).data["distance_km"]
    assert seen == expected_km(passport, local_cell) and seen >= 500
    # Others still measure from my own position.
    assert (await client.get(f"/api/v1/users/{me.id}", token=local.token)).data["distance_km"] == expected_km(
        my_cell, local_cell)
    assert (await client.get(f"/api/v1/users/{me.id}", token=there.token)).data["distance_km"] == expected_km(
        my_cell, there_cell)
    # The membership lapses: the passport no longer counts, and a new one is refused.
    await User.update(vip_expires_at=utcnow() - dt.timedelta(seconds=1)).where(User.id == me.id).aio_execute()
    await forget_account(redis=redis, user_id=me.id)
    assert set(await feed(client, me)) == {local.id}
    assert_error(await client.put(PASSPORT, {"lat": trip[0], "lng": trip[1]}, token=me.token), 403,
                 "permission_denied")
    # Renewed: it had not been ended, so it counts again until I end it.
    await User.update(vip_expires_at=utcnow() + dt.timedelta(days=1)).where(User.id == me.id).aio_execute()
    await forget_account(redis=redis, user_id=me.id)
    assert set(await feed(client, me)) == {there.id}
    assert (await client.delete(PASSPORT, token=me.token)).status == 200
    assert set(await feed(client, me)) == {local.id}


async def test_a_passport_without_a_position_searches_from_the_passport(client, make_person):
    trip = region()
    me = await make_person(level=3, gender="male", dating_gender="female")
    there = await make_person(gender="female")
    there_cell = await place(client, there, offset(trip, 1))
    assert (await client.put(PASSPORT, {"lat": trip[0], "lng": trip[1]}, token=me.token)).status == 200
    assert await feed(client, me) == {there.id: expected_km(cell_of(trip), there_cell)}
    # Nobody sees a distance to me: I have no position of my own.
    assert (await client.get(f"/api/v1/users/{me.id}", token=there.token)).data["distance_km"] is None


async def test_trilateration_learns_nothing_finer_than_the_cell(client, make_person, redis, settings):
    """Three attackers, each with several accounts (each account's budget is 12 new cells an hour), walk
    freely around a target in steps of 150 m and far out, and ask 1,000+ times: GET /users/{id}, and the feed
    with max_distance set to each bucket edge (the filter as an oracle). Every answer must equal API.md's rule
    applied to (attacker cell, target cell), computed here without the product code; the answers per attacker
    cell must never differ between positions inside it; and moving the target anywhere within its cell must
    change no answer at all."""
    home = region()
    target = await make_person(gender="female", age=30)
    target_cell = await place(client, target, home)
    budget = settings.location_cells_per_hour
    attackers = [[await make_person(gender="male", dating_gender="female") for _ in range(7)] for _ in range(3)]
    # Each attacker's own walk: a line through the target's neighbourhood at 150 m steps, then points far out.
    walks = []
    for index, accounts in enumerate(attackers):
        bearing = [(1, 0), (0.6, 0.8), (-0.5, 0.87)][index]
        near = [offset(home, bearing[0] * (-2.5 + 0.15 * s), bearing[1] * (-2.5 + 0.15 * s)) for s in range(34)]
        far = [offset(home, bearing[0] * km, bearing[1] * km) for km in (4, 7, 9.5, 12, 20, 30, 45, 70, 95, 150)]
        walks.append((accounts, [(p, True) for p in near] + [(p, False) for p in far]))
    answers: dict[int, set] = {}
    queries = 0

    async def feed_shows(account, edge: int) -> int | None:
        """The filter as an oracle: is the target in my feed with max_distance = edge (and at what distance)?"""
        nonlocal queries
        await Preferences.update(min_distance=0, max_distance=edge).where(Preferences.user == account.id).aio_execute()
        await forget_account(redis=redis, user_id=account.id)
        items = (await client.get(FEED, token=account.token)).data["items"]
        queries += 1
        return next((i["distance_km"] for i in items if i["id"] == target.id), None)

    async def ask(account, point, near: bool) -> tuple:
        nonlocal queries
        shown = []
        for _ in range(3):
            shown.append((await client.get(f"/api/v1/users/{target.id}", token=account.token)).data["distance_km"])
            queries += 1
        # Edges that are buckets, where inclusion flips, and edges between buckets (3, 4, shown - 1), which a filter
        # on exact distances would answer differently (Dhondt et al., 2024: the filter as an oracle).
        edges = (1, 3, 4) if near else tuple(e for e in (shown[0] - 1, shown[0]) if e >= 1)
        return tuple(shown), tuple([(edge, await feed_shows(account, edge)) for edge in edges])

    async def move_target_and_run() -> dict[tuple, tuple]:
        """The target moves close to a corner of its cell, then every query is asked again."""
        lat, lng = h3.cell_to_latlng(target_cell)
        vertex = h3.cell_to_boundary(target_cell)[0]
        spot = (lat + 0.9 * (vertex[0] - lat), lng + 0.9 * (vertex[1] - lng))
        assert cell_of(spot) == target_cell and spot != home
        assert (await put_location(client, target, spot)).status == 200
        return await run(sample=3)

    async def run(sample: int = 1) -> dict[tuple, tuple]:
        """Every attacker's walk (every ``sample``-th point of it), asking at each point."""
        seen: dict[tuple, tuple] = {}
        for accounts, points in walks:
            cells_used: dict[int, set[int]] = {}
            for index, (point, is_near) in enumerate(points):
                cell = cell_of(point)
                # the first account with budget left, or one already in this cell
                account = next(a for a in accounts if cell in cells_used.get(a.id, set())
                               or len(cells_used.get(a.id, set())) < budget)
                cells_used.setdefault(account.id, set()).add(cell)
                if index % sample:
                    continue
                moved = await put_location(client, account, point)
                assert moved.status == 200, moved.body
                seen[(account.id, point)] = (cell, await ask(account, point, is_near))
        return seen

    loop = asyncio.get_running_loop()
    debug = loop.get_debug()
    # asyncio debug mode records a traceback for every future, which makes these ~1,300 requests take ~40 s; the
    # suite's CPU check of every loop step (tests/support/slow_callbacks.py) stays on without it.
    loop.set_debug(False)
    try:
        first = await run()
        second = await move_target_and_run()
    finally:
        loop.set_debug(debug)
    for (cell, (shown, oracle)) in first.values():
        predicted = expected_km(cell, target_cell)
        assert shown == (predicted,) * 3
        assert all(seen_km == (predicted if predicted <= edge else None) for edge, seen_km in oracle)
        answers.setdefault(cell, set()).add((shown, oracle))
    assert all(len(a) == 1 for a in answers.values()), "an answer differed within one attacker cell"
    assert len({shown for a in answers.values() for shown, _ in a}) >= 6  # the walk did cross many buckets
    assert max(len([c for c in answers if cell_of(home) != c and h3.grid_distance(c, target_cell) <= 3])
               for _ in [0]) >= 10  # and many cells right around the target
    assert len(second) >= len(first) // 3 and second == {k: first[k] for k in second}  # moved within its cell
    assert queries >= 1000
