"""Lazy-loading room members across syncs (client-server API: "Lazy-loading room
members"): senders' memberships, members changed in a gap, and no membership event
a device already holds unless ``include_redundant_members`` asks for it."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

MEMBER = "m.room.member"
LAZY = json.dumps({"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 10}}})
REDUNDANT = json.dumps(
    {
        "room": {
            "state": {"lazy_load_members": True, "include_redundant_members": True},
            "timeline": {"limit": 10},
        }
    }
)


def _members(body: dict[str, Any], room_id: str) -> dict[str, str]:
    """state_key -> membership of the member events in the room's ``state``."""
    room = body["rooms"]["join"].get(room_id, {})
    return {
        e["state_key"]: e["content"]["membership"]
        for e in room.get("state", {}).get("events", [])
        if e["type"] == MEMBER
    }


async def _room_of(alice: User, *others: User) -> str:
    room_id = await alice.create_room(preset="public_chat", name="A room name")
    for user in others:
        await user.join(room_id)
    return room_id


async def _fill(user: User, room_id: str, count: int) -> None:
    for i in range(count):
        await user.send(room_id, f"filler {i}", event_type="a.made.up.filler.type")


async def test_incremental_syncs_send_each_sender_membership_once(hs: HomeserverHarness) -> None:
    alice, bob, carol = [await make_user(hs, n) for n in ("alice", "bob", "carol")]
    room_id = await _room_of(alice, bob, carol)
    await _fill(bob, room_id, 10)
    first = await alice.sync(filter=LAZY)
    state_types = sorted(
        (e["type"], e["state_key"]) for e in first["rooms"]["join"][room_id]["state"]["events"]
    )
    assert state_types == sorted(
        [
            ("m.room.create", ""),
            ("m.room.join_rules", ""),
            ("m.room.power_levels", ""),
            ("m.room.name", ""),
            ("m.room.history_visibility", ""),
            (MEMBER, alice.user_id),
            (MEMBER, bob.user_id),
        ]
    )
    await carol.send(room_id, "carol speaks")
    second = await alice.sync(filter=LAZY, since=first["next_batch"])
    assert _members(second, room_id) == {carol.user_id: "join"}
    # both speak again: the device holds both memberships, none is sent
    await bob.send(room_id, "bob again")
    await carol.send(room_id, "carol again")
    third = await alice.sync(filter=LAZY, since=second["next_batch"])
    assert len(third["rooms"]["join"][room_id]["timeline"]["events"]) == 2
    assert _members(third, room_id) == {}
    # nothing new: the room is not in the response
    quiet = await alice.sync(filter=LAZY, since=third["next_batch"])
    assert quiet["rooms"]["join"] == {}
    # include_redundant_members: the senders' memberships every time
    redundant = await alice.sync(filter=REDUNDANT, since=second["next_batch"])
    assert _members(redundant, room_id) == {bob.user_id: "join", carol.user_id: "join"}


async def test_a_retried_sync_sends_the_members_again(hs: HomeserverHarness) -> None:
    """A device that syncs again from an older token never got the response that
    carried a membership: it is sent again (Synapse would leave it out)."""
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await _room_of(alice, bob)
    await _fill(alice, room_id, 10)  # bob's join is not in the first timeline
    first = await alice.sync(filter=LAZY)
    assert bob.user_id not in _members(first, room_id)
    await bob.send(room_id, "hello")
    lost = await alice.sync(filter=LAZY, since=first["next_batch"])
    assert _members(lost, room_id) == {bob.user_id: "join"}
    retried = await alice.sync(filter=LAZY, since=first["next_batch"])
    assert _members(retried, room_id) == {bob.user_id: "join"}
    # once the device moves on from the response, the member is held
    await bob.send(room_id, "again")
    later = await alice.sync(filter=LAZY, since=retried["next_batch"])
    assert _members(later, room_id) == {}


async def test_each_device_and_initial_sync_start_afresh(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await _room_of(alice, bob)
    await _fill(alice, room_id, 10)
    await bob.send(room_id, "hello")
    first = await alice.sync(filter=LAZY)
    assert bob.user_id in _members(first, room_id)
    login = await hs.client.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "correct horse",
        },
    )
    assert login.status == 200
    session = await login.json()
    phone = User(hs, alice.user_id, session["access_token"], session["device_id"])
    phone_first = await phone.sync(filter=LAZY)
    await bob.send(room_id, "again")
    assert _members(await phone.sync(filter=LAZY, since=phone_first["next_batch"]), room_id) == {}
    assert _members(await alice.sync(filter=LAZY, since=first["next_batch"]), room_id) == {}
    # an initial sync: the device holds nothing, and gets bob's membership again
    again = await alice.sync(filter=LAZY)
    assert bob.user_id in _members(again, room_id)


async def test_gappy_syncs_include_every_member_change(hs: HomeserverHarness) -> None:
    """A limited incremental sync: the members who joined or left in the gap, and the
    senders the device does not hold; an old member who leaves is reported."""
    alice, bob, carol, dave = [await make_user(hs, n) for n in ("alice", "bob", "carol", "dave")]
    room_id = await _room_of(alice, bob, carol)
    await _fill(bob, room_id, 10)
    first = await alice.sync(filter=LAZY)
    assert set(_members(first, room_id)) == {alice.user_id, bob.user_id}
    await dave.join(room_id)
    await _fill(carol, room_id, 20)
    second = await alice.sync(filter=LAZY, since=first["next_batch"])
    assert second["rooms"]["join"][room_id]["timeline"]["limited"] is True
    assert _members(second, room_id) == {carol.user_id: "join", dave.user_id: "join"}
    await dave.leave(room_id)
    await _fill(carol, room_id, 20)
    third = await alice.sync(filter=LAZY, since=second["next_batch"])
    assert _members(third, room_id) == {dave.user_id: "leave"}
    # bob, silent since the first sync, leaves in a gap: his leave is there
    await bob.leave(room_id)
    await _fill(carol, room_id, 10)
    fourth = await alice.sync(filter=LAZY, since=third["next_batch"])
    assert _members(fourth, room_id) == {bob.user_id: "leave"}


async def test_a_membership_in_the_timeline_needs_no_state(hs: HomeserverHarness) -> None:
    """A sender whose membership event comes before their first event in the timeline
    needs none in ``state`` (not their earlier leave, redundant or not)."""
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await _room_of(alice, bob)
    await bob.leave(room_id)
    first = await alice.sync(filter=REDUNDANT)
    await alice.invite(room_id, bob.user_id)
    await bob.join(room_id)
    await bob.send(room_id, "back again")
    for flt in (REDUNDANT, LAZY):
        body = await alice.sync(filter=flt, since=first["next_batch"])
        room = body["rooms"]["join"][room_id]
        assert [e["type"] for e in room["timeline"]["events"]] == [MEMBER, MEMBER, "m.room.message"]
        assert bob.user_id not in _members(body, room_id)
    # the device holds the join from the timeline
    await bob.send(room_id, "again")
    assert _members(await alice.sync(filter=LAZY, since=body["next_batch"]), room_id) == {}
    # the state after the timeline (use_state_after) has it all the same
    after = await alice.sync(filter=REDUNDANT, since=first["next_batch"], use_state_after="true")
    state = after["rooms"]["join"][room_id]["state_after"]["events"]
    assert {(e["state_key"], e["content"]["membership"]) for e in state} >= {(bob.user_id, "join")}
