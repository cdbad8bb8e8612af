"""GET /rooms/{roomId}/context/{eventId} and GET /rooms/{roomId}/timestamp_to_event."""

from __future__ import annotations

import json

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

V1 = "/_matrix/client/v1"


async def setup_room(hs: HomeserverHarness, count: int = 9) -> tuple[User, str, list[str]]:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(preset="public_chat", name="Context")
    ids = []
    for i in range(count):
        hs.clock.advance(1)
        ids.append(await alice.send(room_id, f"m{i}"))
    return alice, room_id, ids


async def test_context_around_an_event(hs: HomeserverHarness) -> None:
    alice, room_id, ids = await setup_room(hs)
    ctx = await alice.request("GET", f"/rooms/{room_id}/context/{ids[4]}", params={"limit": "4"})
    assert ctx["event"]["event_id"] == ids[4]
    assert [e["event_id"] for e in ctx["events_before"]] == [ids[3], ids[2]]
    assert [e["event_id"] for e in ctx["events_after"]] == [ids[5], ids[6]]
    state_types = {e["type"] for e in ctx["state"]}
    assert {"m.room.create", "m.room.name", "m.room.member"} <= state_types
    # The tokens continue with /messages on either side without gaps.
    back = await alice.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "1", "from": ctx["start"]}
    )
    assert [e["event_id"] for e in back["chunk"]] == [ids[1]]
    fwd = await alice.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "f", "limit": "5", "from": ctx["end"]}
    )
    assert [e["event_id"] for e in fwd["chunk"]] == [ids[7], ids[8]]


async def test_context_limit_zero_and_default(hs: HomeserverHarness) -> None:
    alice, room_id, ids = await setup_room(hs, 14)
    ctx = await alice.request("GET", f"/rooms/{room_id}/context/{ids[7]}", params={"limit": "0"})
    assert ctx["event"]["event_id"] == ids[7]
    assert ctx["events_before"] == [] and ctx["events_after"] == []
    ctx = await alice.request("GET", f"/rooms/{room_id}/context/{ids[7]}")
    assert len(ctx["events_before"]) == 5 and len(ctx["events_after"]) == 5


async def test_context_filter(hs: HomeserverHarness) -> None:
    alice, room_id, ids = await setup_room(hs, 3)
    bob = await make_user(hs, "bob")
    await bob.join(room_id)
    bob_msg = await bob.send(room_id, "bob")
    last = await alice.send(room_id, "last")
    filt = {"types": ["m.room.message"], "lazy_load_members": True}
    ctx = await alice.request(
        "GET", f"/rooms/{room_id}/context/{bob_msg}", params={"filter": json.dumps(filt)}
    )
    assert [e["event_id"] for e in ctx["events_before"]] == [ids[2], ids[1], ids[0]]
    assert [e["event_id"] for e in ctx["events_after"]] == [last]
    # With lazy loading and a type filter that excludes members, state is empty...
    assert ctx["state"] == []
    filt = {"lazy_load_members": True}
    ctx = await alice.request(
        "GET", f"/rooms/{room_id}/context/{bob_msg}", params={"filter": json.dumps(filt)}
    )
    assert {e["state_key"] for e in ctx["state"]} == {alice.user_id, bob.user_id}


