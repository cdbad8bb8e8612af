"""Membership across real federating servers: remote joins by room ID and by alias,
messages both ways through /sync, leaves, kicks and bans seen on both sides."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.federation.membership_helpers import (
    has_message,
    in_section,
    members,
    settled,
    sync_until,
)
from tests.federation.rooms import fed_events
from tests.federation.servers import ServerFactory, stop_listening
from tests.rooms.helpers import make_user


async def test_join_by_room_id_and_messages_both_ways(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Federated")
    path = f"/join/{quote(room_id)}?server_name={quote(a.server_name)}"
    assert (await bob.request("POST", path, {}))["room_id"] == room_id
    assert (await members(b, room_id)).get(bob.user_id) == "join"
    assert (await bob.state(room_id, "m.room.name"))["name"] == "Federated"
    await settled(a, b)
    assert (await members(a, room_id)).get(bob.user_id) == "join"

    _sync, bob_since = await sync_until(bob, in_section("join", room_id))
    _sync, alice_since = await sync_until(alice, in_section("join", room_id))
    await alice.send(room_id, "hello bob")
    await sync_until(bob, has_message(room_id, "hello bob"), bob_since)
    await bob.send(room_id, "hello alice")
    await sync_until(alice, has_message(room_id, "hello alice"), alice_since)


async def test_join_by_alias_resolves_over_federation(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    alias = f"#fed:{a.server_name}"
    room_id = await alice.create_room(preset="public_chat", room_alias_name="fed")
    assert (await bob.join(alias))["room_id"] == room_id
    assert (await members(b, room_id)).get(bob.user_id) == "join"


async def test_join_of_unknown_room_or_without_servers_fails(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="private_chat")
    # Not invited: the resident refuses the template.
    path = f"/join/{quote(room_id)}?server_name={quote(a.server_name)}"
    denied = await bob.request("POST", path, {}, expect=403)
    assert denied["errcode"] == "M_FORBIDDEN"
    assert (await members(a, room_id)).get(bob.user_id) is None
    # An unknown room on the named server.
    missing = f"/join/{quote('!nope:' + a.server_name)}?server_name={quote(a.server_name)}"
    assert (await bob.request("POST", missing, {}, expect=404))["errcode"] == "M_NOT_FOUND"


async def test_leave_kick_and_ban_across_servers(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat")
    via = f"?server_name={quote(a.server_name)}"
    await bob.request("POST", f"/join/{quote(room_id)}{via}", {})
    await settled(a, b)
    _s, bob_since = await sync_until(bob, in_section("join", room_id))

    # bob leaves: a normal local leave event, sent to a.
    await bob.leave(room_id)
    await settled(a, b)
    assert (await members(a, room_id)).get(bob.user_id) == "leave"
    _s, bob_since = await sync_until(bob, in_section("leave", room_id), bob_since)

    # bob joins again (b has the room now), alice kicks him.
    await bob.request("POST", f"/join/{quote(room_id)}{via}", {})
    await settled(a, b)
    assert (await members(a, room_id)).get(bob.user_id) == "join"
    await alice.request("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id})
    await settled(a, b)
    assert (await members(b, room_id)).get(bob.user_id) == "leave"

    # A kicked user may rejoin a public room; then a ban sticks.
    await bob.request("POST", f"/join/{quote(room_id)}{via}", {})
    await settled(a, b)
    await alice.request("POST", f"/rooms/{room_id}/ban", {"user_id": bob.user_id})
    await settled(a, b)
    assert (await members(b, room_id)).get(bob.user_id) == "ban"
    again = await bob.request("POST", f"/join/{quote(room_id)}{via}", {}, expect=403)
    assert again["errcode"] == "M_FORBIDDEN"
    assert (await members(a, room_id)).get(bob.user_id) == "ban"


async def test_third_server_gets_the_join_from_the_resident(
    federation_servers: ServerFactory,
) -> None:
    a, b, c = await federation_servers(3)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    carol = await make_user(c.harness, "carol")
    room_id = await alice.create_room(preset="public_chat")
    await bob.request("POST", f"/join/{quote(room_id)}?server_name={quote(a.server_name)}", {})
    await settled(a, b, c)
    # carol joins through b; a learns of it from b (send_join distribution).
    await carol.request("POST", f"/join/{quote(room_id)}?via={quote(b.server_name)}", {})
    await settled(a, b, c)
    assert (await members(a, room_id)).get(carol.user_id) == "join"
    assert (await members(b, room_id)).get(carol.user_id) == "join"
    _s, since = await sync_until(carol, in_section("join", room_id))
    await alice.send(room_id, "hi all")
    await settled(a, b, c)
    await sync_until(carol, has_message(room_id, "hi all"), since)
    assert fed_events(c).sender is not None


async def test_remote_invite_shows_in_sync_and_is_accepted(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="private_chat", name="Secret")
    _s, since = await sync_until(bob, lambda s: True)
    await alice.invite(room_id, bob.user_id)
    sync, since = await sync_until(bob, in_section("invite", room_id), since)
    invite_state = sync["rooms"]["invite"][room_id]["invite_state"]["events"]
    kinds = {(e["type"], e.get("state_key")) for e in invite_state}
    assert ("m.room.name", "") in kinds and ("m.room.member", bob.user_id) in kinds
    # The invite in the room carries both servers' signatures.
    invite_id = (await a.server.stores.state.get_current_state(room_id))[
        ("m.room.member", bob.user_id)
    ]
    stored = await a.server.stores.events.get_event(invite_id)
    assert stored is not None
    assert set(stored.event.signatures) == {a.server_name, b.server_name}
    # Accepting: join with no server named (the inviter's server is used).
    await bob.join(room_id)
    await settled(a, b)
    assert (await members(a, room_id)).get(bob.user_id) == "join"
    await sync_until(bob, in_section("join", room_id), since)


async def test_remote_invite_rejected(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="private_chat")
    await alice.invite(room_id, bob.user_id)
    _s, since = await sync_until(bob, in_section("invite", room_id))
    await bob.leave(room_id)
    await settled(a, b)
    assert (await members(a, room_id)).get(bob.user_id) == "leave"
    sync, _ = await sync_until(bob, in_section("leave", room_id), since)
    assert room_id not in sync["rooms"].get("invite", {})
    _assert_own_leave_alone(sync, room_id, bob.user_id)
    initial = await bob.sync()
    assert room_id not in initial["rooms"].get("invite", {})


def _assert_own_leave_alone(sync: dict[str, Any], room_id: str, user_id: str) -> None:
    """The leave section of a room never joined shows the user's leave alone (an
    out-of-band event, as Synapse shows it)."""
    room = sync["rooms"]["leave"][room_id]
    [event] = room["timeline"]["events"]
    assert (event["type"], event["state_key"], event["sender"]) == (
        "m.room.member",
        user_id,
        user_id,
    )
    assert event["content"]["membership"] == "leave"
    assert room["state"]["events"] == []


async def test_remote_invite_rejected_when_the_resident_is_unreachable(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="private_chat")
    await alice.invite(room_id, bob.user_id)
    _s, since = await sync_until(bob, in_section("invite", room_id))
    await stop_listening(a)
    await bob.leave(room_id)  # made locally, out of band
    sync, _ = await sync_until(bob, in_section("leave", room_id), since)
    _assert_own_leave_alone(sync, room_id, bob.user_id)


async def test_invite_of_remote_user_without_account_is_accepted(
    federation_servers: ServerFactory,
) -> None:
    # As Synapse: the invitee's server takes any invite of one of its user IDs (the
    # spec names no 404 for /invite); the invite waits for the account.
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    room_id = await alice.create_room(preset="private_chat")
    ghost = f"@ghost:{b.server_name}"
    await alice.request("POST", f"/rooms/{room_id}/invite", {"user_id": ghost})
    assert (await members(a, room_id)).get(ghost) == "invite"


async def test_remote_knock_then_invite_and_join(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="private_chat", room_version="10")
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.join_rules/", {"join_rule": "knock"})
    path = f"/knock/{quote(room_id)}?server_name={quote(a.server_name)}"
    assert (await bob.request("POST", path, {}))["room_id"] == room_id
    assert (await members(a, room_id)).get(bob.user_id) == "knock"
    await sync_until(bob, in_section("knock", room_id))
    await alice.invite(room_id, bob.user_id)
    await sync_until(bob, in_section("invite", room_id))
    await bob.join(room_id)
    await settled(a, b)
    assert (await members(a, room_id)).get(bob.user_id) == "join"


async def test_restricted_join_authorised_by_the_resident(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    via = f"?server_name={quote(a.server_name)}"
    space = await alice.create_room(preset="public_chat")
    room_id = await alice.create_room(
        preset="private_chat",
        room_version="10",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}],
                },
            }
        ],
    )
    # Not in the space yet: refused.
    denied = await bob.request("POST", f"/join/{quote(room_id)}{via}", {}, expect=403)
    assert denied["errcode"] == "M_FORBIDDEN"
    await bob.request("POST", f"/join/{quote(space)}{via}", {})
    await settled(a, b)
    await bob.request("POST", f"/join/{quote(room_id)}{via}", {})
    await settled(a, b)
    state = await a.server.stores.state.get_current_state(room_id)
    join = await a.server.stores.events.get_event(state[("m.room.member", bob.user_id)])
    assert join is not None and join.event.membership == "join"
    assert join.event.content["join_authorised_via_users_server"] == alice.user_id
    assert set(join.event.signatures) == {a.server_name, b.server_name}


async def test_rejoin_through_the_other_server_after_leaving_a_room_we_created(
    federation_servers: ServerFactory,
) -> None:
    """alice (a) creates a private room, bob (b) joins, alice leaves: a holds the room
    but no member. bob invites alice back (a holds the invite as an outlier) and
    alice joins through b. Her join is made against b's state, not soft-failed
    against a's stale state (where she left and the room is invite-only)."""
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(
        preset="private_chat", power_level_content_override={"invite": 0}
    )
    await alice.invite(room_id, bob.user_id)
    await bob.join(room_id)
    await settled(a, b)
    await alice.leave(room_id)
    await settled(a, b)
    assert (await members(b, room_id)).get(alice.user_id) == "leave"
    _s, since = await sync_until(alice, lambda s: True)
    await bob.invite(room_id, alice.user_id)
    await sync_until(alice, in_section("invite", room_id), since)
    await alice.join(room_id)
    assert (await members(a, room_id)).get(alice.user_id) == "join"
    await sync_until(alice, in_section("join", room_id), since)
    await settled(a, b)
    assert (await members(b, room_id)).get(alice.user_id) == "join"
    await bob.send(room_id, "welcome back")
    await settled(a, b)
    await sync_until(alice, has_message(room_id, "welcome back"), since)
