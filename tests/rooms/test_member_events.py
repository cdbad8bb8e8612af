"""Member events as Synapse makes them: the same state twice is one event, a join
keeps the extra content of ``/join/{roomIdOrAlias}``, a profile change reaches every
joined room, and an invite can be rejected when nobody of this server is left."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


async def _count(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events"))


async def _member(user: User, room: str, target: str) -> Any:
    return await user.state(room, "m.room.member", target)


async def _put(user: User, room: str, event_type: str, content: Any, key: str = "") -> str:
    path = f"/rooms/{room}/state/{event_type}/{quote(key)}"
    return str((await user.request("PUT", path, content))["event_id"])


async def test_same_state_twice_is_one_event(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    first = await _put(alice, room, "a.test.state", {"a_key": "a_value"})
    before = await _count(hs)
    assert await _put(alice, room, "a.test.state", {"a_key": "a_value"}) == first
    assert await _count(hs) == before
    # other content, or the same content from someone else, is a new event
    changed = await _put(alice, room, "a.test.state", {"a_key": "other"})
    assert changed != first
    levels = await alice.state(room, "m.room.power_levels")
    levels["users"][bob.user_id] = 100
    await bob.join(room)
    await _put(alice, room, "m.room.power_levels", levels)
    by_bob = await _put(bob, room, "a.test.state", {"a_key": "other"})
    assert by_bob != changed
    # key order does not make content different
    ordered = await _put(alice, room, "a.test.state", {"x": 1, "y": {"b": 2, "a": 1}})
    assert await _put(alice, room, "a.test.state", {"y": {"a": 1, "b": 2}, "x": 1}) == ordered


async def test_joining_twice_is_one_event(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    member = await alice.request(
        "GET", f"/rooms/{room}/state/m.room.member/{quote(alice.user_id)}?format=event"
    )
    before = await _count(hs)
    assert (await alice.join(room))["room_id"] == room
    assert (await alice.request("POST", f"/rooms/{room}/join", {}))["room_id"] == room
    assert await _count(hs) == before
    again = await alice.request(
        "GET", f"/rooms/{room}/state/m.room.member/{quote(alice.user_id)}?format=event"
    )
    assert again["event_id"] == member["event_id"]


async def test_join_keeps_extra_content(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room = await alice.create_room(preset="public_chat", room_alias_name="extras")
    await bob.request("POST", f"/join/{room}", {"foo": "bar", "membership": "leave"})
    assert await _member(alice, room, bob.user_id) == {
        "membership": "join",
        "displayname": "bob",
        "foo": "bar",
    }
    # by alias; a per-room display name replaces the global one
    await carol.request(
        "POST", f"/join/{quote('#extras:test.local')}", {"foo": 1, "displayname": "C"}
    )
    assert await _member(alice, room, carol.user_id) == {
        "membership": "join",
        "displayname": "C",
        "foo": 1,
    }
    # /rooms/{roomId}/join takes only the reason
    dave = await make_user(hs, "dave")
    await dave.request("POST", f"/rooms/{room}/join", {"foo": "bar", "reason": "hi"})
    assert await _member(alice, room, dave.user_id) == {
        "membership": "join",
        "displayname": "dave",
        "reason": "hi",
    }


async def test_join_content_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    before = await _count(hs)
    for body in (
        {"displayname": 5},
        {"avatar_url": ["mxc://x/y"]},
        {"displayname": "x" * 257},
        {"reason": 3},
    ):
        err = await bob.request("POST", f"/join/{room}", body, expect=400)
        assert err["errcode"] == "M_BAD_JSON", body
    err = await bob.request("POST", f"/join/{room}", {"big": "x" * 70_000}, expect=413)
    assert err["errcode"] == "M_TOO_LARGE"
    assert await _count(hs) == before
    assert (await alice.request("GET", f"/rooms/{room}/members"))["chunk"][-1]["state_key"] == (
        alice.user_id
    )


async def test_profile_change_reaches_joined_rooms(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    joined = await alice.create_room(preset="public_chat")
    other = await alice.create_room(preset="public_chat")
    left = await alice.create_room(preset="public_chat")
    await bob.join(joined)
    await bob.join(other)
    await bob.join(left)
    await bob.leave(left)
    invited = await alice.create_room(preset="private_chat")
    await alice.invite(invited, bob.user_id)
    url = f"/profile/{quote(bob.user_id)}"
    await bob.request("PUT", f"{url}/displayname", {"displayname": "LemurLover"})
    for room in (joined, other):
        assert (await _member(alice, room, bob.user_id))["displayname"] == "LemurLover"
    assert (await _member(alice, left, bob.user_id)) == {"membership": "leave"}
    assert (await _member(alice, invited, bob.user_id))["membership"] == "invite"
    assert (await _member(alice, invited, bob.user_id))["displayname"] == "bob"

    await bob.request("PUT", f"{url}/avatar_url", {"avatar_url": "mxc://test.local/lemur"})
    assert await _member(alice, joined, bob.user_id) == {
        "membership": "join",
        "displayname": "LemurLover",
        "avatar_url": "mxc://test.local/lemur",
    }
    # the same profile again makes no event; removing a field drops it from the rooms
    before = await _count(hs)
    await bob.request("PUT", f"{url}/displayname", {"displayname": "LemurLover"})
    assert await _count(hs) == before
    await bob.request("DELETE", f"{url}/avatar_url")
    assert await _member(alice, other, bob.user_id) == {
        "membership": "join",
        "displayname": "LemurLover",
    }
    # a custom profile field does not touch the rooms
    before = await _count(hs)
    await bob.request("PUT", f"{url}/org.example.field", {"org.example.field": 1})
    assert await _count(hs) == before


async def test_reject_invite_after_the_inviter_left(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="private_chat")
    await alice.invite(room, bob.user_id)
    await alice.leave(room)
    await bob.leave(room)
    sync = await bob.sync()
    assert room not in sync.get("rooms", {}).get("invite", {})
    members = await hs.server.stores.state.current_members(room)
    assert members == {alice.user_id: "leave", bob.user_id: "leave"}
    # leaving again changes nothing (the leave in force is the answer), with another
    # reason it is refused; someone never in the room finds no room to leave
    before = await _count(hs)
    await bob.leave(room)
    again = await bob.request("POST", f"/rooms/{room}/leave", {"reason": "x"}, expect=403)
    assert again["errcode"] == "M_FORBIDDEN"
    carol = await make_user(hs, "carol")
    never = await carol.request("POST", f"/rooms/{room}/leave", {}, expect=404)
    assert never["errcode"] == "M_NOT_FOUND"
    assert await _count(hs) == before
    assert await hs.server.stores.state.current_members(room) == members
