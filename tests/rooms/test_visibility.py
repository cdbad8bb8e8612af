"""History visibility: the pure rules, and what /messages shows each kind of user."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.rooms.visibility import is_event_visible, may_see, visibility_value
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

# -- the pure rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visibility", "membership", "joined_after", "expected"),
    [
        ("world_readable", None, False, True),
        ("world_readable", "leave", False, True),
        ("joined", "join", False, True),
        ("joined", "invite", True, False),
        ("joined", None, True, False),
        ("shared", None, True, True),
        ("shared", None, False, False),
        ("shared", "leave", False, False),
        ("shared", "invite", False, False),
        ("invited", "invite", False, True),
        ("invited", None, True, False),
        ("invited", "knock", True, False),
        ("invited", "join", False, True),
    ],
)
def test_may_see(
    visibility: str, membership: str | None, joined_after: bool, expected: bool
) -> None:
    assert may_see(visibility, membership, joined_after) is expected


def test_unknown_visibility_is_shared() -> None:
    assert visibility_value("nonsense") == "shared"
    assert visibility_value(None) == "shared"
    assert visibility_value("joined") == "joined"


def test_before_or_after_values() -> None:
    # An hv change from joined to world_readable is visible to anyone.
    assert is_event_visible(
        visibilities=["joined", "world_readable"], memberships=[None], joined_after=False
    )
    # The user's own leave after being joined stays visible to them.
    assert is_event_visible(
        visibilities=["joined"], memberships=["leave", "join"], joined_after=False
    )
    assert not is_event_visible(visibilities=["joined"], memberships=["leave"], joined_after=False)


# -- through the API -------------------------------------------------------------------


async def set_visibility(user: User, room_id: str, value: str) -> None:
    await user.request(
        "PUT", f"/rooms/{room_id}/state/m.room.history_visibility", {"history_visibility": value}
    )


async def visible_bodies(user: User, room_id: str, expect: int = 200) -> Any:
    page = await user.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "100"}, expect=expect
    )
    if expect != 200:
        return page
    return [e["content"]["body"] for e in reversed(page["chunk"]) if e["type"] == "m.room.message"]


async def page_types(user: User, room_id: str) -> list[tuple[str, str | None]]:
    page = await user.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "f", "limit": "100"}
    )
    return [(e["type"], e.get("state_key")) for e in page["chunk"]]


async def test_shared_shows_history_before_join(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await set_visibility(alice, room_id, "shared")
    await alice.send(room_id, "before")
    await bob.join(room_id)
    await alice.send(room_id, "after")
    assert await visible_bodies(bob, room_id) == ["before", "after"]


async def test_joined_hides_history_before_join(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await set_visibility(alice, room_id, "joined")
    await alice.send(room_id, "before")
    await bob.join(room_id)
    await alice.send(room_id, "after")
    assert await visible_bodies(bob, room_id) == ["after"]
    # Bob's own join is visible to him. Events from before history_visibility was
    # set fall under the default (shared), so the room's creation is visible too.
    types = await page_types(bob, room_id)
    assert ("m.room.member", bob.user_id) in types
    assert ("m.room.create", "") in types
    # Alice (joined throughout) sees everything.
    assert await visible_bodies(alice, room_id) == ["before", "after"]


async def test_invited_shows_history_from_the_invite(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="private_chat")
    await set_visibility(alice, room_id, "invited")
    await alice.send(room_id, "before invite")
    await alice.invite(room_id, bob.user_id)
    await alice.send(room_id, "while invited")
    await bob.join(room_id)
    await alice.send(room_id, "after join")
    assert await visible_bodies(bob, room_id) == ["while invited", "after join"]
    page = await bob.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "f", "limit": "100"}
    )
    own = [e["content"]["membership"] for e in page["chunk"] if e.get("state_key") == bob.user_id]
    assert own == ["invite", "join"]


async def test_world_readable_lets_non_members_read(hs: HomeserverHarness) -> None:
    alice, eve = await make_user(hs, "alice"), await make_user(hs, "eve")
    room_id = await alice.create_room(preset="public_chat")
    await set_visibility(alice, room_id, "shared")
    await alice.send(room_id, "shared era")
    await set_visibility(alice, room_id, "world_readable")
    await alice.send(room_id, "readable era")
    assert await visible_bodies(eve, room_id) == ["readable era"]
    # The change to world_readable is visible (its value after allows it).
    types = await page_types(eve, room_id)
    assert ("m.room.history_visibility", "") in types
    # Once the room stops being world readable, non-members are turned away.
    await set_visibility(alice, room_id, "joined")
    err = await visible_bodies(eve, room_id, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"


async def test_left_user_sees_until_they_left(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await set_visibility(alice, room_id, "shared")
    await bob.join(room_id)
    await alice.send(room_id, "while joined")
    await bob.leave(room_id)
    for i in range(3):
        await alice.send(room_id, f"after leave {i}")
    assert await visible_bodies(bob, room_id) == ["while joined"]
    page = await bob.request("GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "1"})
    assert page["chunk"][0]["type"] == "m.room.member"
    assert page["chunk"][0]["content"]["membership"] == "leave"
    # Forwards from the start stops at the leave.
    page = await bob.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "f", "limit": "100"}
    )
    assert page["chunk"][-1]["content"].get("membership") == "leave"
    after = await bob.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "f", "from": page["end"]}
    )
    assert after["chunk"] == [] and "end" not in after


async def test_rejoining_reveals_shared_history_but_not_joined(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await bob.leave(room_id)
    await alice.send(room_id, "shared gap")
    await set_visibility(alice, room_id, "joined")
    await alice.send(room_id, "joined gap")
    await bob.join(room_id)
    assert await visible_bodies(bob, room_id) == ["shared gap"]


async def test_anyone_may_read_the_state_of_a_world_readable_room(hs: HomeserverHarness) -> None:
    """GET /state, /state/{type}/{key} and /members of a world_readable room answer a
    user who never joined (as Synapse lets them peek); other rooms stay 403."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat", name="Open")
    err = await bob.request("GET", f"/rooms/{room}/state", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    await bob.request("GET", f"/rooms/{room}/state/m.room.name/", expect=403)
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "world_readable"},
    )
    state = await bob.request("GET", f"/rooms/{room}/state")
    assert {"type": "m.room.name", "content": {"name": "Open"}}.items() <= {
        k: v for e in state if e["type"] == "m.room.name" for k, v in e.items()
    }.items()
    assert await bob.request("GET", f"/rooms/{room}/state/m.room.name/") == {"name": "Open"}
    members = await bob.request("GET", f"/rooms/{room}/members")
    assert [m["state_key"] for m in members["chunk"]] == [alice.user_id]
    # joined_members stays for members
    await bob.request("GET", f"/rooms/{room}/joined_members", expect=403)
