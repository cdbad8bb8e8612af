"""Room admin actions: block, make_room_admin, forward extremities, force join."""

from __future__ import annotations

from typing import Any

from tests.admin.rooms.helpers import (
    ADMIN_V1,
    CLIENT,
    auth,
    create_room,
    error_of,
    invite,
    join,
    make_admin,
    make_user,
    q,
    send_text,
)
from tests.conftest import HomeserverHarness


async def state_content(hs: HomeserverHarness, room_id: str, event_type: str, key: str = "") -> Any:
    state = await hs.server.stores.state.get_current_state(room_id)
    stored = await hs.server.stores.events.get_event(state[(event_type, key)])
    assert stored is not None
    return stored.event.content


# -- block ------------------------------------------------------------------------------


async def test_block_and_unblock(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await create_room(hs, alice, preset="public_chat")
    path = f"{ADMIN_V1}/rooms/{q(room)}/block"
    response = await hs.client.get(path, headers=auth(admin))
    assert await response.json() == {"block": False}
    response = await hs.client.put(path, json={"block": True}, headers=auth(admin))
    assert await response.json() == {"block": True}
    response = await hs.client.get(path, headers=auth(admin))
    assert await response.json() == {"block": True, "user_id": "@admin:test.local"}
    response = await hs.client.post(f"{CLIENT}/join/{q(room)}", json={}, headers=auth(bob))
    assert await error_of(response) == (403, "M_FORBIDDEN")
    response = await hs.client.post(
        f"{CLIENT}/rooms/{q(room)}/invite", json={"user_id": "@bob:test.local"}, headers=auth(alice)
    )
    assert await error_of(response) == (403, "M_FORBIDDEN")
    assert await hs.server.stores.state.current_members(room) == {"@alice:test.local": "join"}
    # members already in may still talk and leave
    await send_text(hs, alice, room, "still here")
    response = await hs.client.put(path, json={"block": False}, headers=auth(admin))
    assert await response.json() == {"block": False}
    response = await hs.client.get(path, headers=auth(admin))
    assert await response.json() == {"block": False}
    await join(hs, bob, room)


async def test_block_a_room_this_server_does_not_know(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    room = "!future:remote.example"
    response = await hs.client.put(
        f"{ADMIN_V1}/rooms/{q(room)}/block", json={"block": True}, headers=auth(admin)
    )
    assert response.status == 200
    assert await hs.server.stores.room_admin.blocked_by(room) == "@admin:test.local"


async def test_block_bad_input(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    path = f"{ADMIN_V1}/rooms/{q(room)}/block"
    for body, expected in (
        ({}, (400, "M_MISSING_PARAM")),
        ({"block": "yes"}, (400, "M_BAD_JSON")),
        ([], (400, "M_BAD_JSON")),
    ):
        response = await hs.client.put(path, json=body, headers=auth(admin))
        assert await error_of(response) == expected, body
    response = await hs.client.put(path, data=b"{", headers=auth(admin))
    assert await error_of(response) == (400, "M_NOT_JSON")
    response = await hs.client.put(
        f"{ADMIN_V1}/rooms/nonsense/block", json={"block": True}, headers=auth(admin)
    )
    assert await error_of(response) == (400, "M_INVALID_PARAM")
    assert await hs.server.stores.room_admin.blocked_by(room) is None


# -- make_room_admin --------------------------------------------------------------------


async def test_make_room_admin_invites_into_a_private_room(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    response = await hs.client.post(
        f"{ADMIN_V1}/rooms/{q(room)}/make_room_admin", json={}, headers=auth(admin)
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {}
    levels = await state_content(hs, room, "m.room.power_levels")
    assert levels["users"]["@admin:test.local"] == 100
    members = await hs.server.stores.state.current_members(room)
    assert members["@admin:test.local"] == "invite"
    await join(hs, admin, room)
    response = await hs.client.put(
        f"{CLIENT}/rooms/{q(room)}/state/m.room.name/", json={"name": "Mine"}, headers=auth(admin)
    )
    assert response.status == 200


async def test_make_room_admin_joins_another_user_to_a_public_room(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    await make_user(hs, "bob")
    room = await create_room(hs, alice, preset="public_chat", room_alias_name="pub")
    response = await hs.client.post(
        f"{ADMIN_V1}/rooms/{q('#pub:test.local')}/make_room_admin",
        json={"user_id": "@bob:test.local"},
        headers=auth(admin),
    )
    assert response.status == 200, await response.text()
    levels = await state_content(hs, room, "m.room.power_levels")
    assert levels["users"]["@bob:test.local"] == 100
    assert (await hs.server.stores.state.current_members(room))["@bob:test.local"] == "join"


async def test_make_room_admin_bad_input(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    empty = await create_room(hs, alice)
    response = await hs.client.post(
        f"{CLIENT}/rooms/{q(empty)}/leave", json={}, headers=auth(alice)
    )
    assert response.status == 200
    levels_before = await state_content(hs, room, "m.room.power_levels")
    cases = [
        (room, {"user_id": "@bob:elsewhere.example"}, (400, "M_UNKNOWN")),
        (room, {"user_id": 5}, (400, "M_BAD_JSON")),
        ("!unknown:test.local", {}, (404, "M_NOT_FOUND")),
        ("#unknown:test.local", {}, (404, "M_NOT_FOUND")),
        (empty, {}, (400, "M_UNKNOWN")),  # no local member left to grant power
        ("junk", {}, (400, "M_INVALID_PARAM")),
    ]
    for room_id, body, expected in cases:
        response = await hs.client.post(
            f"{ADMIN_V1}/rooms/{q(room_id)}/make_room_admin", json=body, headers=auth(admin)
        )
        assert await error_of(response) == expected, (room_id, body)
    assert await state_content(hs, room, "m.room.power_levels") == levels_before


# -- forward extremities ----------------------------------------------------------------


async def test_forward_extremities_list_and_delete(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    old = await send_text(hs, alice, room, "old")
    latest = await send_text(hs, alice, room, "latest")
    # a stale second extremity (as a fork would leave), written as test setup
    await hs.server.db.execute(
        "t", "INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2)", room, old
    )
    hs.server.stores.events.forget_purged(room, [], whole_room=True)  # read it afresh
    path = f"{ADMIN_V1}/rooms/{q(room)}/forward_extremities"
    response = await hs.client.get(path, headers=auth(admin))
    body = await response.json()
    assert body["count"] == 2
    assert [r["event_id"] for r in body["results"]] == [latest, old]
    stored = await hs.server.stores.events.get_event(latest)
    assert stored is not None
    assert body["results"][0]["depth"] == stored.depth
    assert body["results"][0]["state_group"] == stored.state_group
    assert isinstance(body["results"][0]["received_ts"], int)

    response = await hs.client.delete(path, headers=auth(admin))
    assert await response.json() == {"deleted": 1}
    response = await hs.client.get(path, headers=auth(admin))
    assert [r["event_id"] for r in (await response.json())["results"]] == [latest]
    response = await hs.client.delete(path, headers=auth(admin))
    assert await response.json() == {"deleted": 0}
    new = await send_text(hs, alice, room, "new")
    stored = await hs.server.stores.events.get_event(new)
    assert stored is not None and list(stored.event.prev_event_ids) == [latest]


# -- force join -------------------------------------------------------------------------


async def test_force_join_public_and_private_rooms(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    await make_user(hs, "bob")
    public = await create_room(hs, alice, preset="public_chat", room_alias_name="lobby")
    response = await hs.client.post(
        f"{ADMIN_V1}/join/{q('#lobby:test.local')}",
        json={"user_id": "@bob:test.local"},
        headers=auth(admin),
    )
    assert await response.json() == {"room_id": public}
    assert (await hs.server.stores.state.current_members(public))["@bob:test.local"] == "join"

    private = await create_room(hs, alice)
    body = {"user_id": "@bob:test.local"}
    # the admin is not in the private room: cannot invite bob into it
    response = await hs.client.post(f"{ADMIN_V1}/join/{q(private)}", json=body, headers=auth(admin))
    assert await error_of(response) == (403, "M_FORBIDDEN")
    assert "@bob:test.local" not in await hs.server.stores.state.current_members(private)
    await invite(hs, alice, private, "@admin:test.local")
    await join(hs, admin, private)
    response = await hs.client.post(f"{ADMIN_V1}/join/{q(private)}", json=body, headers=auth(admin))
    assert await response.json() == {"room_id": private}
    assert (await hs.server.stores.state.current_members(private))["@bob:test.local"] == "join"


async def test_force_join_bad_input(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice, preset="public_chat")
    cases: list[tuple[str, Any, tuple[int, str]]] = [
        (room, {}, (400, "M_MISSING_PARAM")),
        (room, {"user_id": 7}, (400, "M_BAD_JSON")),
        (room, {"user_id": "@someone:elsewhere.example"}, (400, "M_UNKNOWN")),
        (room, {"user_id": "@ghost:test.local"}, (404, "M_NOT_FOUND")),
        ("!unknown:test.local", {"user_id": "@alice:test.local"}, (404, "M_NOT_FOUND")),
        ("#nowhere:test.local", {"user_id": "@alice:test.local"}, (404, "M_NOT_FOUND")),
        ("rubbish", {"user_id": "@alice:test.local"}, (400, "M_INVALID_PARAM")),
    ]
    for room_id, body, expected in cases:
        response = await hs.client.post(
            f"{ADMIN_V1}/join/{q(room_id)}", json=body, headers=auth(admin)
        )
        assert await error_of(response) == expected, (room_id, body)
    response = await hs.client.post(f"{ADMIN_V1}/join/{q(room)}", data=b"x", headers=auth(admin))
    assert await error_of(response) == (400, "M_NOT_JSON")
    assert await hs.server.stores.state.current_members(room) == {"@alice:test.local": "join"}


async def test_make_room_admin_in_a_room_whose_creator_has_infinite_power(
    hs: HomeserverHarness,
) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice, room_version="12", preset="public_chat")
    response = await hs.client.post(
        f"{ADMIN_V1}/rooms/{q(room)}/make_room_admin", json={}, headers=auth(admin)
    )
    assert response.status == 200, await response.text()
    levels = await state_content(hs, room, "m.room.power_levels")
    assert levels["users"] == {"@admin:test.local": 100}
    assert (await hs.server.stores.state.current_members(room))["@admin:test.local"] == "join"