async def test_context_errors(hs: HomeserverHarness) -> None:
    alice, room_id, ids = await setup_room(hs, 1)
    err = await alice.request("GET", f"/rooms/{room_id}/context/$nope", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    other = await alice.create_room()
    err = await alice.request("GET", f"/rooms/{other}/context/{ids[0]}", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    eve = await make_user(hs, "eve")
    err = await eve.request("GET", f"/rooms/{room_id}/context/{ids[0]}", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await alice.request(
        "GET", f"/rooms/{room_id}/context/{ids[0]}", params={"limit": "x"}, expect=400
    )
    assert err["errcode"] == "M_INVALID_PARAM"


async def test_context_of_an_event_before_joining_with_joined_visibility(
    hs: HomeserverHarness,
) -> None:
    alice, room_id, _ids = await setup_room(hs, 1)
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility",
        {"history_visibility": "joined"},
    )
    hidden = await alice.send(room_id, "hidden")
    bob = await make_user(hs, "bob")
    await bob.join(room_id)
    err = await bob.request("GET", f"/rooms/{room_id}/context/{hidden}", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"


# -- timestamp_to_event --------------------------------------------------------------------


async def ts_lookup(
    user: User, room_id: str, expect: int = 200, **params: str
) -> dict[str, object]:
    resp = await user.hs.client.get(
        f"{V1}/rooms/{room_id}/timestamp_to_event", params=params, headers=user.auth
    )
    body = await resp.json()
    assert resp.status == expect, body
    return dict(body)


async def test_timestamp_to_event(hs: HomeserverHarness) -> None:
    alice, room_id, ids = await setup_room(hs, 3)
    events = [await hs.server.stores.events.get_event(i) for i in ids]
    ts = [e.event.origin_server_ts for e in events if e is not None]
    found = await ts_lookup(alice, room_id, ts=str(ts[1]), dir="f")
    assert found == {"event_id": ids[1], "origin_server_ts": ts[1]}
    found = await ts_lookup(alice, room_id, ts=str(ts[1] + 1), dir="f")
    assert found["event_id"] == ids[2]
    found = await ts_lookup(alice, room_id, ts=str(ts[1] + 1), dir="b")
    assert found["event_id"] == ids[1]
    err = await ts_lookup(alice, room_id, expect=404, ts=str(ts[2] + 1), dir="f")
    assert err["errcode"] == "M_NOT_FOUND"
    err = await ts_lookup(alice, room_id, expect=404, ts="1", dir="b")
    assert err["errcode"] == "M_NOT_FOUND"


@pytest.mark.parametrize(
    ("params", "status", "errcode"),
    [
        ({"dir": "f"}, 400, "M_MISSING_PARAM"),
        ({"ts": "1"}, 400, "M_MISSING_PARAM"),
        ({"ts": "abc", "dir": "f"}, 400, "M_INVALID_PARAM"),
        ({"ts": "1", "dir": "up"}, 400, "M_INVALID_PARAM"),
        ({"ts": "-1", "dir": "f"}, 400, "M_INVALID_PARAM"),
        # beyond a 64-bit integer: the database cannot hold it (it was a 500)
        ({"ts": str(2**63), "dir": "b"}, 400, "M_INVALID_PARAM"),
        ({"ts": "9" * 40, "dir": "f"}, 400, "M_INVALID_PARAM"),
        ({"ts": "9" * 5000, "dir": "f"}, 400, "M_INVALID_PARAM"),
    ],
)
async def test_timestamp_to_event_bad_input(
    hs: HomeserverHarness, params: dict[str, str], status: int, errcode: str
) -> None:
    alice, room_id, _ = await setup_room(hs, 1)
    err = await ts_lookup(alice, room_id, expect=status, **params)
    assert err["errcode"] == errcode
    # the largest timestamp there is still finds the latest event
    found = await ts_lookup(alice, room_id, ts=str(2**63 - 1), dir="b")
    assert isinstance(found["event_id"], str)


async def test_timestamp_to_event_needs_access(hs: HomeserverHarness) -> None:
    _alice, room_id, _ = await setup_room(hs, 1)
    eve = await make_user(hs, "eve")
    err = await ts_lookup(eve, room_id, expect=403, ts="1", dir="f")
    assert err["errcode"] == "M_FORBIDDEN"


async def test_timestamp_to_event_looks_past_a_page_of_invisible_events(
    hs: HomeserverHarness,
) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility",
        {"history_visibility": "joined"},
    )
    hs.clock.advance(1)
    start = hs.clock.time_ms()
    # More events than one page of candidates that bob may not see, some sharing a
    # millisecond: 70 at one timestamp, then 40 a millisecond apart.
    for i in range(110):
        if i >= 70:
            hs.clock.advance(0.001)
        await alice.send(room_id, f"before bob {i}")
    hs.clock.advance(1)
    await bob.join(room_id)
    hs.clock.advance(1)
    await alice.send(room_id, "after bob joined")
    found = await ts_lookup(bob, room_id, ts=str(start), dir="f")
    joined = await hs.server.stores.events.get_event(str(found["event_id"]))
    assert joined is not None
    assert (joined.event.type, joined.event.state_key) == ("m.room.member", bob.user_id)
    # Backwards, as a former member: the latest events are after bob left.
    await bob.leave(room_id)
    hs.clock.advance(1)
    for i in range(60):
        await alice.send(room_id, f"after bob left {i}")
    found = await ts_lookup(bob, room_id, ts=str(hs.clock.time_ms()), dir="b")
    left = await hs.server.stores.events.get_event(str(found["event_id"]))
    assert left is not None
    assert (left.event.sender, left.event.content["membership"]) == (bob.user_id, "leave")
    # Joining later, eve sees nothing of the `joined` stretch: backwards from her join
    # the closest event she may see is the change to `joined` (its value before
    # was `shared`), some 170 events and several pages away.
    eve = await make_user(hs, "eve")
    hs.clock.advance(1)
    await eve.join(room_id)
    found = await ts_lookup(eve, room_id, ts=str(hs.clock.time_ms() - 1), dir="b")
    change = await hs.server.stores.events.get_event(str(found["event_id"]))
    assert change is not None
    assert change.event.type == "m.room.history_visibility"
    # Nothing visible in the direction asked: 404 once every page is read.
    err = await ts_lookup(bob, room_id, expect=404, ts=str(hs.clock.time_ms() - 1), dir="f")
    assert err["errcode"] == "M_NOT_FOUND"
