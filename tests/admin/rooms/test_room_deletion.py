"""Room deletion (``DELETE /_synapse/admin/v1|v2/rooms/{roomId}``): members removed,
aliases moved or deleted, the room blocked, and with ``purge`` every row gone."""

from __future__ import annotations

import json
from typing import Any

from storage.purge import KEPT_ROOM_TABLES
from tests.admin.rooms.helpers import (
    ADMIN_V1,
    ADMIN_V2,
    CLIENT,
    auth,
    count_rows,
    create_room,
    error_of,
    invite,
    join,
    make_admin,
    make_user,
    q,
    send_text,
)
from tests.admin.rooms.tables import tables_with_column
from tests.conftest import HomeserverHarness

KEPT_TABLES = set(KEPT_ROOM_TABLES)


async def busy_room(hs: HomeserverHarness, alice: str, bob: str, alias: str) -> str:
    """A room with rows in as many tables as the client API can reach, plus the few
    that need another server or service (written directly, as test setup)."""
    room = await create_room(hs, alice, name="Busy", room_alias_name=alias, visibility="public")
    await join(hs, bob, room)
    first = await send_text(hs, alice, room, "hello @bob")
    hi = await send_text(hs, bob, room, "hi")
    response = await hs.client.put(
        f"{CLIENT}/rooms/{q(room)}/redact/{q(hi)}/r1", json={}, headers=auth(bob)
    )
    assert response.status == 200
    response = await hs.client.put(
        f"{CLIENT}/rooms/{q(room)}/send/m.reaction/t1",
        json={"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "+"}},
        headers=auth(bob),
    )
    assert response.status == 200
    response = await hs.client.post(
        f"{CLIENT}/rooms/{q(room)}/receipt/m.read/{q(first)}", json={}, headers=auth(bob)
    )
    assert response.status == 200
    response = await hs.client.put(
        f"{CLIENT}/user/{q('@bob:test.local')}/rooms/{q(room)}/account_data/org.example",
        json={"a": 1},
        headers=auth(bob),
    )
    assert response.status == 200
    response = await hs.client.put(
        f"{CLIENT}/user/{q('@bob:test.local')}/rooms/{q(room)}/tags/u.work",
        json={},
        headers=auth(bob),
    )
    assert response.status == 200
    response = await hs.client.post(
        f"{CLIENT}/room_keys/version",
        json={
            "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
            "auth_data": {"public_key": "x"},
        },
        headers=auth(bob),
    )
    assert response.status == 200
    version = (await response.json())["version"]
    key = {"first_message_index": 0, "forwarded_count": 0, "is_verified": False, "session_data": {}}
    response = await hs.client.put(
        f"{CLIENT}/room_keys/keys/{q(room)}/sess?version={version}", json=key, headers=auth(bob)
    )
    assert response.status == 200
    await send_text(hs, alice, room, "@bob:test.local look")  # a highlight for bob
    db = hs.server.db
    await db.execute(
        "t",
        "INSERT INTO federation_outbound_pdus (id, destination, event_id, room_id, stream_ordering,"
        " queued_ts) VALUES ($3, 'remote.example', $1, $2, 1, 0)",
        first,
        room,
        900_000 + len(alias),
    )
    await db.execute(
        "t",
        "INSERT INTO appservice_room_list (appservice_id, network_id, room_id) VALUES ('as', 'n', $1)",
        room,
    )
    await db.execute(
        "t",
        "INSERT INTO backward_extremities (room_id, event_id, depth) VALUES ($1, '$missing', 1)",
        room,
    )
    await db.execute("t", "INSERT INTO event_expiry (event_id, expiry_ts) VALUES ($1, 99)", first)
    await db.execute(
        "t", "INSERT INTO invite_state (event_id, stripped_state) VALUES ($1, '[]')", first
    )
    await db.execute(
        "t", "INSERT INTO forgotten_rooms (user_id, room_id) VALUES ('@carol:test.local', $1)", room
    )
    return room


async def room_rows(hs: HomeserverHarness, room_id: str) -> dict[str, int]:
    """Rows of the room in every table: by room_id, by its events' IDs, by its state groups."""
    db = hs.server.db
    counts = {}
    for table in sorted(await tables_with_column(db, "room_id")):
        counts[table] = await count_rows(hs, table, "room_id = $1", room_id)
    event_ids = [
        r[0]
        for r in await db.fetchall("t", "SELECT event_id FROM events WHERE room_id = $1", room_id)
    ]
    groups = [
        r[0]
        for r in await db.fetchall("t", "SELECT id FROM state_groups WHERE room_id = $1", room_id)
    ]
    return counts | await rows_of(hs, event_ids, groups)


async def rows_of(hs: HomeserverHarness, event_ids: list[str], groups: list[int]) -> dict[str, int]:
    db = hs.server.db
    counts = {}
    for table in sorted(
        await tables_with_column(db, "event_id") - await tables_with_column(db, "room_id")
    ):
        total = 0
        for event_id in event_ids:
            total += await count_rows(hs, table, "event_id = $1", event_id)
        counts[f"{table} (by event)"] = total
    total = 0
    for group in groups:
        total += await count_rows(hs, "state_group_entries", "state_group = $1", group)
    counts["state_group_entries (by group)"] = total
    total = 0
    for event_id in event_ids:
        total += await count_rows(hs, "event_edges", "prev_event_id = $1", event_id)
        total += await count_rows(hs, "event_auth", "auth_id = $1", event_id)
    counts["edges and auth citing the events"] = total
    return counts


async def room_ids_and_groups(hs: HomeserverHarness, room_id: str) -> tuple[list[str], list[int]]:
    db = hs.server.db
    events = [
        r[0]
        for r in await db.fetchall("t", "SELECT event_id FROM events WHERE room_id = $1", room_id)
    ]
    groups = [
        r[0]
        for r in await db.fetchall("t", "SELECT id FROM state_groups WHERE room_id = $1", room_id)
    ]
    return events, groups


async def test_delete_v1_with_purge_removes_every_row(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await busy_room(hs, alice, bob, "busy")
    other = await busy_room(hs, alice, bob, "other")
    before = await room_rows(hs, room)
    # every table that can hold the room's rows holds some before the purge
    empty_before = {t for t, n in before.items() if n == 0}
    assert empty_before <= KEPT_TABLES | {
        "user_directory_public_rooms",
        "push_unread_counts",
        "edges and auth citing the events",
        # features this room does not use (each deleted by room all the same)
        "delayed_events",
        "server_notice_rooms",
        "federation_destination_rooms",
    }, empty_before
    other_before = await room_rows(hs, other)
    events, groups = await room_ids_and_groups(hs, room)

    response = await hs.client.delete(f"{ADMIN_V1}/rooms/{q(room)}", json={}, headers=auth(admin))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body == {
        "kicked_users": ["@alice:test.local", "@bob:test.local"],
        "failed_to_kick_users": [],
        "local_aliases": ["#busy:test.local"],
        "new_room_id": None,
    }
    after = await room_rows(hs, room)
    assert {t: n for t, n in after.items() if n} == {}
    assert {t: n for t, n in (await rows_of(hs, events, groups)).items() if n} == {}
    # the other room is untouched, apart from the kicks' leave events
    assert await room_rows(hs, other) == other_before

    # the server no longer knows the room, through any cache
    assert not await hs.server.stores.rooms.room_exists(room)
    response = await hs.client.get(f"{ADMIN_V1}/rooms/{q(room)}", headers=auth(admin))
    assert await error_of(response) == (404, "M_NOT_FOUND")
    response = await hs.client.get(f"{CLIENT}/rooms/{q(room)}/state", headers=auth(alice))
    assert response.status in (403, 404)
    response = await hs.client.get(f"{CLIENT}/directory/room/{q('#busy:test.local')}")
    assert await error_of(response) == (404, "M_NOT_FOUND")
    response = await hs.client.get(f"{CLIENT}/sync", headers=auth(bob))
    sync = await response.json()
    assert room not in json.dumps(sync["rooms"])
    assert other in sync["rooms"]["join"]
    response = await hs.client.get(f"{CLIENT}/publicRooms", headers=auth(bob))
    assert [r["room_id"] for r in (await response.json())["chunk"]] == [other]
    # and the server goes on: the other room still takes messages
    await send_text(hs, bob, other, "still here")


async def test_shutdown_moves_users_and_aliases_and_blocks(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await make_user(hs, "keeper")
    room = await create_room(hs, alice, room_alias_name="bad", preset="public_chat")
    await join(hs, bob, room)
    response = await hs.client.delete(
        f"{ADMIN_V1}/rooms/{q(room)}",
        json={
            "new_room_user_id": "@keeper:test.local",
            "room_name": "Closed",
            "message": "Gone for good",
            "block": True,
            "purge": False,
        },
        headers=auth(admin),
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    new_room = body["new_room_id"]
    assert body["kicked_users"] == ["@alice:test.local", "@bob:test.local"]
    assert body["local_aliases"] == ["#bad:test.local"]

    response = await hs.client.get(f"{CLIENT}/directory/room/{q('#bad:test.local')}")
    assert (await response.json())["room_id"] == new_room
    # users cannot post in, rejoin or be invited into the old room
    response = await hs.client.post(
        f"{CLIENT}/rooms/{q(room)}/send/m.room.message",
        json={"msgtype": "m.text", "body": "x"},
        headers=auth(alice),
    )
    assert await error_of(response) == (403, "M_FORBIDDEN")
    response = await hs.client.post(f"{CLIENT}/join/{q(room)}", json={}, headers=auth(alice))
    assert await error_of(response) == (403, "M_FORBIDDEN")
    # the room is still there (no purge), but blocked and off the directory
    assert await hs.server.stores.rooms.room_exists(room)
    assert not await hs.server.stores.rooms.is_public(room)
    response = await hs.client.get(f"{ADMIN_V1}/rooms/{q(room)}/block", headers=auth(admin))
    assert await response.json() == {"block": True, "user_id": "@admin:test.local"}
    # the users are in the new room, which names itself, and cannot speak there
    for token in (alice, bob):
        response = await hs.client.get(
            f"{CLIENT}/rooms/{q(new_room)}/state/m.room.name/", headers=auth(token)
        )
        assert await response.json() == {"name": "Closed"}
        response = await hs.client.post(
            f"{CLIENT}/rooms/{q(new_room)}/send/m.room.message",
            json={"msgtype": "m.text", "body": "x"},
            headers=auth(token),
        )
        assert await error_of(response) == (403, "M_FORBIDDEN")
    response = await hs.client.get(
        f"{ADMIN_V1}/rooms/{q(new_room)}/messages?dir=b&limit=5", headers=auth(admin)
    )
    bodies = [e["content"].get("body") for e in (await response.json())["chunk"]]
    assert "Gone for good" in bodies
    # the old room is forgotten by the users
    response = await hs.client.get(f"{ADMIN_V1}/rooms/{q(room)}", headers=auth(admin))
    assert (await response.json())["forgotten"] is True


async def test_delete_v2_runs_in_the_background(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await busy_room(hs, alice, bob, "busy")
    response = await hs.client.delete(
        f"{ADMIN_V2}/rooms/{q(room)}", json={"block": True}, headers=auth(admin)
    )
    assert response.status == 200
    delete_id = (await response.json())["delete_id"]
    await hs.server.admin.room_deletion.wait(delete_id)
    response = await hs.client.get(
        f"{ADMIN_V2}/rooms/delete_status/{delete_id}", headers=auth(admin)
    )
    status = await response.json()
    assert status == {
        "delete_id": delete_id,
        "room_id": room,
        "status": "complete",
        "shutdown_room": {
            "kicked_users": ["@alice:test.local", "@bob:test.local"],
            "failed_to_kick_users": [],
            "local_aliases": ["#busy:test.local"],
            "new_room_id": None,
        },
    }
    response = await hs.client.get(f"{ADMIN_V2}/rooms/{q(room)}/delete_status", headers=auth(admin))
    assert await response.json() == {"results": [status]}
    assert {t: n for t, n in (await room_rows(hs, room)).items() if n} == {"blocked_rooms": 1}
    # blocked after the purge: the room cannot be joined again
    response = await hs.client.post(f"{CLIENT}/join/{q(room)}", json={}, headers=auth(alice))
    assert await error_of(response) == (403, "M_FORBIDDEN")
    # the status is readable for a day
    hs.clock.advance(24 * 3600 + 1)
    response = await hs.client.get(
        f"{ADMIN_V2}/rooms/delete_status/{delete_id}", headers=auth(admin)
    )
    assert await error_of(response) == (404, "M_NOT_FOUND")


async def test_deletion_bad_input(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    before = await room_rows(hs, room)
    cases: list[tuple[str, str, Any, tuple[int, str]]] = [
        ("v1", room, {"block": "yes"}, (400, "M_BAD_JSON")),
        ("v1", room, {"purge": 1}, (400, "M_BAD_JSON")),
        ("v2", room, {"force_purge": "no"}, (400, "M_BAD_JSON")),
        ("v1", room, {"new_room_user_id": "@someone:elsewhere.example"}, (400, "M_INVALID_PARAM")),
        ("v2", room, {"new_room_user_id": "not a user"}, (400, "M_INVALID_PARAM")),
        ("v1", room, {"room_name": 5}, (400, "M_BAD_JSON")),
        ("v1", room, [], (400, "M_BAD_JSON")),
        ("v1", "not-a-room", {}, (400, "M_INVALID_PARAM")),
        ("v1", "!unknown:test.local", {}, (400, "M_UNKNOWN")),
        ("v2", "!unknown:test.local", {}, (404, "M_NOT_FOUND")),
    ]
    for version, room_id, body, expected in cases:
        base = ADMIN_V1 if version == "v1" else ADMIN_V2
        response = await hs.client.delete(
            f"{base}/rooms/{q(room_id)}", json=body, headers=auth(admin)
        )
        assert await error_of(response) == expected, (version, body)
    response = await hs.client.delete(
        f"{ADMIN_V1}/rooms/{q(room)}", data=b"{not json", headers=auth(admin)
    )
    assert await error_of(response) == (400, "M_NOT_JSON")
    assert await room_rows(hs, room) == before
    response = await hs.client.get(f"{ADMIN_V2}/rooms/delete_status/nope", headers=auth(admin))
    assert await error_of(response) == (404, "M_NOT_FOUND")
    response = await hs.client.get(f"{ADMIN_V2}/rooms/{q(room)}/delete_status", headers=auth(admin))
    assert await error_of(response) == (404, "M_NOT_FOUND")


async def test_v1_blocks_a_room_this_server_does_not_know(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    unknown = "!elsewhere:remote.example"
    response = await hs.client.delete(
        f"{ADMIN_V1}/rooms/{q(unknown)}", json={"block": True}, headers=auth(admin)
    )
    assert await response.json() == {
        "kicked_users": [],
        "failed_to_kick_users": [],
        "local_aliases": [],
        "new_room_id": None,
    }
    assert await hs.server.stores.room_admin.blocked_by(unknown) == "@admin:test.local"


async def test_invited_users_are_removed_too(hs: HomeserverHarness) -> None:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    await make_user(hs, "bob")
    room = await create_room(hs, alice)
    await invite(hs, alice, room, "@bob:test.local")
    response = await hs.client.delete(
        f"{ADMIN_V1}/rooms/{q(room)}", json={"purge": False}, headers=auth(admin)
    )
    assert (await response.json())["kicked_users"] == ["@alice:test.local", "@bob:test.local"]
    members = await hs.server.stores.state.current_members(room)
    assert members == {"@alice:test.local": "leave", "@bob:test.local": "leave"}
