"""Guests and other servers' rooms: a guest's own server decides its joins (from the
invite's stripped state) and makes it leave when a room stops admitting guests, also
when that change arrives over federation. Other servers never learn who is a guest."""

from __future__ import annotations

from urllib.parse import quote

from tests.federation.membership_helpers import members, settled
from tests.federation.servers import FederatingServer, ServerFactory
from tests.guests.helpers import GUEST_CONFIG, make_guest, set_guest_access
from tests.rooms.helpers import User, make_user


async def _evictions_done(*servers: FederatingServer) -> None:
    for server in servers:
        assert server.server.guest_evictor is not None
        await server.server.guest_evictor.drain()


async def _invite_only_room(alice: User, guest_access: str) -> str:
    room = await alice.create_room(preset="private_chat")
    await set_guest_access(alice, room, guest_access)
    return room


async def test_guest_accepts_invite_to_remote_room_admitting_guests(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2, **GUEST_CONFIG)
    alice = await make_user(a.harness, "alice")
    guest = await make_guest(b.harness)
    room = await _invite_only_room(alice, "can_join")
    await alice.invite(room, guest.user_id)
    assert (await guest.join(room))["room_id"] == room
    await settled(a, b)
    assert (await members(a, room)).get(guest.user_id) == "join"
    # the join says nothing of guests to the other server
    join_id = (await a.server.stores.state.get_current_state(room))[
        ("m.room.member", guest.user_id)
    ]
    join = await a.server.stores.events.get_event(join_id)
    assert join is not None and "kind" not in join.event.content


async def test_guest_refused_remote_room_without_guest_access(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2, **GUEST_CONFIG)
    alice = await make_user(a.harness, "alice")
    guest = await make_guest(b.harness)
    invited = await _invite_only_room(alice, "forbidden")
    await alice.invite(invited, guest.user_id)
    public = await alice.create_room(preset="public_chat")
    await set_guest_access(alice, public, "can_join")
    via = f"?server_name={quote(a.server_name)}"
    for room in (invited, public):
        err = await guest.request("POST", f"/join/{quote(room)}{via}", {}, expect=403)
        assert err["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    await settled(a, b)
    # the invite stands; nothing reached the room's server
    assert (await members(a, invited)).get(guest.user_id) == "invite"
    assert guest.user_id not in await members(a, public)
    # a full user of the same server joins the public room as before
    bob = await make_user(b.harness, "bob")
    await bob.request("POST", f"/join/{quote(public)}{via}", {})


async def test_remote_revocation_makes_local_guests_leave(
    federation_servers: ServerFactory,
) -> None:
    """The room and the guest on ``a``; bob, on ``b``, revokes guest access."""
    a, b = await federation_servers(2, **GUEST_CONFIG)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    guest = await make_guest(a.harness)
    room = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.power_levels/",
        {"users": {bob.user_id: 50}, "state_default": 50},
    )
    await set_guest_access(alice, room, "can_join")
    await bob.request("POST", f"/join/{quote(room)}?server_name={quote(a.server_name)}", {})
    await guest.join(room)
    await settled(a, b)
    assert (await members(b, room)).get(guest.user_id) == "join"

    await set_guest_access(bob, room, "forbidden")
    await settled(a, b)
    await _evictions_done(a, b)
    await settled(a, b)
    for server in (a, b):
        assert (await members(server, room)).get(guest.user_id) == "leave"
        assert (await members(server, room)).get(bob.user_id) == "join"


async def test_local_revocation_makes_remote_guests_leave(
    federation_servers: ServerFactory,
) -> None:
    """The room on ``a``, the guest on ``b``: ``b`` sees the change arrive and makes its
    guest leave."""
    a, b = await federation_servers(2, **GUEST_CONFIG)
    alice = await make_user(a.harness, "alice")
    guest = await make_guest(b.harness)
    bob = await make_user(b.harness, "bob")
    room = await alice.create_room(preset="public_chat")
    await set_guest_access(alice, room, "can_join")
    await bob.request("POST", f"/join/{quote(room)}?server_name={quote(a.server_name)}", {})
    await alice.invite(room, guest.user_id)
    await guest.join(room)
    await settled(a, b)
    assert (await members(a, room)).get(guest.user_id) == "join"

    await set_guest_access(alice, room, "forbidden")
    await settled(a, b)
    await _evictions_done(a, b)
    await settled(a, b)
    for server in (a, b):
        assert (await members(server, room)).get(guest.user_id) == "leave"
        assert (await members(server, room)).get(bob.user_id) == "join"
    leave_id = (await a.server.stores.state.get_current_state(room))[
        ("m.room.member", guest.user_id)
    ]
    leave = await a.server.stores.events.get_event(leave_id)
    assert leave is not None and leave.event.sender == guest.user_id
