"""Room admin reads (Synapse's shapes): the room list, details, members, state,
messages and timestamp_to_event, admins only."""

from __future__ import annotations

import pytest

from tests.admin.rooms.helpers import (
    ADMIN_V1,
    auth,
    create_room,
    error_of,
    join,
    make_admin,
    make_user,
    q,
    send_text,
)
from tests.conftest import HomeserverHarness


async def three_rooms(hs: HomeserverHarness) -> tuple[str, str, dict[str, str]]:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    rooms = {
        "alpha": await create_room(
            hs, alice, name="Alpha", room_alias_name="alpha", preset="public_chat"
        ),
        "beta": await create_room(hs, bob, name="beta talk", visibility="public"),
        "gamma": await create_room(
            hs,
            alice,
            name="Gamma",
            initial_state=[
                {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
            ],
        ),
    }
    await join(hs, bob, rooms["alpha"])
    return admin, alice, rooms


async def test_room_list_shape_order_and_paging(hs: HomeserverHarness) -> None:
    admin, _alice, rooms = await three_rooms(hs)
    response = await hs.client.get(f"{ADMIN_V1}/rooms", headers=auth(admin))
    assert response.status == 200
    body = await response.json()
    assert body["total_rooms"] == 3 and body["offset"] == 0
    assert "next_batch" not in body and "prev_batch" not in body
    # by name, as Synapse compares: case matters ("Alpha" < "Gamma" < "beta talk")
    assert [r["room_id"] for r in body["rooms"]] == [rooms["alpha"], rooms["gamma"], rooms["beta"]]
    alpha = body["rooms"][0]
    assert alpha == {
        "room_id": rooms["alpha"],
        "name": "Alpha",
        "canonical_alias": "#alpha:test.local",
        "joined_members": 2,
        "joined_local_members": 2,
        "version": hs.server.config.default_room_version,
        "creator": "@alice:test.local",
        "encryption": None,
        "federatable": True,
        "public": False,
        "join_rules": "public",
        "guest_access": alpha["guest_access"],
        "history_visibility": "shared",
        "state_events": alpha["state_events"],
        "room_type": None,
    }
    assert alpha["state_events"] >= 6
    gamma = body["rooms"][1]
    assert gamma["encryption"] == "m.megolm.v1.aes-sha2"
    assert gamma["join_rules"] == "invite"
    assert body["rooms"][2]["public"] is True

    response = await hs.client.get(
        f"{ADMIN_V1}/rooms?order_by=joined_members&limit=1", headers=auth(admin)
    )
    body = await response.json()
    assert [r["room_id"] for r in body["rooms"]] == [rooms["alpha"]]
    assert body["next_batch"] == 1 and body["total_rooms"] == 3
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms?order_by=joined_members&dir=b&from=1&limit=1", headers=auth(admin)
    )
    body = await response.json()
    assert body["offset"] == 1 and body["prev_batch"] == 0 and body["next_batch"] == 2
    assert body["rooms"][0]["joined_members"] == 1

    response = await hs.client.get(f"{ADMIN_V1}/rooms?order_by=public", headers=auth(admin))
    assert (await response.json())["rooms"][0]["room_id"] == rooms["beta"]


@pytest.mark.parametrize(
    ("term", "wanted"),
    [("alph", ["alpha"]), ("BETA", ["beta"]), ("nothing", []), ("gam", ["gamma"])],
)
async def test_room_list_search(hs: HomeserverHarness, term: str, wanted: list[str]) -> None:
    admin, _alice, rooms = await three_rooms(hs)
    response = await hs.client.get(f"{ADMIN_V1}/rooms?search_term={term}", headers=auth(admin))
    body = await response.json()
    assert [r["room_id"] for r in body["rooms"]] == [rooms[w] for w in wanted]
    assert body["total_rooms"] == len(wanted)


async def test_room_list_search_by_room_id_and_filters(hs: HomeserverHarness) -> None:
    admin, _alice, rooms = await three_rooms(hs)
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms?search_term={q(rooms['gamma'])}", headers=auth(admin)
    )
    assert [r["room_id"] for r in (await response.json())["rooms"]] == [rooms["gamma"]]
    response = await hs.client.get(f"{ADMIN_V1}/rooms?public_rooms=true", headers=auth(admin))
    assert [r["room_id"] for r in (await response.json())["rooms"]] == [rooms["beta"]]
    response = await hs.client.get(f"{ADMIN_V1}/rooms?empty_rooms=true", headers=auth(admin))
    assert (await response.json())["rooms"] == []


async def test_room_list_bad_parameters(hs: HomeserverHarness) -> None:
    admin, _alice, _rooms = await three_rooms(hs)
    for query in ("order_by=colour", "dir=x", "limit=-1", "from=abc", "search_term="):
        response = await hs.client.get(f"{ADMIN_V1}/rooms?{query}", headers=auth(admin))
        assert await error_of(response) == (400, "M_INVALID_PARAM"), query


