"""storage/stream_positions.py and migration 0041: writers' positions on both
engines; the sequences of the multi-writer streams on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from storage.database import Database
from storage.migrations import apply_migrations
from storage.stores import Stores
from storage.stream_positions import NoSequenceError, StreamPositionStore


async def test_positions_are_kept_per_stream_and_writer(database: Database) -> None:
    store = Stores.over(database).stream_positions
    assert await store.positions("events") == {}
    await store.upsert_position("events", "writer1", 5)
    await store.upsert_position("events", "writer2", 3)
    await store.upsert_position("receipts", "master", 9)
    assert await store.positions("events") == {"writer1": 5, "writer2": 3}
    assert await store.positions("receipts") == {"master": 9}
    assert await store.positions("typing") == {}


async def test_a_position_only_rises(database: Database) -> None:
    store = StreamPositionStore(database)
    await store.upsert_position("events", "w", 10)
    await store.upsert_position("events", "w", 7)  # a late, older write
    assert await store.positions("events") == {"w": 10}
    await store.upsert_position("events", "w", 11)
    assert await store.positions("events") == {"w": 11}


async def test_sqlite_has_no_sequences(database: Database) -> None:
    if database.engine != "sqlite":
        pytest.skip("SQLite only")
    store = StreamPositionStore(database)
    with pytest.raises(NoSequenceError):
        await store.next_stream_id("events_stream_seq")
    with pytest.raises(NoSequenceError):
        await store.snapshot("events", "events_stream_seq")
    with pytest.raises(NoSequenceError):
        await store.advance_sequence("events_stream_seq", 10)


# -- PostgreSQL: the sequences --------------------------------------------------------


async def test_positions_come_from_one_sequence_for_every_writer(pg: Database) -> None:
    first, second = StreamPositionStore(pg), StreamPositionStore(pg)
    taken = await asyncio.gather(
        *[s.next_stream_id("events_stream_seq") for s in (first, second) * 10]
    )
    assert len(set(taken)) == 20
    assert min(taken) >= 1
    snapshot = await first.snapshot("events", "events_stream_seq")
    assert snapshot.last_allocated == max(taken)
    assert snapshot.positions == {}


async def test_a_position_taken_inside_a_transaction(pg: Database) -> None:
    store = StreamPositionStore(pg)
    async with pg.transaction("t") as txn:
        before = await store.last_stream_id_txn(txn, "events_stream_seq")
        taken = await store.next_stream_id_txn(txn, "events_stream_seq")
        assert taken == before + 1
        assert await store.last_stream_id_txn(txn, "events_stream_seq") == taken


async def test_snapshot_reads_the_sequence_and_the_rows(pg: Database) -> None:
    store = StreamPositionStore(pg)
    assert (await store.snapshot("events", "events_stream_seq")).last_allocated == 0
    await store.next_stream_id("events_stream_seq")
    await store.upsert_position("events", "w1", 1)
    snapshot = await store.snapshot("events", "events_stream_seq")
    assert (snapshot.last_allocated, snapshot.positions) == (1, {"w1": 1})


async def test_advance_sequence_moves_it_forward_only(pg: Database) -> None:
    store = StreamPositionStore(pg)
    await store.advance_sequence("events_stream_seq", 100)
    assert await store.next_stream_id("events_stream_seq") == 101
    await store.advance_sequence("events_stream_seq", 50)
    assert await store.next_stream_id("events_stream_seq") == 102
    await store.advance_sequence("events_stream_seq", 102)  # at it: unchanged
    assert await store.next_stream_id("events_stream_seq") == 103


@pytest.mark.parametrize("name", ["", "events_stream_seq; DROP TABLE events", "seq'", "a-b", "x y"])
async def test_bad_sequence_names_are_refused(pg: Database, name: str) -> None:
    store = StreamPositionStore(pg)
    with pytest.raises(ValueError):
        await store.next_stream_id(name)
    with pytest.raises(ValueError):
        await store.snapshot("events", name)
    with pytest.raises(ValueError):
        await store.advance_sequence(name, 1)


async def test_the_migration_starts_the_sequences_after_the_stored_events(pg: Database) -> None:
    """(and keeps the to-device high-water mark, under its new table name)"""
    async with pg.transaction("back_to_0040") as txn:
        await txn.execute("DROP TABLE stream_positions")
        await txn.execute("ALTER TABLE stream_high_water_marks RENAME TO stream_positions")
        await txn.execute(
            "ALTER TABLE stream_positions RENAME CONSTRAINT stream_high_water_marks_pkey"
            " TO stream_positions_pkey"
        )
        # the to-device high-water mark, as 0008 kept it
        await txn.execute("INSERT INTO stream_positions VALUES ('to_device', 12)")
        await txn.execute("DROP SEQUENCE events_stream_seq")
        await txn.execute("DROP SEQUENCE events_backfill_stream_seq")
        await txn.execute("DELETE FROM schema_version WHERE version = 41")
        for n, ordering in enumerate([1, 2, 40, -1, -7, None]):
            await txn.execute(
                "INSERT INTO events (event_id, room_id, stream_ordering, depth, type, sender,"
                " origin_server_ts, received_ts, json) VALUES ($1, '!r:t', $2, 1, 'm.x',"
                " '@a:t', 0, 0, '{}')",
                f"$e{n}",
                ordering,
            )
    assert await apply_migrations(pg) >= 41
    store = StreamPositionStore(pg)
    assert await store.next_stream_id("events_stream_seq") == 41
    assert await store.next_stream_id("events_backfill_stream_seq") == 8
    assert await store.positions("events") == {}
    assert await Stores.over(pg).to_device.max_stream_id() == 12
