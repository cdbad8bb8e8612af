"""Unread counts in /sync: per thread (sync.yaml: unread_thread_notifications, where
the filter's ``room.timeline.unread_thread_notifications`` makes ``unread_notifications``
count the main timeline only and keys each thread's counts by its root), and in a room
that is in the response only for its ephemeral events."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

THREADED = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})


def threaded(root: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}


def counts(notes: int, highlights: int) -> dict[str, int]:
    return {"notification_count": notes, "highlight_count": highlights}


async def room_of(user: User, body: dict[str, Any], room_id: str) -> dict[str, Any]:
    return dict(body["rooms"]["join"][room_id])


async def test_thread_counts_are_split_from_the_main_timeline(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    root = await bob.send(room_id, "root")
    await bob.send(room_id, "reply", "m.room.message", **threaded(root))
    in_thread = await bob.send(
        room_id,
        "hey alice",
        "m.room.message",
        **threaded(root),
        **{"m.mentions": {"user_ids": [alice.user_id]}},
    )
    await bob.send(room_id, "main again")

    # without the filter flag: totals over every thread, no split
    room = await room_of(alice, await alice.sync(), room_id)
    assert room["unread_notifications"] == counts(4, 1)
    assert "unread_thread_notifications" not in room

    body = await alice.sync(filter=THREADED)
    room = await room_of(alice, body, room_id)
    assert room["unread_notifications"] == counts(2, 0)
    assert room["unread_thread_notifications"] == {root: counts(2, 1)}

    # a threaded receipt reads the thread; the main timeline is untouched
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{in_thread}", {"thread_id": root})
    body = await alice.sync(filter=THREADED, since=body["next_batch"])
    room = await room_of(alice, body, room_id)
    assert room["unread_notifications"] == counts(2, 0)
    assert room.get("unread_thread_notifications", {}) == {}

    # a new thread reply counts in its thread only
    await bob.send(room_id, "more", "m.room.message", **threaded(root))
    body = await alice.sync(filter=THREADED, since=body["next_batch"])
    room = await room_of(alice, body, room_id)
    assert room["unread_notifications"] == counts(2, 0)
    assert room["unread_thread_notifications"] == {root: counts(1, 0)}


async def test_a_room_shown_for_typing_or_a_receipt_has_its_real_counts(
    hs: HomeserverHarness,
) -> None:
    """A room in an incremental sync only for its ephemeral events still carries its
    unread counts (zeros there would reset the client's badge)."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    first = await bob.send(room_id, "one")
    await bob.send(
        room_id, "two", "m.room.message", **{"m.mentions": {"user_ids": [alice.user_id]}}
    )
    since = (await alice.sync())["next_batch"]
    await bob.request(
        "PUT", f"/rooms/{room_id}/typing/{bob.user_id}", {"typing": True, "timeout": 30000}
    )
    body = await alice.sync(since=since)
    room = await room_of(alice, body, room_id)
    assert room["timeline"]["events"] == []
    assert room["unread_notifications"] == counts(2, 1)
    # alice reads the first message: the room is there for her receipt, with what is left
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{first}", {})
    body = await alice.sync(since=body["next_batch"])
    room = await room_of(alice, body, room_id)
    assert room["unread_notifications"] == counts(1, 1)