async def test_room_endpoints_need_an_admin(hs: HomeserverHarness) -> None:
    _admin, alice, rooms = await three_rooms(hs)
    room = q(rooms["alpha"])
    paths = [
        "/rooms",
        f"/rooms/{room}",
        f"/rooms/{room}/members",
        f"/rooms/{room}/state",
        f"/rooms/{room}/messages",
        f"/rooms/{room}/timestamp_to_event?ts=0",
        f"/rooms/{room}/block",
        f"/rooms/{room}/forward_extremities",
    ]
    for path in paths:
        response = await hs.client.get(ADMIN_V1 + path, headers=auth(alice))
        assert await error_of(response) == (403, "M_FORBIDDEN"), path
        response = await hs.client.get(ADMIN_V1 + path)
        assert await error_of(response) == (401, "M_MISSING_TOKEN"), path
    writes = [
        ("PUT", f"{ADMIN_V1}/rooms/{room}/block", {"block": True}),
        ("POST", f"{ADMIN_V1}/rooms/{room}/make_room_admin", {}),
        ("DELETE", f"{ADMIN_V1}/rooms/{room}/forward_extremities", None),
        ("POST", f"{ADMIN_V1}/join/{room}", {"user_id": "@alice:test.local"}),
        ("DELETE", f"{ADMIN_V1}/rooms/{room}", {}),
        ("DELETE", f"/_synapse/admin/v2/rooms/{room}", {}),
        ("POST", f"{ADMIN_V1}/purge_history/{room}", {"purge_up_to_ts": 0}),
        ("GET", f"{ADMIN_V1}/purge_history_status/nope", None),
        ("GET", f"/_synapse/admin/v2/rooms/{room}/delete_status", None),
        ("GET", "/_synapse/admin/v2/rooms/delete_status/nope", None),
    ]
    for method, path, body in writes:
        response = await hs.client.request(method, path, json=body, headers=auth(alice))
        assert await error_of(response) == (403, "M_FORBIDDEN"), path
        response = await hs.client.request(method, path, json=body)
        assert await error_of(response) == (401, "M_MISSING_TOKEN"), path
    assert await hs.server.stores.room_admin.blocked_by(rooms["alpha"]) is None
    assert await hs.server.stores.rooms.room_exists(rooms["alpha"])


async def test_room_details_members_and_state(hs: HomeserverHarness) -> None:
    admin, _alice, rooms = await three_rooms(hs)
    room = rooms["alpha"]
    response = await hs.client.get(f"{ADMIN_V1}/rooms/{q(room)}", headers=auth(admin))
    assert response.status == 200
    body = await response.json()
    assert body["room_id"] == room and body["name"] == "Alpha"
    assert body["joined_local_devices"] == 2  # alice's and bob's
    assert body["forgotten"] is False
    assert body["topic"] is None and body["avatar"] is None

    response = await hs.client.get(f"{ADMIN_V1}/rooms/{q(room)}/members", headers=auth(admin))
    assert await response.json() == {
        "members": ["@alice:test.local", "@bob:test.local"],
        "total": 2,
    }
    response = await hs.client.get(f"{ADMIN_V1}/rooms/{q(room)}/state", headers=auth(admin))
    state = (await response.json())["state"]
    assert {(e["type"], e["state_key"]) for e in state} >= {
        ("m.room.create", ""),
        ("m.room.name", ""),
        ("m.room.member", "@alice:test.local"),
        ("m.room.member", "@bob:test.local"),
    }
    assert all(e["room_id"] == room for e in state)


async def test_unknown_and_malformed_rooms(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    for suffix in ("", "/members", "/state", "/messages", "/forward_extremities"):
        response = await hs.client.get(
            f"{ADMIN_V1}/rooms/{q('!nope:test.local')}{suffix}", headers=auth(admin)
        )
        assert await error_of(response) == (404, "M_NOT_FOUND"), suffix
    response = await hs.client.get(f"{ADMIN_V1}/rooms/not-a-room", headers=auth(admin))
    assert await error_of(response) == (400, "M_INVALID_PARAM")


async def test_messages_of_any_room_and_timestamp_to_event(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    room = await create_room(
        hs,
        alice,
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    hs.clock.advance(10)
    first_ts = hs.clock.time_ms()
    sent = [await send_text(hs, alice, room, f"message {i}") for i in range(5)]
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms/{q(room)}/messages?dir=b&limit=3", headers=auth(admin)
    )
    assert response.status == 200
    body = await response.json()
    assert [e["event_id"] for e in body["chunk"]] == sent[::-1][:3]
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms/{q(room)}/messages?dir=b&limit=3&from={body['end']}",
        headers=auth(admin),
    )
    body = await response.json()
    assert [e["event_id"] for e in body["chunk"]][:2] == sent[1::-1]
    flt = q('{"types": ["m.room.message"]}')
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms/{q(room)}/messages?dir=f&limit=10&filter={flt}", headers=auth(admin)
    )
    assert [e["event_id"] for e in (await response.json())["chunk"]] == sent
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms/{q(room)}/messages?dir=x", headers=auth(admin)
    )
    assert await error_of(response) == (400, "M_INVALID_PARAM")

    response = await hs.client.get(
        f"{ADMIN_V1}/rooms/{q(room)}/timestamp_to_event?ts={first_ts}&dir=f", headers=auth(admin)
    )
    body = await response.json()
    assert body["event_id"] == sent[0] and body["origin_server_ts"] == first_ts
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms/{q(room)}/timestamp_to_event?ts=1&dir=b", headers=auth(admin)
    )
    assert await error_of(response) == (404, "M_NOT_FOUND")
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms/{q(room)}/timestamp_to_event", headers=auth(admin)
    )
    assert await error_of(response) == (400, "M_MISSING_PARAM")
