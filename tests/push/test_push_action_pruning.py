"""Pruning read push actions: a read plain notification goes after a day, a read
highlight after thirty days, unread ones stay; the unread counts (per room and per
thread) stay equal to a recount from the rows that remain, before and after later
receipts. Driven by the FakeClock."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.push.test_notifications import counts, evaluator, pair
from tests.rooms.helpers import User

HOUR_S = 3600
DAY_S = 24 * HOUR_S

# What migration 0015 computes: the unread counts made from scratch from the rows.
RECOUNT = (
    "SELECT a.room_id, a.user_id, a.thread_id, COUNT(*),"
    " SUM(CASE WHEN a.highlight THEN 1 ELSE 0 END) FROM event_push_actions a"
    " LEFT JOIN push_read_positions u ON u.user_id = a.user_id AND u.room_id = a.room_id"
    " AND u.thread_id = ''"
    " LEFT JOIN push_read_positions t ON t.user_id = a.user_id AND t.room_id = a.room_id"
    " AND t.thread_id = a.thread_id"
    " WHERE a.stream_ordering > COALESCE(u.stream_ordering, 0)"
    " AND a.stream_ordering > COALESCE(t.stream_ordering, 0)"
    " GROUP BY a.room_id, a.user_id, a.thread_id"
)


async def assert_counts_exact(hs: HomeserverHarness) -> None:
    db = hs.server.db
    recounted = {
        (r[0], r[1], r[2]): (int(r[3]), int(r[4])) for r in await db.fetchall("t", RECOUNT)
    }
    kept = {
        (r[0], r[1], r[2]): (int(r[3]), int(r[4]))
        for r in await db.fetchall(
            "t",
            "SELECT room_id, user_id, thread_id, notifications, highlights"
            " FROM push_unread_counts WHERE notifications > 0",
        )
    }
    assert kept == recounted


async def rows_of(hs: HomeserverHarness, user: User) -> int:
    return int(
        await hs.server.db.fetchval(
            "t", "SELECT COUNT(*) FROM event_push_actions WHERE user_id = $1", user.user_id
        )
    )


async def notification_ids(user: User) -> list[str]:
    body = await user.request("GET", "/notifications")
    return [n["event"]["event_id"] for n in body["notifications"]]


async def mention(sender: User, room_id: str, target: User, text: str) -> str:
    mentions: dict[str, Any] = {"m.mentions": {"user_ids": [target.user_id]}}
    return await sender.send(room_id, text, "m.room.message", **mentions)


async def test_read_actions_are_pruned_and_counts_stay_exact(hs: HomeserverHarness) -> None:
    pruner = hs.server.push_action_pruner
    assert pruner is not None
    alice, bob, room_id = await pair(hs)
    root = await bob.send(room_id, "root")
    old_plain = [await bob.send(room_id, f"old {n}") for n in range(3)]
    old_mention = await mention(bob, room_id, alice, "old mention")
    relates: dict[str, Any] = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    in_thread = await bob.send(room_id, "in thread", "m.room.message", **relates)
    unread_old = await bob.send(room_id, "old but unread")
    # alice reads the main timeline up to the old mention, not the thread
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, old_mention, "main")
    hs.clock.advance(2 * DAY_S)
    recent = await bob.send(room_id, "recent")
    before = await counts(hs, alice, room_id)
    await assert_counts_exact(hs)

    # read plain ones older than a day go; the read mention (a highlight) stays for
    # thirty days; the unread ones (thread reply, unread old, recent) all stay
    assert await pruner.tick() == 4  # root and the three old plain messages
    assert await notification_ids(alice) == [recent, unread_old, in_thread, old_mention]
    after = await counts(hs, alice, room_id)
    assert (after.notification, after.highlight, after.main, after.per_thread) == (
        before.notification,
        before.highlight,
        before.main,
        before.per_thread,
    )
    await assert_counts_exact(hs)
    assert await pruner.tick() == 0

    # later receipts recount from what is left, exactly
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, in_thread, root)
    await assert_counts_exact(hs)
    c = await counts(hs, alice, room_id)
    assert c.per_thread == {} and c.main == (2, 0)
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, recent, None)
    await assert_counts_exact(hs)
    assert (await counts(hs, alice, room_id)).notification == 0

    hs.clock.advance(DAY_S + 1)
    assert await pruner.tick() == 3  # the thread reply, the unread old one, recent
    assert await notification_ids(alice) == [old_mention]
    hs.clock.advance(28 * DAY_S)
    assert await pruner.tick() == 1
    assert await notification_ids(alice) == []
    assert await rows_of(hs, alice) == 0
    await assert_counts_exact(hs)
    assert old_plain  # (their rows went in the first prune)


async def test_a_user_who_never_reads_keeps_every_action(hs: HomeserverHarness) -> None:
    pruner = hs.server.push_action_pruner
    assert pruner is not None
    alice, bob, room_id = await pair(hs)
    for n in range(4):
        await bob.send(room_id, f"m{n}")
    hs.clock.advance(60 * DAY_S)
    assert await pruner.tick() == 0
    assert await rows_of(hs, alice) == 4
    assert (await counts(hs, alice, room_id)).notification == 4
