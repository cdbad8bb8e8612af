"""Row IDs (storage/ids.py) and pooled connections under concurrent transactions."""

from __future__ import annotations

import asyncio

from storage.database import Database, Transaction
from storage.state import StateStore

MAX_SQL = "SELECT MAX(id) FROM state_groups"


async def test_concurrent_transactions_get_distinct_increasing_ids(database: Database) -> None:
    ids = database.id_generator("state_group_id_seq", MAX_SQL)

    async def take(txn: Transaction) -> list[int]:
        first = await ids.next_ids_txn(txn, 3)
        await asyncio.sleep(0)  # let the others allocate in between
        return [*first, await ids.next_id_txn(txn)]

    taken = await asyncio.gather(*[database.run_transaction("take", take) for _ in range(8)])
    flat = [i for batch in taken for i in batch]
    assert len(set(flat)) == len(flat) == 32
    assert all(batch[:3] == sorted(batch[:3]) for batch in taken)
    assert min(flat) >= 1


async def test_ids_continue_after_the_stored_ones(database: Database) -> None:
    """A new generator (another process, or a restart) never repeats a stored ID."""
    state = StateStore(database)
    # (distinct states: the same state again would be the same group)
    groups = [
        await database.run_transaction(
            "g",
            lambda txn, n=n: state.store_state_group_txn(
                txn, "!r:x", {("m.room.create", ""): "$c", ("m.room.name", ""): f"$n{n}"}
            ),
        )
        for n in range(3)
    ]
    assert len(set(groups)) == 3
    again = StateStore(database)
    group = await database.run_transaction(
        "g", lambda txn: again.store_state_group_txn(txn, "!r:x", {("m.room.create", ""): "$c"})
    )
    assert group > max(groups)
    assert await again.get_state(group) == {("m.room.create", ""): "$c"}


async def test_writes_that_read_meanwhile_never_starve_the_pool(database: Database) -> None:
    """Write transactions that each read through the pool before they commit (as the
    event persister's hooks do): more of them at once than the pool has connections
    all finish instead of waiting for ever on a connection."""
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE kv (k BIGINT PRIMARY KEY)")

    async def write(txn: Transaction, k: int) -> None:
        await txn.execute("INSERT INTO kv (k) VALUES ($1)", k)
        for _ in range(3):
            await asyncio.sleep(0)  # the other writers take their connections meanwhile
        assert await database.fetchval("read", "SELECT 1") == 1

    await asyncio.wait_for(
        asyncio.gather(
            *[database.run_transaction("w", lambda txn, k=k: write(txn, k)) for k in range(16)]
        ),
        20,
    )
    assert await database.fetchval("n", "SELECT COUNT(*) FROM kv") == 16
