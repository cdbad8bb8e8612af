"""Migrations 0014 and 0015: push actions move to one tree keyed by (user, stream
position), and unread counts are kept in their own table; the rows a database already
holds come along, and the counts are made from them."""

from __future__ import annotations

from storage.database import Database
from storage.migrations import apply_migrations
from storage.push_actions import PushActionStore

# The table as migration 0007 made it.
OLD_TABLE = [
    "DROP TABLE push_unread_counts",
    "DROP TABLE event_push_actions",
    "CREATE TABLE event_push_actions (user_id TEXT NOT NULL, event_id TEXT NOT NULL,"
    " room_id TEXT NOT NULL, stream_ordering BIGINT NOT NULL, thread_id TEXT NOT NULL,"
    " actions TEXT NOT NULL, highlight BOOLEAN NOT NULL, ts BIGINT NOT NULL,"
    " PRIMARY KEY (user_id, event_id))",
    "CREATE INDEX event_push_actions_user_stream ON event_push_actions (user_id, stream_ordering)",
    "CREATE INDEX event_push_actions_user_room ON event_push_actions"
    " (user_id, room_id, stream_ordering)",
]


async def test_existing_push_actions_survive_the_migration(database: Database) -> None:
    async with database.transaction("back_to_0013") as txn:
        for statement in OLD_TABLE:
            await txn.execute(statement)
        await txn.execute("DELETE FROM schema_version WHERE version IN (14, 15)")
        for n in range(1, 7):
            await txn.execute(
                "INSERT INTO event_push_actions (user_id, event_id, room_id, stream_ordering,"
                " thread_id, actions, highlight, ts) VALUES ($1, $2, $3, $4, 'main', $5, $6, $7)",
                "@alice:test" if n % 2 else "@bob:test",
                f"$event{n}",
                "!room:test",
                n,
                '["notify"]',
                n == 5,
                1000 + n,
            )
        await txn.execute(
            "INSERT INTO push_read_positions (user_id, room_id, thread_id, stream_ordering)"
            " VALUES ('@bob:test', '!room:test', 'main', 4)"
        )
    assert await apply_migrations(database) >= 15
    store = PushActionStore(database)
    # made from the old rows: alice has read nothing, bob has read up to 4
    assert await store.unread_by_thread("@alice:test") == [("!room:test", "main", 3, 1)]
    assert await store.unread_by_thread("@bob:test") == [("!room:test", "main", 1, 0)]
    alice = await store.notifications("@alice:test", None, 10, only_highlight=False)
    assert [(n.action.event_id, n.action.highlight, n.read) for n in alice] == [
        ("$event5", True, False),
        ("$event3", False, False),
        ("$event1", False, False),
    ]
    await store.mark_read("@alice:test", "!room:test", "", 3)
    assert await store.unread_by_thread("@alice:test") == [("!room:test", "main", 1, 1)]
    assert [a.event_id for a in await store.unread_after("@bob:test", 2, 10)] == ["$event6"]
