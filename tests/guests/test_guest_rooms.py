"""Guests in rooms of this server (client-server API: Guest access, "Server
behaviour"): they join only rooms whose m.room.guest_access is can_join, leave when
it stops being so, read world-readable rooms without joining, set their display name
and sync the rooms they joined."""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.guests.helpers import GUEST_CONFIG, make_guest, membership, set_guest_access
from tests.rooms.helpers import User, make_user


async def _event_count(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events"))


async def _evictions_done(hs: HomeserverHarness) -> None:
    assert hs.server.guest_evictor is not None
    await hs.server.guest_evictor.drain()


async def _room_with_guest_access(alice: User, value: str | None) -> str:
    room = await alice.create_room(preset="public_chat")  # guest_access: forbidden
    if value is not None:
        await set_guest_access(alice, room, value)
    return room


async def test_guest_joins_and_talks_in_a_can_join_room(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    guest = await make_guest(hs)
    room = await _room_with_guest_access(alice, "can_join")
    assert (await guest.join(room))["room_id"] == room
    await guest.send(room, "hi, just visiting")
    messages = await alice.request("GET", f"/rooms/{room}/messages?dir=b&limit=1")
    assert messages["chunk"][0]["sender"] == guest.user_id
    assert messages["chunk"][0]["content"]["body"] == "hi, just visiting"
    # the private_chat preset admits guests too
    private = await alice.create_room(preset="private_chat")
    await alice.invite(private, guest.user_id)
    await guest.join(private)
    assert await membership(alice, private, guest.user_id) == "join"


async def test_guest_refused_where_guests_may_not_join(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    guest = await make_guest(hs)
    forbidden = await _room_with_guest_access(alice, None)  # the preset's "forbidden"
    odd = await _room_with_guest_access(alice, "CAN_JOIN")
    invited = await _room_with_guest_access(alice, "forbidden")
    await alice.invite(invited, guest.user_id)
    before = await _event_count(hs)
    for room in (forbidden, odd, invited):
        err = await guest.request("POST", f"/rooms/{room}/join", {}, expect=403)
        assert err["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
        err = await guest.request("POST", f"/join/{room}", {}, expect=403)
        assert err["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
        # nor through the state endpoint
        err = await guest.request(
            "PUT",
            f"/rooms/{room}/state/m.room.member/{guest.user_id}",
            {"membership": "join"},
            expect=403,
        )
        assert err["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    assert await _event_count(hs) == before
    assert await membership(alice, forbidden, guest.user_id) is None
    assert await membership(alice, invited, guest.user_id) == "invite"
    # a full user joins such rooms as before
    bob = await make_user(hs, "bob")
    await bob.join(forbidden)


async def test_guests_leave_when_guest_access_is_revoked(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    guest = await make_guest(hs)
    invited_guest = await make_guest(hs)
    room = await _room_with_guest_access(alice, "can_join")
    await bob.join(room)
    await guest.join(room)
    await alice.invite(room, invited_guest.user_id)

    # other state changes evict nobody
    await alice.request("PUT", f"/rooms/{room}/state/m.room.topic/", {"topic": "visitors welcome"})
    await _evictions_done(hs)
    assert await membership(alice, room, guest.user_id) == "join"

    await set_guest_access(alice, room, "forbidden")
    await _evictions_done(hs)
    for g in (guest, invited_guest):
        member = await alice.request(
            "GET", f"/rooms/{room}/state/m.room.member/{g.user_id}?format=event"
        )
        assert member["content"]["membership"] == "leave"
        assert member["sender"] == g.user_id  # the guest leaves; nobody kicks it
    assert await membership(alice, room, bob.user_id) == "join"
    assert await membership(alice, room, alice.user_id) == "join"
    # the guest cannot come back, and a second revocation finds nobody to evict
    err = await guest.request("POST", f"/rooms/{room}/join", {}, expect=403)
    assert err["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    before = await _event_count(hs)
    await alice.request(
        "PUT", f"/rooms/{room}/state/m.room.guest_access/", {"guest_access": "nope"}
    )
    await _evictions_done(hs)
    assert await _event_count(hs) == before + 1


async def test_guest_access_event_removed_content_evicts(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    guest = await make_guest(hs)
    room = await _room_with_guest_access(alice, "can_join")
    await guest.join(room)
    await alice.request("PUT", f"/rooms/{room}/state/m.room.guest_access/", {})
    await _evictions_done(hs)
    assert await membership(alice, room, guest.user_id) == "leave"


async def test_an_upgraded_guest_stays(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    guest = await make_guest(hs)
    room = await _room_with_guest_access(alice, "can_join")
    await guest.join(room)
    await hs.server.client.accounts.upgrade_guest(guest.user_id, "pw", login=False)
    await set_guest_access(alice, room, "forbidden")
    await _evictions_done(hs)
    assert await membership(alice, room, guest.user_id) == "join"


async def test_guest_display_name_reaches_its_rooms(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    guest = await make_guest(hs)
    room = await _room_with_guest_access(alice, "can_join")
    await guest.join(room)
    await guest.request("PUT", f"/profile/{guest.user_id}/displayname", {"displayname": "creeper"})
    assert await guest.request("GET", f"/profile/{guest.user_id}/displayname") == {
        "displayname": "creeper"
    }
    member = await guest.state(room, "m.room.member", guest.user_id)
    assert member == {"membership": "join", "displayname": "creeper"}


async def _world_readable_room(alice: User) -> tuple[str, str]:
    room = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "world_readable"},
    )
    return room, await alice.send(room, "for everyone")


async def test_guest_reads_world_readable_rooms_without_joining(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    guest = await make_guest(hs)
    room, event_id = await _world_readable_room(alice)
    state = await guest.request("GET", f"/rooms/{room}/state")
    assert {e["type"] for e in state} >= {"m.room.create", "m.room.history_visibility"}
    assert (await guest.state(room, "m.room.member", alice.user_id))["membership"] == "join"
    members = await guest.request("GET", f"/rooms/{room}/members")
    assert [e["state_key"] for e in members["chunk"]] == [alice.user_id]
    messages = await guest.request("GET", f"/rooms/{room}/messages?dir=b&limit=5")
    assert event_id in [e["event_id"] for e in messages["chunk"]]
    assert (await guest.request("GET", f"/rooms/{room}/event/{event_id}"))["event_id"] == event_id
    context = await guest.request("GET", f"/rooms/{room}/context/{event_id}")
    assert context["event"]["event_id"] == event_id
    # reading is not joining: sending is refused
    err = await guest.request("PUT", f"/rooms/{room}/send/m.room.message/t1", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"


async def test_guest_cannot_read_other_rooms_without_joining(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    guest = await make_guest(hs)
    room = await alice.create_room(preset="public_chat")  # history: shared
    for reader in (guest, bob):
        for path in (
            f"/rooms/{room}/state",
            f"/rooms/{room}/state/m.room.member/{alice.user_id}",
            f"/rooms/{room}/members",
        ):
            err = await reader.request("GET", path, expect=403)
            assert err["errcode"] == "M_FORBIDDEN"


async def test_full_users_read_world_readable_rooms_too(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room, _event_id = await _world_readable_room(alice)
    assert (await bob.state(room, "m.room.history_visibility"))["history_visibility"] == (
        "world_readable"
    )
    # but a user who left reads the state as of their leave, not the current one
    await bob.join(room)
    await bob.leave(room)
    await alice.request("PUT", f"/rooms/{room}/state/m.room.topic/", {"topic": "later"})
    err = await bob.request("GET", f"/rooms/{room}/state/m.room.topic/", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"


def _timeline(sync: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    return list(sync["rooms"]["join"][room_id]["timeline"]["events"])


async def test_guest_syncs_a_shared_guest_access_room(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    alice = await make_user(hs, "alice")
    guest = await make_guest(hs)
    room = await _room_with_guest_access(alice, "can_join")
    await alice.send(room, "shared")
    # the history visibility is already "shared": setting it again sends nothing new
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "shared"},
    )
    await alice.send(room, "pre_join")
    await guest.join(room)
    await alice.send(room, "post_join")
    events = _timeline(await guest.sync(), room)[-4:]
    assert [e["type"] for e in events] == [
        "m.room.message",
        "m.room.message",
        "m.room.member",
        "m.room.message",
    ]
    assert [e["content"].get("body") for e in events] == ["shared", "pre_join", None, "post_join"]
