"""Filter endpoints and filters applied by /sync (client-server API: Filtering)."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import make_user


async def test_define_and_get_filter(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    body = {"room": {"timeline": {"limit": 5, "types": ["m.room.message"]}}, "x.custom": 1}
    created = await alice.request("POST", f"/user/{alice.user_id}/filter", body)
    filter_id = created["filter_id"]
    assert isinstance(filter_id, str) and not filter_id.startswith("{")
    assert await alice.request("GET", f"/user/{alice.user_id}/filter/{filter_id}") == body
    second = await alice.request("POST", f"/user/{alice.user_id}/filter", {})
    assert second["filter_id"] != filter_id

    err = await bob.request("GET", f"/user/{alice.user_id}/filter/{filter_id}", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await bob.request("POST", f"/user/{alice.user_id}/filter", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    # bob has no filter with that ID
    err = await bob.request("GET", f"/user/{bob.user_id}/filter/{filter_id}", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    for bad_id in ("999", "abc", "-1", "1" * 40):
        err = await alice.request("GET", f"/user/{alice.user_id}/filter/{bad_id}", expect=404)
        assert err["errcode"] == "M_NOT_FOUND"


async def test_bad_filter_bodies(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    path = f"/user/{alice.user_id}/filter"
    for body, errcode in [
        ({"room": {"timeline": {"limit": "x"}}}, "M_BAD_JSON"),
        ({"room": {"state": {"types": "m.room.member"}}}, "M_BAD_JSON"),
        ({"event_format": "pdu"}, "M_BAD_JSON"),
        ({"room": {"timeline": {"limit": -1}}}, "M_INVALID_PARAM"),
        ([1, 2], "M_BAD_JSON"),
    ]:
        err = await alice.request("POST", path, body, expect=400)
        assert err["errcode"] == errcode, body
    resp = await hs.client.post("/_matrix/client/v3" + path, data=b"{nope", headers=alice.auth)
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_NOT_JSON"
    resp = await hs.client.post("/_matrix/client/v3" + path, json={})
    assert resp.status == 401
    # nothing was stored by the failed requests
    ok = await alice.request("POST", path, {})
    assert ok["filter_id"] == "0"


def _timeline(body: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    return list(body["rooms"]["join"][room_id]["timeline"]["events"])


async def test_sync_with_filter_id_and_inline_filter(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    since = (await alice.sync())["next_batch"]
    await alice.send(room_id, "from alice")
    await bob.send(room_id, "from bob")
    await bob.send(room_id, "custom", event_type="org.example.thing")
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "t"})

    only_messages = {"room": {"timeline": {"types": ["m.room.message"]}}}
    filter_id = (await alice.request("POST", f"/user/{alice.user_id}/filter", only_messages))[
        "filter_id"
    ]
    events = _timeline(await alice.sync(since=since, filter=filter_id), room_id)
    assert [e["content"]["body"] for e in events] == ["from alice", "from bob"]

    not_types = json.dumps({"room": {"timeline": {"not_types": ["m.room.*"]}}})
    events = _timeline(await alice.sync(since=since, filter=not_types), room_id)
    assert [e["type"] for e in events] == ["org.example.thing"]

    wildcard = json.dumps({"room": {"timeline": {"types": ["org.*", "m.room.topic"]}}})
    events = _timeline(await alice.sync(since=since, filter=wildcard), room_id)
    assert [e["type"] for e in events] == ["org.example.thing", "m.room.topic"]

    senders = json.dumps({"room": {"timeline": {"senders": [bob.user_id]}}})
    events = _timeline(await alice.sync(since=since, filter=senders), room_id)
    assert {e["sender"] for e in events} == {bob.user_id} and len(events) == 2

    not_senders = json.dumps({"room": {"timeline": {"not_senders": [bob.user_id]}}})
    events = _timeline(await alice.sync(since=since, filter=not_senders), room_id)
    assert {e["sender"] for e in events} == {alice.user_id}

    not_rooms = json.dumps({"room": {"not_rooms": [room_id]}})
    assert (await alice.sync(filter=not_rooms))["rooms"]["join"] == {}


async def test_selective_filter_reaches_past_the_limit(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    since = (await alice.sync())["next_batch"]
    wanted = await alice.send(room_id, "rare", event_type="org.example.rare")
    for i in range(25):
        await alice.send(room_id, f"noise {i}")
    flt = json.dumps({"room": {"timeline": {"types": ["org.example.rare"], "limit": 3}}})
    room = (await alice.sync(since=since, filter=flt))["rooms"]["join"][room_id]
    assert [e["event_id"] for e in room["timeline"]["events"]] == [wanted]
    assert room["timeline"]["limited"] is False


async def test_timeline_limit_and_event_fields(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    for i in range(4):
        await alice.send(room_id, f"m{i}")
    flt = json.dumps({"room": {"timeline": {"limit": 2}}, "event_fields": ["type", "content.body"]})
    room = (await alice.sync(filter=flt))["rooms"]["join"][room_id]
    assert room["timeline"]["events"] == [
        {"type": "m.room.message", "content": {"body": "m2"}},
        {"type": "m.room.message", "content": {"body": "m3"}},
    ]
    assert room["timeline"]["limited"] is True
    assert all(set(e) <= {"type", "content"} for e in room["state"]["events"])


async def test_federation_event_format(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    event_id = await alice.send(room_id, "pdu")
    flt = json.dumps({"event_format": "federation", "room": {"timeline": {"limit": 1}}})
    [event] = _timeline(await alice.sync(filter=flt), room_id)
    assert {"prev_events", "auth_events", "depth", "hashes", "signatures"} <= set(event)
    # the ID is given though the room version leaves it out of the PDU
    assert event["event_id"] == event_id and event["room_id"] == room_id
    assert event["content"]["body"] == "pdu"


async def test_state_filter_types(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    for i in range(12):
        await alice.send(room_id, f"m{i}")
    flt = json.dumps({"room": {"state": {"types": ["m.room.create", "m.room.power_levels"]}}})
    room = (await alice.sync(filter=flt))["rooms"]["join"][room_id]
    assert sorted(e["type"] for e in room["state"]["events"]) == [
        "m.room.create",
        "m.room.power_levels",
    ]
    nothing = json.dumps({"room": {"state": {"types": []}}})
    room = (await alice.sync(filter=nothing))["rooms"]["join"][room_id]
    assert room["state"]["events"] == []


async def test_lazy_load_members(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    users = [await make_user(hs, name) for name in ("bob", "carol", "dave", "erin")]
    room_id = await alice.create_room(preset="public_chat", name="Big")
    for user in users:
        await user.join(room_id)
    for i in range(12):
        await alice.send(room_id, f"m{i}")
    bob = users[0]
    since = (await bob.sync())["next_batch"]
    await users[1].send(room_id, "carol speaks")

    lazy = json.dumps({"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 3}}})
    room = (await bob.sync(filter=lazy))["rooms"]["join"][room_id]
    members = {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
    senders = {e["sender"] for e in room["timeline"]["events"]}
    assert members == senders | {bob.user_id}
    assert users[2].user_id not in members
    full = await bob.sync(filter=json.dumps({"room": {"timeline": {"limit": 3}}}))
    full_members = {
        e["state_key"]
        for e in full["rooms"]["join"][room_id]["state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert full_members == {alice.user_id} | {u.user_id for u in users}

    incremental = (await bob.sync(since=since, filter=lazy))["rooms"]["join"][room_id]
    members = {
        e["state_key"] for e in incremental["state"]["events"] if e["type"] == "m.room.member"
    }
    assert members == {users[1].user_id}
    redundant = json.dumps(
        {"room": {"state": {"lazy_load_members": True, "include_redundant_members": True}}}
    )
    again = (await bob.sync(since=since, filter=redundant))["rooms"]["join"][room_id]
    assert {e["state_key"] for e in again["state"]["events"]} == {users[1].user_id}
