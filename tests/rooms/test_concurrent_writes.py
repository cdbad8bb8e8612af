"""Concurrent writes at a fresh server: no request answers 5xx, none is lost.

Many requests at once on a server that has stored nothing yet: state group and queue
IDs are handed out race-free (a PostgreSQL sequence; SQLite's one writer counts), one
user's room-version-12 rooms created in the same millisecond still get distinct
create events (so distinct room IDs), and write transactions never take every pooled
connection while they wait on reads. The FakeClock stands still, so every request of
a burst happens in the same millisecond.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import make_user

BURST = 12


async def test_one_user_creates_many_rooms_at_once(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    answers = await asyncio.gather(
        *[alice.request("POST", "/createRoom", {"preset": "public_chat"}) for _ in range(BURST)]
    )
    room_ids = {a["room_id"] for a in answers}
    assert len(room_ids) == BURST
    joined = await alice.request("GET", "/joined_rooms")
    assert set(joined["joined_rooms"]) == room_ids
    for room_id in room_ids:
        create = await alice.state(room_id, "m.room.create")
        assert create.get("room_version", "1") == "12" or "creator" in create


async def test_identical_creation_requests_make_distinct_create_events(
    hs: HomeserverHarness,
) -> None:
    alice = await make_user(hs, "alice")
    answers = await asyncio.gather(
        *[alice.request("POST", "/createRoom", {"room_version": "12"}) for _ in range(4)]
    )
    creates = []
    for answer in answers:
        page = await alice.request(
            "GET", f"/rooms/{answer['room_id']}/messages", params={"dir": "f", "limit": "1"}
        )
        creates.append(page["chunk"][0])
    assert len({c["event_id"] for c in creates}) == 4
    # the same content: only the timestamps tell them apart
    assert len({c["origin_server_ts"] for c in creates}) == 4


async def test_many_users_create_rooms_and_send_at_once(hs: HomeserverHarness) -> None:
    users = [await make_user(hs, f"user{i}") for i in range(6)]
    answers = await asyncio.gather(
        *[u.request("POST", "/createRoom", {"preset": "public_chat"}) for u in users for _ in "ab"]
    )
    room_ids = [a["room_id"] for a in answers]
    assert len(set(room_ids)) == len(room_ids)
    first = room_ids[0]
    await asyncio.gather(*[u.join(first) for u in users[1:]])
    sent = await asyncio.gather(*[u.send(first, f"m{i}") for i, u in enumerate(users)])
    page = await users[0].request(
        "GET", f"/rooms/{first}/messages", params={"dir": "b", "limit": "50"}
    )
    seen = {e["event_id"] for e in page["chunk"]}
    assert set(sent) <= seen


async def test_registrations_and_filters_at_once(hs: HomeserverHarness) -> None:
    bodies = await asyncio.gather(*[hs.register(f"reg{i}") for i in range(BURST)])
    assert len({b["user_id"] for b in bodies}) == BURST
    alice = await make_user(hs, "alice")
    filters: list[Any] = await asyncio.gather(
        *[
            alice.request(
                "POST", f"/user/{alice.user_id}/filter", {"room": {"timeline": {"limit": i + 1}}}
            )
            for i in range(BURST)
        ]
    )
    ids = [f["filter_id"] for f in filters]
    assert len(set(ids)) == BURST
    for i, filter_id in enumerate(ids):
        stored = await alice.request("GET", f"/user/{alice.user_id}/filter/{filter_id}")
        assert stored["room"]["timeline"]["limit"] == i + 1
