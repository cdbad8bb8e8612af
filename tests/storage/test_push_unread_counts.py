"""Unread counts kept in push_unread_counts agree with counting the push actions after
the read positions, through any mix of notifications and threaded and unthreaded
receipts (moving forward or not)."""

from __future__ import annotations

import random

from storage.database import Database
from storage.push_actions import UNTHREADED, PushAction, PushActionStore

USERS = ["@a:test", "@b:test", "@c:test"]
ROOMS = ["!r1:test", "!r2:test"]
THREADS = ["main", "$root1", "$root2"]


def expected_counts(
    actions: list[PushAction], read: dict[tuple[str, str, str], int], user_id: str
) -> list[tuple[str, str, int, int]]:
    counts: dict[tuple[str, str], list[int]] = {}
    for action in actions:
        if action.user_id != user_id:
            continue
        upto = max(
            read.get((user_id, action.room_id, UNTHREADED), 0),
            read.get((user_id, action.room_id, action.thread_id), 0),
        )
        if action.stream_ordering > upto:
            count = counts.setdefault((action.room_id, action.thread_id), [0, 0])
            count[0] += 1
            count[1] += action.highlight
    return sorted((room, thread, n, h) for (room, thread), (n, h) in counts.items())


async def test_counts_follow_notifications_and_receipts(database: Database) -> None:
    store = PushActionStore(database)
    rng = random.Random(20261127)
    actions: list[PushAction] = []
    read: dict[tuple[str, str, str], int] = {}
    stream = 0
    for step in range(300):
        if rng.random() < 0.6 or stream == 0:
            stream += 1
            room, thread = rng.choice(ROOMS), rng.choice(THREADS)
            batch = [
                PushAction(
                    user,
                    f"$e{stream}",
                    room,
                    stream,
                    thread,
                    ["notify"],
                    rng.random() < 0.2,
                    stream,
                )
                for user in USERS
                if rng.random() < 0.8
            ]
            async with database.transaction("notify") as txn:
                await store.add_actions_txn(txn, batch)
            actions += batch
        else:
            user, room = rng.choice(USERS), rng.choice(ROOMS)
            thread = rng.choice([UNTHREADED, *THREADS])
            position = rng.randint(max(1, stream - 10), stream)  # sometimes behind
            if rng.random() < 0.5:
                await store.mark_read(user, room, thread, position)
            else:  # as when the user sends an event: inside a transaction
                async with database.transaction("send") as txn:
                    await store.mark_read_txn(txn, user, room, thread, position)
            key = (user, room, thread)
            read[key] = max(read.get(key, 0), position)
        if step % 25 == 0 or step == 299:
            for user in USERS:
                got = sorted(await store.unread_by_thread(user))
                assert got == expected_counts(actions, read, user), f"step {step}, {user}"
