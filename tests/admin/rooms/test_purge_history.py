"""``POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]``: the history before
the point leaves the database (rows counted), the state still needed and the current
state stay, and the room goes on working."""

from __future__ import annotations

from typing import Any

from tests.admin.rooms.helpers import (
    ADMIN_V1,
    CLIENT,
    auth,
    count_rows,
    create_room,
    error_of,
    join,
    make_admin,
    make_user,
    q,
    send_text,
)
from tests.conftest import HomeserverHarness


async def purge(
    hs: HomeserverHarness, admin: str, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await hs.client.post(
        f"{ADMIN_V1}/purge_history/{path}", json=body, headers=auth(admin)
    )
    assert response.status == 200, await response.text()
    purge_id = (await response.json())["purge_id"]
    await hs.server.admin.history_purges.wait(purge_id)
    response = await hs.client.get(
        f"{ADMIN_V1}/purge_history_status/{purge_id}", headers=auth(admin)
    )
    return dict(await response.json())


async def room_with_history(hs: HomeserverHarness) -> tuple[str, str, str, str, list[str]]:
    admin = await make_admin(hs)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await create_room(hs, alice, name="History", preset="public_chat")
    await join(hs, bob, room)
    sent = []
    for i in range(6):
        sent.append(await send_text(hs, alice, room, f"message {i}"))
        hs.clock.advance(1000)
    response = await hs.client.put(
        f"{CLIENT}/rooms/{q(room)}/state/m.room.topic/",
        json={"topic": "later"},
        headers=auth(alice),
    )
    assert response.status == 200
    sent.append(await send_text(hs, alice, room, "message 6"))
    return admin, alice, bob, room, sent


async def events_of(hs: HomeserverHarness, room_id: str) -> dict[str, tuple[bool, Any]]:
    rows = await hs.server.db.fetchall(
        "t", "SELECT event_id, outlier, stream_ordering FROM events WHERE room_id = $1", room_id
    )
    return {r[0]: (bool(r[1]), r[2]) for r in rows}


async def messages(hs: HomeserverHarness, token: str, room_id: str) -> list[str]:
    response = await hs.client.get(
        f"{CLIENT}/rooms/{q(room_id)}/messages?dir=b&limit=100", headers=auth(token)
    )
    assert response.status == 200
    chunk = (await response.json())["chunk"]
    return [e["event_id"] for e in chunk if e["type"] == "m.room.message"]


async def test_purge_up_to_event_deletes_history_and_keeps_state(hs: HomeserverHarness) -> None:
    admin, alice, bob, room, sent = await room_with_history(hs)
    cut = sent[4]
    groups_before = await count_rows(hs, "state_groups", "room_id = $1", room)
    states_before = {}
    for event_id in sent[4:]:
        stored = await hs.server.stores.events.get_event(event_id)
        assert stored is not None and stored.state_group is not None
        states_before[event_id] = dict(await hs.server.stores.state.get_state(stored.state_group))
    current_before = await hs.server.db.fetchall(
        "t", "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1", room
    )
    status = await purge(hs, admin, f"{q(room)}/{q(cut)}", {"delete_local_events": True})
    assert status == {"status": "complete"}

    held = await events_of(hs, room)
    for event_id in sent[:4]:
        assert event_id not in held
        for table, column in (("event_edges", "event_id"), ("event_auth", "event_id")):
            assert await count_rows(hs, table, f"{column} = $1", event_id) == 0
        assert await count_rows(hs, "event_push_actions", "event_id = $1", event_id) == 0
    for event_id in sent[4:]:
        assert held[event_id][0] is False  # still in the timeline
    # the state events before the cut stay, out of the timeline
    state_rows = await hs.server.db.fetchall(
        "t",
        "SELECT event_id, outlier, stream_ordering FROM events WHERE room_id = $1"
        " AND state_key IS NOT NULL AND type = 'm.room.create'",
        room,
    )
    assert [(bool(r[1]), r[2]) for r in state_rows] == [(True, None)]
    assert (
        await hs.server.db.fetchall(
            "t", "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1", room
        )
        == current_before
    )
    assert await count_rows(hs, "state_groups", "room_id = $1", room) < groups_before
    # every group left is one a remaining event refers to
    orphans = await count_rows(
        hs,
        "state_groups g",
        "g.room_id = $1 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.state_group = g.id)",
        room,
    )
    assert orphans == 0
    assert (
        await count_rows(
            hs,
            "state_group_entries s",
            "NOT EXISTS (SELECT 1 FROM state_groups g WHERE g.id = s.state_group)",
        )
        == 0
    )
    # and holds the same state as before, read afresh from the database
    hs.server.stores.state.forget_purged(room, range(10_000), (), whole_room=False)
    for event_id in sent[4:]:
        stored = await hs.server.stores.events.get_event(event_id)
        assert stored is not None and stored.state_group is not None
        assert await hs.server.stores.state.get_state(stored.state_group) == states_before[event_id]
    # a backward extremity marks where the history was cut
    assert await count_rows(hs, "backward_extremities", "room_id = $1", room) >= 1

    assert await messages(hs, alice, room) == sent[:3:-1]
    # the room works on: send, sync, read state
    new = await send_text(hs, bob, room, "after the purge")
    assert (await messages(hs, alice, room))[0] == new
    response = await hs.client.get(f"{CLIENT}/sync", headers=auth(alice))
    joined = (await response.json())["rooms"]["join"][room]
    timeline = [e["event_id"] for e in joined["timeline"]["events"]]
    assert not set(timeline) & set(sent[:4])
    state_types = {e["type"] for e in joined["state"]["events"]} | {
        e["type"] for e in joined["timeline"]["events"]
    }
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"} <= state_types
    response = await hs.client.get(
        f"{CLIENT}/rooms/{q(room)}/state/m.room.name/", headers=auth(bob)
    )
    assert await response.json() == {"name": "History"}


async def test_local_events_become_outliers_unless_asked(hs: HomeserverHarness) -> None:
    admin, alice, _bob, room, sent = await room_with_history(hs)
    status = await purge(hs, admin, f"{q(room)}/{q(sent[4])}", {})
    assert status == {"status": "complete"}
    held = await events_of(hs, room)
    for event_id in sent[:4]:  # all local: kept, out of the timeline
        assert held[event_id] == (True, None)
    assert await messages(hs, alice, room) == sent[:3:-1]


async def test_unread_counts_are_recounted(hs: HomeserverHarness) -> None:
    admin, alice, bob, room, sent = await room_with_history(hs)
    response = await hs.client.get(f"{CLIENT}/sync", headers=auth(bob))
    counts = (await response.json())["rooms"]["join"][room]["unread_notifications"]
    assert counts["notification_count"] == 7  # messages 0 to 6
    await purge(hs, admin, f"{q(room)}/{q(sent[4])}", {})
    response = await hs.client.get(f"{CLIENT}/sync", headers=auth(bob))
    counts = (await response.json())["rooms"]["join"][room]["unread_notifications"]
    assert counts["notification_count"] == 3  # messages 4 to 6
    await send_text(hs, alice, room, "new")
    response = await hs.client.get(f"{CLIENT}/sync", headers=auth(bob))
    counts = (await response.json())["rooms"]["join"][room]["unread_notifications"]
    assert counts["notification_count"] == 4


async def test_purge_up_to_ts(hs: HomeserverHarness) -> None:
    admin, alice, _bob, room, sent = await room_with_history(hs)
    event = await hs.server.stores.events.get_event(sent[3])
    assert event is not None
    status = await purge(
        hs,
        admin,
        q(room),
        {"purge_up_to_ts": event.event.origin_server_ts, "delete_local_events": True},
    )
    assert status == {"status": "complete"}
    held = await events_of(hs, room)
    assert not set(sent[:3]) & set(held)
    assert await messages(hs, alice, room) == sent[:2:-1]


async def test_purge_up_to_event_id_in_body(hs: HomeserverHarness) -> None:
    admin, alice, _bob, room, sent = await room_with_history(hs)
    status = await purge(
        hs, admin, q(room), {"purge_up_to_event_id": sent[2], "delete_local_events": True}
    )
    assert status == {"status": "complete"}
    assert await messages(hs, alice, room) == sent[:1:-1]


async def test_purge_history_bad_input(hs: HomeserverHarness) -> None:
    admin, alice, _bob, room, sent = await room_with_history(hs)
    other = await create_room(hs, alice)
    before = await events_of(hs, room)
    cases: list[tuple[str, Any, tuple[int, str]]] = [
        (q(room), {}, (400, "M_BAD_JSON")),
        (q(room), {"purge_up_to_ts": "yesterday"}, (400, "M_BAD_JSON")),
        (q(room), {"purge_up_to_ts": 1.5}, (400, "M_BAD_JSON")),
        (q(room), {"purge_up_to_event_id": 5}, (400, "M_BAD_JSON")),
        (q(room), [], (400, "M_BAD_JSON")),
        (f"{q(room)}/{q('$unknown')}", {}, (404, "M_NOT_FOUND")),
        (f"{q(other)}/{q(sent[3])}", {}, (400, "M_UNKNOWN")),
        ("not-a-room", {"purge_up_to_ts": 5}, (400, "M_INVALID_PARAM")),
        (q("!empty:test.local"), {"purge_up_to_ts": 5}, (404, "M_NOT_FOUND")),
    ]
    for path, body, expected in cases:
        response = await hs.client.post(
            f"{ADMIN_V1}/purge_history/{path}", json=body, headers=auth(admin)
        )
        assert await error_of(response) == expected, (path, body)
    response = await hs.client.get(f"{ADMIN_V1}/purge_history_status/nope", headers=auth(admin))
    assert await error_of(response) == (404, "M_NOT_FOUND")
    assert await events_of(hs, room) == before


async def test_purge_fails_past_the_forward_extremities(hs: HomeserverHarness) -> None:
    _admin, _alice, _bob, room, _sent = await room_with_history(hs)
    before = await events_of(hs, room)
    # a cut deeper than the room's latest event: refused, the room is untouched
    depth = max(e.depth for e in await hs.server.stores.room_admin.forward_extremities(room))
    purge_id = hs.server.admin.history_purges.start(room, depth + 1, delete_local_events=True)
    record = await hs.server.admin.history_purges.wait(purge_id)
    assert record.to_json() == {
        "status": "failed",
        "error": "topological_ordering is greater than forward extremities",
    }
    assert await events_of(hs, room) == before


async def test_one_purge_at_a_time_and_status_kept_for_a_day(hs: HomeserverHarness) -> None:
    admin, _alice, _bob, room, sent = await room_with_history(hs)
    purges = hs.server.admin.history_purges
    depth = await purges.depth_of_event(room, sent[3])
    async with hs.server.client.creator.lanes.lane(room):  # holds the first one back
        first = purges.start(room, depth, delete_local_events=False)
        response = await hs.client.post(
            f"{ADMIN_V1}/purge_history/{q(room)}/{q(sent[4])}", json={}, headers=auth(admin)
        )
        assert await error_of(response) == (400, "M_UNKNOWN")
        response = await hs.client.get(
            f"{ADMIN_V1}/purge_history_status/{first}", headers=auth(admin)
        )
        assert await response.json() == {"status": "active"}
    assert (await purges.wait(first)).status == "complete"
    hs.clock.advance(23 * 3600)
    response = await hs.client.get(f"{ADMIN_V1}/purge_history_status/{first}", headers=auth(admin))
    assert await response.json() == {"status": "complete"}
    hs.clock.advance(3600 + 1)
    response = await hs.client.get(f"{ADMIN_V1}/purge_history_status/{first}", headers=auth(admin))
    assert await error_of(response) == (404, "M_NOT_FOUND")
