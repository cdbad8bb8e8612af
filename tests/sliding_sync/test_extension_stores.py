"""The store reads the sliding sync extensions add: account data by room and globally,
rooms with account data changes, receipts by event and a user's own receipts."""

from __future__ import annotations

from storage.account_data import AccountDataStore
from storage.database import Database
from storage.receipts import ReceiptStore

ME = "@me:test"
OTHER = "@other:test"


async def test_account_data_reads(database: Database) -> None:
    store = AccountDataStore(database)
    await store.put(ME, None, "g.one", {"v": 1}, 1)
    await store.put(ME, "!a:test", "r.one", {"v": 2}, 2)
    await store.put(ME, "!b:test", "r.one", {"v": 3}, 3)
    await store.put(OTHER, "!a:test", "r.one", {"v": 4}, 4)
    await store.put(ME, None, "g.two", {"v": 5}, 5)
    await store.put(ME, "!a:test", "r.two", {"v": 6}, 6)

    assert [r.data_type for r in await store.changed_global(ME, None, 6)] == ["g.one", "g.two"]
    assert [r.data_type for r in await store.changed_global(ME, 1, 6)] == ["g.two"]
    assert await store.changed_global(ME, 5, 6) == []

    records = await store.changed_in_rooms(ME, ["!a:test"], None, 6)
    assert [(r.room_id, r.data_type, r.content) for r in records] == [
        ("!a:test", "r.one", {"v": 2}),
        ("!a:test", "r.two", {"v": 6}),
    ]
    records = await store.changed_in_rooms(ME, ["!a:test", "!b:test", ""], 2, 5)
    assert [(r.room_id, r.stream_id) for r in records] == [("!b:test", 3)]
    many = [f"!r{i}:test" for i in range(450)] + ["!b:test"]
    assert [r.stream_id for r in await store.changed_in_rooms(ME, many, None, 6)] == [3]

    assert await store.rooms_changed(ME, 0, 6) == {"!a:test", "!b:test"}
    assert await store.rooms_changed(ME, 3, 6) == {"!a:test"}
    assert await store.rooms_changed(ME, 3, 5) == set()


async def test_receipt_reads(database: Database) -> None:
    store = ReceiptStore(database)
    await store.upsert_if_newer("!a:test", "m.read", ME, None, "$a1", 1, 100, 1)
    await store.upsert_if_newer("!a:test", "m.read", OTHER, None, "$a2", 2, 100, 2)
    await store.upsert_if_newer("!b:test", "m.read", OTHER, "$t", "$b1", 1, 100, 3)
    await store.upsert_if_newer("!b:test", "m.read.private", ME, None, "$b2", 2, 100, 4)

    found = await store.for_events([("!a:test", "$a2"), ("!b:test", "$b1")], 4)
    assert sorted((r.room_id, r.user_id, r.thread_id) for r in found) == [
        ("!a:test", OTHER, None),
        ("!b:test", OTHER, "$t"),
    ]
    # a pair names its room: an event ID under another room finds nothing
    assert await store.for_events([("!b:test", "$a2")], 4) == []
    assert await store.for_events([("!a:test", "$a2")], 1) == []  # after ``upto``
    many = [("!b:test", f"$x{i}") for i in range(900)] + [("!a:test", "$a1")]
    assert [r.event_id for r in await store.for_events(many, 4)] == ["$a1"]

    mine = await store.for_user_in_rooms(ME, ["!a:test", "!b:test"], 4)
    assert sorted((r.room_id, r.receipt_type) for r in mine) == [
        ("!a:test", "m.read"),
        ("!b:test", "m.read.private"),
    ]
    assert [r.room_id for r in await store.for_user_in_rooms(ME, ["!a:test", "!b:test"], 3)] == [
        "!a:test"
    ]
