"""Unread counts in /sync: per thread (sync.yaml: unread_thread_notifications, where
the filter's ``room.timeline.unread_thread_notifications`` makes ``unread_notifications``
count the main timeline only and keys each thread's counts by its root), and in a room
that is in the response only for its ephemeral events."""

from __future__ import annotations

import asyncio
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


async def test_counts_kept_current_while_messages_arrive_match_a_recount(
    hs: HomeserverHarness,
) -> None:
    """Counts a /sync has read are brought up to date as notifying messages commit
    (not read again); with syncs racing the sends, in threads and with mentions,
    they always equal a recount of the stored actions, and a receipt still resets."""
    from tests.push.test_push_action_pruning import RECOUNT

    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room_id = await alice.create_room(preset="public_chat")
    other_room = await bob.create_room(preset="public_chat")
    for user in (bob, carol):
        await user.join(room_id)
    await alice.join(other_room)
    root = await bob.send(room_id, "root")

    async def recounted() -> dict[str, dict[str, Any]]:
        """room -> (main counts, per-thread counts) as /sync must show them."""
        rows = await hs.server.db.fetchall("t", RECOUNT)
        shown: dict[str, dict[str, Any]] = {}
        for room, user, thread, notes, highlights in rows:
            if user != alice.user_id:
                continue
            entry = shown.setdefault(room, {"main": counts(0, 0), "threads": {}})
            if thread == "main":
                entry["main"] = counts(int(notes), int(highlights))
            else:
                entry["threads"][thread] = counts(int(notes), int(highlights))
        return shown

    async def shown_by_sync() -> dict[str, dict[str, Any]]:
        body = await alice.sync(filter=THREADED)
        return {
            room: {
                "main": joined["unread_notifications"],
                "threads": joined.get("unread_thread_notifications", {}),
            }
            for room, joined in body["rooms"]["join"].items()
        }

    def sends(round_no: int) -> list[Any]:
        mentions = {"m.mentions": {"user_ids": [alice.user_id]}}
        return [
            bob.send(room_id, f"plain {round_no}"),
            carol.send(room_id, f"mention {round_no}", "m.room.message", **mentions),
            bob.send(room_id, f"in thread {round_no}", "m.room.message", **threaded(root)),
            carol.send(
                room_id,
                f"thread mention {round_no}",
                "m.room.message",
                **threaded(root),
                **mentions,
            ),
            bob.send(other_room, f"elsewhere {round_no}"),
        ]

    await shown_by_sync()  # the counts are now held
    for round_no in range(4):
        # sends and syncs at once: reads race the commits
        await asyncio.gather(*sends(round_no), shown_by_sync(), shown_by_sync())
        expected = await recounted()
        shown = await shown_by_sync()
        for room in (room_id, other_room):
            assert shown[room] == expected.get(room, {"main": counts(0, 0), "threads": {}})
    assert (await shown_by_sync())[room_id] == {
        "main": counts(9, 4),  # the root and 4 rounds of plain and mention
        "threads": {root: counts(8, 4)},
    }
    last = await bob.send(room_id, "last")
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{last}", {})
    assert (await shown_by_sync())[room_id] == {"main": counts(0, 0), "threads": {}}
    await carol.send(room_id, "after the receipt")
    assert (await shown_by_sync())[room_id] == {"main": counts(1, 0), "threads": {}}
