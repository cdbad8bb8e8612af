"""GET /initialSync: a snapshot of every room of the user (client-server API r0)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from homeserver.streams import SyncToken
from tests.conftest import HomeserverHarness
from tests.legacy.support import events, make_guest, of_type
from tests.rooms.helpers import User, make_user


async def initial_sync(user: User, expect: int = 200, **params: Any) -> Any:
    return await user.request(
        "GET", "/initialSync", params={k: str(v) for k, v in params.items()}, expect=expect
    )


def room_of(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    [room] = [r for r in body["rooms"] if r["room_id"] == room_id]
    return room


async def test_joined_rooms_state_and_latest_messages(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    public = await alice.create_room(preset="public_chat", visibility="public", topic="t")
    private = await alice.create_room()
    sent = [await alice.send(public, f"m{i}") for i in range(4)]
    body = await initial_sync(alice, limit=3)
    assert set(body) == {"rooms", "presence", "account_data", "receipts", "end"}
    SyncToken.parse(body["end"])
    room = room_of(body, public)
    assert room["membership"] == "join"
    assert room["visibility"] == "public"
    assert room_of(body, private)["visibility"] == "private"
    chunk = room["messages"]["chunk"]
    assert [e["event_id"] for e in chunk] == sent[1:]
    assert chunk[0]["user_id"] == alice.user_id
    state_types = {e["type"] for e in room["state"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.topic", "m.room.member"} <= state_types
    [member] = [e for e in room["state"] if e["type"] == "m.room.member"]
    assert member["user_id"] == alice.user_id and member["state_key"] == alice.user_id

    # messages.start pages further back through /messages
    older = await alice.request(
        "GET",
        f"/rooms/{public}/messages",
        params={"from": room["messages"]["start"], "dir": "b", "limit": "1"},
    )
    assert [e["event_id"] for e in older["chunk"]] == [sent[0]]
    # the end token streams what comes next
    later = await alice.send(public, "later")
    streamed = await events(alice, **{"from": body["end"]})
    assert [e["event_id"] for e in of_type(streamed["chunk"], "m.room.message")] == [later]


async def test_limit_zero_gives_no_messages(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    await alice.send(room_id)
    room = room_of(await initial_sync(alice, limit=0), room_id)
    assert room["messages"]["chunk"] == []
    assert {"start", "end"} <= set(room["messages"])


async def test_invites_and_departed_rooms(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    invited = await alice.create_room()
    await alice.invite(invited, bob.user_id)
    left = await alice.create_room(preset="public_chat")
    await bob.join(left)
    await alice.request("PUT", f"/rooms/{left}/state/madeup.state/", {"body": "before"})
    await alice.send(left, "before bob left")
    await bob.leave(left)
    await alice.send(left, "after bob left")
    await alice.request("PUT", f"/rooms/{left}/state/madeup.state/", {"body": "after"})

    body = await initial_sync(bob)
    room = room_of(body, invited)
    assert room["membership"] == "invite"
    assert room["inviter"] == alice.user_id
    assert room["invite"]["content"]["membership"] == "invite"
    assert room["invite"]["state_key"] == bob.user_id
    assert "messages" not in room
    assert left not in {r["room_id"] for r in body["rooms"]}

    room = room_of(await initial_sync(bob, archived="true", limit=2), left)
    assert room["membership"] == "leave"
    bodies = [e["content"].get("body") for e in room["messages"]["chunk"]]
    assert bodies[0] == "before bob left"
    assert room["messages"]["chunk"][-1]["content"]["membership"] == "leave"
    [madeup] = [e for e in room["state"] if e["type"] == "madeup.state"]
    assert madeup["content"] == {"body": "before"}

    # forgotten rooms are not archived
    await bob.request("POST", f"/rooms/{left}/forget", {})
    body = await initial_sync(bob, archived="true")
    assert left not in {r["room_id"] for r in body["rooms"]}


async def test_presence_receipts_and_account_data(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    event_id = await alice.send(room_id, "read me")
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read/{quote(event_id)}", {})
    await alice.request("PUT", f"/presence/{alice.user_id}/status", {"presence": "online"})
    await bob.request("PUT", f"/presence/{bob.user_id}/status", {"presence": "online"})
    await alice.request("PUT", f"/user/{alice.user_id}/account_data/my.type", {"cats": 1})
    await alice.request(
        "PUT", f"/user/{alice.user_id}/rooms/{room_id}/account_data/my.type", {"rats": 2}
    )
    await alice.request("PUT", f"/user/{alice.user_id}/rooms/{room_id}/tags/work", {})

    body = await initial_sync(alice)
    presence = {p["content"]["user_id"]: p for p in of_type(body["presence"], "m.presence")}
    assert set(presence) == {alice.user_id, bob.user_id}
    assert presence[bob.user_id]["content"]["presence"] == "online"
    assert "last_active_ago" in presence[bob.user_id]["content"]
    [receipt] = body["receipts"]
    assert receipt["type"] == "m.receipt" and receipt["room_id"] == room_id
    assert bob.user_id in receipt["content"][event_id]["m.read"]
    # stored account data only (not the push rules the server computes)
    assert body["account_data"] == [{"type": "my.type", "content": {"cats": 1}}]
    assert room_of(body, room_id)["account_data"] == [
        {"type": "m.tag", "content": {"tags": {"work": {}}}},
        {"type": "my.type", "content": {"rats": 2}},
    ]


async def test_history_visibility_applies_to_messages(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility/",
        {"history_visibility": "joined"},
    )
    await alice.send(room_id, "before bob")
    await bob.join(room_id)
    after = await alice.send(room_id, "after bob")
    chunk = room_of(await initial_sync(bob), room_id)["messages"]["chunk"]
    bodies = [e["content"].get("body") for e in of_type(chunk, "m.room.message")]
    assert bodies == ["after bob"]
    assert chunk[-1]["event_id"] == after
    assert chunk[-2]["state_key"] == bob.user_id


async def test_bad_parameters_and_guests(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    for params in ({"limit": "hello"}, {"limit": "-1"}, {"archived": "maybe"}):
        err = await initial_sync(alice, expect=400, **params)
        assert err["errcode"] == "M_INVALID_PARAM", params
    guest = await make_guest(hs, "guest")
    err = await initial_sync(guest, expect=403)
    assert err["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    resp = await hs.client.get("/_matrix/client/r0/initialSync", headers=alice.auth)
    assert resp.status == 200
