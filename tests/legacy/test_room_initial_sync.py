"""GET /rooms/{roomId}/initialSync: one room, joined, departed or previewed."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import HomeserverHarness
from tests.legacy.support import events, make_guest, of_type
from tests.rooms.helpers import User, make_user


async def room_initial_sync(user: User, room_id: str, expect: int = 200, **params: Any) -> Any:
    return await user.request(
        "GET",
        f"/rooms/{room_id}/initialSync",
        params={k: str(v) for k, v in params.items()},
        expect=expect,
    )


async def test_joined_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat", topic="hello")
    await bob.join(room_id)
    await alice.request(
        "PUT", f"/presence/{alice.user_id}/status", {"presence": "online", "status_msg": "Hi"}
    )
    event_id = await alice.send(room_id, "read me")
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read/{quote(event_id)}", {})
    await alice.request("PUT", f"/user/{alice.user_id}/rooms/{room_id}/tags/fav", {"order": 1})

    body = await room_initial_sync(alice, room_id, limit=2)
    assert body["room_id"] == room_id
    assert body["membership"] == "join"
    assert body["visibility"] == "private"
    assert [e["event_id"] for e in body["messages"]["chunk"]][-1] == event_id
    assert len(body["messages"]["chunk"]) == 2
    assert {"start", "end"} <= set(body["messages"])
    types = {e["type"] for e in body["state"]}
    assert {"m.room.create", "m.room.join_rules", "m.room.member", "m.room.topic"} <= types
    presence = {p["content"]["user_id"]: p["content"] for p in body["presence"]}
    assert set(presence) == {alice.user_id, bob.user_id}
    assert presence[alice.user_id]["presence"] == "online"
    assert presence[alice.user_id]["status_msg"] == "Hi"
    assert "last_active_ago" in presence[alice.user_id]
    [receipt] = body["receipts"]
    assert receipt["room_id"] == room_id and bob.user_id in receipt["content"][event_id]["m.read"]
    assert body["account_data"] == [{"type": "m.tag", "content": {"tags": {"fav": {"order": 1}}}}]

    empty = await room_initial_sync(alice, room_id, limit=0)
    assert empty["messages"]["chunk"] == []


async def test_departed_room_as_it_was(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await alice.request("PUT", f"/rooms/{room_id}/state/madeup.state/", {"body": "S1"})
    await alice.send(room_id, "M1")
    await alice.send(room_id, "M2")
    await bob.leave(room_id)
    await alice.send(room_id, "M3")
    await alice.request("PUT", f"/rooms/{room_id}/state/madeup.state/", {"body": "S2"})

    body = await room_initial_sync(bob, room_id, limit=2)
    assert body["membership"] == "leave"
    chunk = body["messages"]["chunk"]
    assert chunk[0]["content"]["body"] == "M2"
    assert chunk[1]["state_key"] == bob.user_id
    [madeup] = [e for e in body["state"] if e["type"] == "madeup.state"]
    assert madeup["content"] == {"body": "S1"}
    assert body["presence"] == [] and body["receipts"] == []


async def test_previewing_a_world_readable_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    viewer = await make_user(hs, "viewer")
    room_id = await alice.create_room(preset="public_chat")
    await alice.send(room_id, "private")
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility/",
        {"history_visibility": "world_readable"},
    )
    shown = ["public"]
    await alice.send(room_id, shown[0])
    for user in (viewer, await make_guest(hs, "guest")):
        body = await room_initial_sync(user, room_id)
        assert "membership" not in body
        chunk = body["messages"]["chunk"]
        assert chunk[0]["type"] == "m.room.history_visibility"
        assert [e["content"].get("body") for e in chunk[1:]] == shown
        # the end token starts a peek at the room
        shown.append(f"next {len(shown)}")
        sent = await alice.send(room_id, shown[-1])
        streamed = await events(user, room_id=room_id, **{"from": body["messages"]["end"]})
        assert [e["event_id"] for e in of_type(streamed["chunk"], "m.room.message")] == [sent]


async def test_refused_without_membership_or_world_readable_history(
    hs: HomeserverHarness,
) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await alice.send(room_id, "private")
    guest = await make_guest(hs, "guest")
    for user in (bob, guest):
        err = await room_initial_sync(user, room_id, expect=403)
        assert err["errcode"] == "M_FORBIDDEN"
    await alice.invite(room_id, bob.user_id)
    err = await room_initial_sync(bob, room_id, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await room_initial_sync(bob, "!unknown:test.local", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"


async def test_bad_limit(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    for limit in ("hello", "-3", "1.5"):
        err = await room_initial_sync(alice, room_id, expect=400, limit=limit)
        assert err["errcode"] == "M_INVALID_PARAM"
