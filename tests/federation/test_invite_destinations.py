"""Where an invite goes: to the invitee's server by ``/invite`` alone, not also in a
``/send`` transaction (that server holds no room it could put the PDU in: SyTest's
fake server even fails the whole transaction); the leave that rescinds the invite
does go to that server, as Synapse sends them."""

from __future__ import annotations

from tests.federation.membership_helpers import in_section, sync_until
from tests.federation.rooms import fed_events, settle
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import make_user


async def test_an_invite_is_not_sent_by_send_but_its_rescinding_is(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="private_chat")
    await alice.invite(room_id, bob.user_id)
    await sync_until(bob, in_section("invite", room_id))
    await settle(a, b)
    sender = fed_events(a).sender
    state = await a.server.stores.state.get_current_state(room_id)
    invite = await a.server.stores.events.get_event(state[("m.room.member", bob.user_id)])
    assert invite is not None and invite.event.membership == "invite"
    assert b.server_name not in await sender.destinations_for(invite.event)

    await alice.request("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id})
    state = await a.server.stores.state.get_current_state(room_id)
    leave = await a.server.stores.events.get_event(state[("m.room.member", bob.user_id)])
    assert leave is not None and leave.event.membership == "leave"
    assert b.server_name in await sender.destinations_for(leave.event, "invite")
