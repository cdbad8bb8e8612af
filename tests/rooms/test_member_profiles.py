"""A new display name or avatar reaches every room the user is joined to (client-server
API: Profiles, "Events on Change of Profile Information")."""

from __future__ import annotations

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import make_user


async def _event_count(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events"))


async def test_profile_changes_reach_joined_rooms(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    first = await alice.create_room(preset="public_chat")
    second = await bob.create_room(preset="public_chat")
    left = await bob.create_room(preset="public_chat")
    await bob.join(first)
    await alice.join(second)
    await alice.join(left)
    await alice.leave(left)

    await alice.request("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Al"})
    await alice.request(
        "PUT", f"/profile/{alice.user_id}/avatar_url", {"avatar_url": "mxc://test.local/pic"}
    )
    for room in (first, second):
        assert await bob.state(room, "m.room.member", alice.user_id) == {
            "membership": "join",
            "displayname": "Al",
            "avatar_url": "mxc://test.local/pic",
        }
    assert (await bob.state(left, "m.room.member", alice.user_id)) == {"membership": "leave"}
    # removing the display name removes it from the member events
    await alice.request("DELETE", f"/profile/{alice.user_id}/displayname")
    member = await alice.state(first, "m.room.member", alice.user_id)
    assert member == {"membership": "join", "avatar_url": "mxc://test.local/pic"}


async def test_global_profile_replaces_a_per_room_name(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.member/{alice.user_id}",
        {"membership": "join", "displayname": "Alice here"},
    )
    await alice.request("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Al"})
    assert (await alice.state(room, "m.room.member", alice.user_id))["displayname"] == "Al"


async def test_refused_profile_change_sends_nothing(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    before = await _event_count(hs)
    err = await alice.request(
        "PUT", f"/profile/{alice.user_id}/displayname", {"displayname": 7}, expect=400
    )
    assert err["errcode"] == "M_BAD_JSON"
    err = await bob.request(
        "PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "x"}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    assert await _event_count(hs) == before
    assert "displayname" in await alice.state(room, "m.room.member", alice.user_id)
