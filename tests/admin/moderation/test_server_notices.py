"""Server notices: POST/PUT /_synapse/admin/v1/send_server_notice, the per-user
notices room (made once, tagged, read-only and not leavable for the user), and the
``server_notices`` config."""

from __future__ import annotations

from typing import Any

from tests.admin.moderation.helpers import (
    ADMIN,
    CLIENT,
    admin_and_user,
    auth,
    check_admin_only,
    expect_error,
    join,
)
from tests.conftest import HarnessFactory, HomeserverHarness

NOTICES = {
    "system_mxid_localpart": "notices",
    "system_mxid_display_name": "Server Notices",
    "room_name": "Notices",
    "room_topic": "From your admins",
}
SEND = f"{ADMIN}/send_server_notice"


async def notice_rooms(hs: HomeserverHarness) -> list[Any]:
    return list(
        await hs.server.db.fetchall(
            "test_notice_rooms", "SELECT user_id, room_id FROM server_notice_rooms"
        )
    )


async def membership(hs: HomeserverHarness, room_id: str, user_id: str) -> str | None:
    return await hs.server.client.membership.membership_of(room_id, user_id)


async def send_notice(hs: HomeserverHarness, admin: str, body: Any) -> str:
    response = await hs.client.post(SEND, json=body, headers=auth(admin))
    assert response.status == 200, await response.text()
    return str((await response.json())["event_id"])


async def room_of(hs: HomeserverHarness, event_id: str) -> str:
    stored = await hs.server.stores.events.get_event(event_id)
    assert stored is not None
    return stored.event.room_id


