"""Room upgrades seen by another server: the tombstone reaches it, and when it first
joins the replacement room its users' tags, direct chats and push rules, its aliases
and its directory entry move over (as Synapse does on a remote join). Also: an invite
whose room nobody can take the rejection of is rejected out of band."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.federation.membership_helpers import in_section, join_via, settled, sync_until
from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import User, make_user


async def _upgrade(user: User, room: str) -> str:
    body = {"new_version": "10"}
    return str(
        (await user.request("POST", f"/rooms/{quote(room)}/upgrade", body))["replacement_room"]
    )


async def _tombstone_at(server: FederatingServer, room: str) -> Any:
    state = await server.server.stores.state.get_current_state(room)
    event_id = state.get(("m.room.tombstone", ""))
    stored = await server.server.stores.events.get_event(event_id) if event_id else None
    return None if stored is None else stored.event.content


async def test_remote_server_moves_settings_when_it_joins_the_replacement(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    old = await alice.create_room(preset="public_chat", room_version="10")
    await join_via(bob, old, a)
    await settled(a, b)
    user = quote(bob.user_id)
    await bob.request("PUT", f"/user/{user}/rooms/{quote(old)}/tags/u.fav", {})
    await bob.request("PUT", f"/user/{user}/account_data/m.direct", {alice.user_id: [old]})
    await bob.request("PUT", f"/pushrules/global/room/{quote(old)}", {"actions": ["notify"]})
    # b's alias for the room, and b's directory lists it
    alias = f"#bobs:{b.server_name}"
    await bob.request("PUT", f"/directory/room/{quote(alias)}", {"room_id": old})
    levels = await alice.state(old, "m.room.power_levels")
    levels["users"][bob.user_id] = 100
    await alice.request("PUT", f"/rooms/{old}/state/m.room.power_levels/", levels)
    await settled(a, b)
    await bob.request("PUT", f"/directory/list/room/{quote(old)}", {"visibility": "public"})

    new = await _upgrade(alice, old)
    await settled(a, b)
    assert await _tombstone_at(b, old) == {
        "body": "This room has been replaced",
        "replacement_room": new,
    }
    # nothing moves on b before b is in the new room
    missing = await bob.request("GET", f"/pushrules/global/room/{quote(new)}", expect=404)
    assert missing["errcode"] == "M_NOT_FOUND"

    await join_via(bob, new, a)
    assert (await bob.request("GET", f"/user/{user}/rooms/{quote(new)}/tags")) == {
        "tags": {"u.fav": {}}
    }
    direct = await bob.request("GET", f"/user/{user}/account_data/m.direct")
    assert direct == {alice.user_id: [old, new]}
    rule = await bob.request("GET", f"/pushrules/global/room/{quote(new)}")
    assert rule["actions"] == ["notify"]
    assert (await bob.request("GET", f"/directory/room/{quote(alias)}"))["room_id"] == new
    visibility = await bob.request("GET", f"/directory/list/room/{quote(old)}")
    assert visibility["visibility"] == "private"
    visibility = await bob.request("GET", f"/directory/list/room/{quote(new)}")
    assert visibility["visibility"] == "public"
    # a's own directory moved too
    listed = {r["room_id"] for r in (await alice.request("GET", "/publicRooms"))["chunk"]}
    assert old not in listed


async def test_joining_a_room_without_predecessor_moves_nothing(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    first = await alice.create_room(preset="public_chat", room_version="10")
    await join_via(bob, first, a)
    user = quote(bob.user_id)
    await bob.request("PUT", f"/user/{user}/rooms/{quote(first)}/tags/u.fav", {})
    # a room whose create event names a predecessor b does not know
    other = await alice.create_room(
        preset="public_chat",
        room_version="10",
        creation_content={"predecessor": {"room_id": "!unknown:nowhere", "event_id": "$x"}},
    )
    await join_via(bob, other, a)
    unrelated = await alice.create_room(preset="public_chat", room_version="10")
    await join_via(bob, unrelated, a)
    for room in (other, unrelated):
        tags = await bob.request("GET", f"/user/{user}/rooms/{quote(room)}/tags")
        assert tags == {"tags": {}}


async def test_rejecting_an_invite_nobody_can_take(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room = await alice.create_room(preset="private_chat", room_version="10")
    await alice.invite(room, bob.user_id)
    _sync, since = await sync_until(bob, in_section("invite", room))
    await alice.leave(room)
    # a is no longer in the room: it cannot make bob a leave; b makes it alone
    await bob.leave(room)
    await sync_until(bob, in_section("leave", room), since)
    latest = await b.server.stores.rooms.latest_membership_event_id(bob.user_id, room)
    assert latest is not None
    stored = await b.server.stores.events.get_event(latest)
    assert stored is not None and stored.event.content == {"membership": "leave"}
    assert stored.event.sender == bob.user_id
    fresh = await bob.sync()
    assert room not in fresh.get("rooms", {}).get("invite", {})