async def test_notices_need_the_config(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    body = {"user_id": "@user:test.local", "content": {"msgtype": "m.text", "body": "hi"}}
    response = await hs.client.post(SEND, json=body, headers=auth(admin))
    await expect_error(response, 400, "M_UNKNOWN")
    response = await hs.client.put(f"{SEND}/txn1", json=body, headers=auth(admin))
    await expect_error(response, 400, "M_UNKNOWN")
    assert await notice_rooms(hs) == []
    assert await hs.server.stores.accounts.get_user("@server:test.local") is None


async def test_first_notice_makes_a_room_the_user_cannot_write_in(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(server_notices=NOTICES)
    admin, user = await admin_and_user(hs)
    content = {"msgtype": "m.text", "body": "Maintenance tonight"}
    event_id = await send_notice(hs, admin, {"user_id": "@user:test.local", "content": content})
    room_id = await room_of(hs, event_id)
    assert await notice_rooms(hs) == [("@user:test.local", room_id)]

    system = await hs.server.stores.accounts.get_user("@notices:test.local")
    assert system is not None
    profile = await hs.server.stores.accounts.get_profile("@notices:test.local")
    assert profile is not None and profile[0] == "Server Notices"
    assert await membership(hs, room_id, "@notices:test.local") == "join"
    assert await membership(hs, room_id, "@user:test.local") == "invite"
    response = await hs.client.get(
        f"{CLIENT}/user/@user:test.local/rooms/{room_id}/tags", headers=auth(user)
    )
    assert "m.server_notice" in (await response.json())["tags"]

    # the invite cannot be rejected
    response = await hs.client.post(f"{CLIENT}/rooms/{room_id}/leave", json={}, headers=auth(user))
    await expect_error(response, 403, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM")
    await join(hs, user, room_id)
    response = await hs.client.get(f"{CLIENT}/rooms/{room_id}/event/{event_id}", headers=auth(user))
    assert (await response.json())["content"] == content
    response = await hs.client.get(f"{CLIENT}/rooms/{room_id}/state", headers=auth(user))
    state = {(e["type"], e["state_key"]): e["content"] for e in await response.json()}
    assert state[("m.room.name", "")] == {"name": "Notices"}
    assert state[("m.room.topic", "")]["topic"] == "From your admins"
    assert state[("m.room.create", "")]["m.federate"] is False

    # read-only for the user
    response = await hs.client.post(
        f"{CLIENT}/rooms/{room_id}/send/m.room.message",
        json={"msgtype": "m.text", "body": "reply"},
        headers=auth(user),
    )
    await expect_error(response, 403, "M_FORBIDDEN")

    # the next notice goes to the same room
    second = await send_notice(
        hs, admin, {"user_id": "@user:test.local", "content": {"msgtype": "m.text", "body": "2"}}
    )
    assert await room_of(hs, second) == room_id
    assert len(await notice_rooms(hs)) == 1

    # once joined the user may leave (the spec: servers should not prevent it; Synapse
    # does not); the next notice comes in a new room, to which they are invited again
    response = await hs.client.put(
        f"{CLIENT}/rooms/{room_id}/state/m.room.member/@user:test.local",
        json={"membership": "leave"},
        headers=auth(user),
    )
    assert response.status == 200, await response.text()
    third = await send_notice(
        hs, admin, {"user_id": "@user:test.local", "content": {"msgtype": "m.text", "body": "3"}}
    )
    new_room = await room_of(hs, third)
    assert new_room != room_id
    assert await membership(hs, new_room, "@user:test.local") == "invite"
    response = await hs.client.post(f"{CLIENT}/rooms/{new_room}/leave", json={}, headers=auth(user))
    await expect_error(response, 403, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM")


async def test_auto_join_state_events_and_retries(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(server_notices={**NOTICES, "auto_join": True})
    admin, _ = await admin_and_user(hs)
    body = {"user_id": "@user:test.local", "content": {"msgtype": "m.text", "body": "once"}}
    first = await hs.client.put(f"{SEND}/abc", json=body, headers=auth(admin))
    assert first.status == 200
    event_id = (await first.json())["event_id"]
    room_id = await room_of(hs, event_id)
    assert await membership(hs, room_id, "@user:test.local") == "join"
    again = await hs.client.put(f"{SEND}/abc", json=body, headers=auth(admin))
    assert (await again.json())["event_id"] == event_id
    other = await hs.client.put(f"{SEND}/def", json=body, headers=auth(admin))
    assert (await other.json())["event_id"] != event_id
    state_id = await send_notice(
        hs,
        admin,
        {
            "user_id": "@user:test.local",
            "type": "m.example.notice_state",
            "state_key": "k",
            "content": {"level": 1},
        },
    )
    stored = await hs.server.stores.events.get_event(state_id)
    assert stored is not None
    assert (stored.event.type, stored.event.state_key) == ("m.example.notice_state", "k")
    assert stored.event.room_id == room_id
    count = await hs.server.db.fetchval(
        "test_count_notices",
        "SELECT COUNT(*) FROM events WHERE room_id = $1 AND type = $2",
        room_id,
        "m.room.message",
    )
    assert count == 2


async def test_notice_requests_are_checked(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(server_notices=NOTICES)
    admin, user = await admin_and_user(hs)
    text = {"msgtype": "m.text", "body": "x"}
    for body, status, errcode in (
        ({"user_id": "@ghost:test.local", "content": text}, 404, "M_NOT_FOUND"),
        ({"user_id": "@notices:test.local", "content": text}, 404, "M_NOT_FOUND"),
        ({"user_id": "@someone:remote.example", "content": text}, 400, "M_UNKNOWN"),
        ({"user_id": "not-a-user", "content": text}, 400, "M_INVALID_PARAM"),
        ({"content": text}, 400, "M_MISSING_PARAM"),
        ({"user_id": "@user:test.local"}, 400, "M_MISSING_PARAM"),
        ({"user_id": "@user:test.local", "content": "text"}, 400, "M_BAD_JSON"),
        ({"user_id": "@user:test.local", "content": text, "type": 5}, 400, "M_BAD_JSON"),
    ):
        response = await hs.client.post(SEND, json=body, headers=auth(admin))
        await expect_error(response, status, errcode)
    await check_admin_only(
        hs, user, "POST", SEND, json={"user_id": "@user:test.local", "content": text}
    )
    await check_admin_only(
        hs, user, "PUT", f"{SEND}/t1", json={"user_id": "@user:test.local", "content": text}
    )
    assert await notice_rooms(hs) == []
    assert await hs.server.stores.accounts.get_user("@notices:test.local") is None


async def test_a_new_room_once_the_user_is_out_of_the_old_one(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(server_notices=NOTICES)
    admin, _ = await admin_and_user(hs)
    body = {"user_id": "@user:test.local", "content": {"msgtype": "m.text", "body": "1"}}
    first_room = await room_of(hs, await send_notice(hs, admin, body))
    # the system user kicks them out (an admin clearing up): the next notice needs a room
    await hs.server.client.membership.kick("@notices:test.local", first_room, "@user:test.local")
    second_room = await room_of(hs, await send_notice(hs, admin, body))
    assert second_room != first_room
    assert await notice_rooms(hs) == [("@user:test.local", second_room)]
    assert await membership(hs, second_room, "@user:test.local") == "invite"
