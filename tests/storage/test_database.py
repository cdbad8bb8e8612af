"""The Database interface behaves the same on both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage.database import Database, IntegrityError, translate_numbered
from storage.migrations import SchemaError, apply_migrations, load_migrations


def test_placeholders_translate_per_engine() -> None:
    assert translate_numbered("SELECT $1, $2, $1", "sqlite") == ("SELECT ?1, ?2, ?1", None)
    sql, order = translate_numbered("SELECT $2 LIKE '%x', $1, $2", "postgres")
    assert sql == "SELECT %s LIKE '%%x', %s, %s"
    assert order == [1, 0, 1]


async def test_roundtrip_and_rowcounts(database: Database) -> None:
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT)")
        await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("a", 1), ("b", 2)])
        assert await txn.execute("UPDATE kv SET v = v + $1", 10) == 2
    assert await database.fetchall("r", "SELECT k, v FROM kv ORDER BY k") == [("a", 11), ("b", 12)]
    assert await database.fetchval("r", "SELECT v FROM kv WHERE k = $1", "b") == 12
    assert await database.fetchone("r", "SELECT v FROM kv WHERE k = $1", "zz") is None
    # A placeholder used twice gets the same argument twice.
    assert (
        await database.fetchval("r", "SELECT COUNT(*) FROM kv WHERE v > $1 AND v < $1 + 2", 10) == 1
    )


async def test_failed_transaction_rolls_back(database: Database) -> None:
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY)")
    with pytest.raises(RuntimeError):
        async with database.transaction("t") as txn:
            await txn.execute("INSERT INTO kv (k) VALUES ($1)", "a")
            raise RuntimeError("boom")
    assert await database.fetchall("r", "SELECT k FROM kv") == []


async def test_integrity_error_is_mapped(database: Database) -> None:
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY)")
        await txn.execute("INSERT INTO kv (k) VALUES ($1)", "a")
    with pytest.raises(IntegrityError):
        async with database.transaction("t") as txn:
            await txn.execute("INSERT INTO kv (k) VALUES ($1)", "a")
    assert await database.fetchval("r", "SELECT COUNT(*) FROM kv") == 1


async def test_after_commit_callbacks_run_only_on_commit(database: Database) -> None:
    seen: list[str] = []
    async with database.transaction("t") as txn:
        txn.call_after_commit(lambda: seen.append("committed"))
        assert seen == []
    assert seen == ["committed"]
    with pytest.raises(ValueError):
        async with database.transaction("t") as txn:
            txn.call_after_commit(lambda: seen.append("rolled back"))
            raise ValueError
    assert seen == ["committed"]


async def test_concurrent_increments_are_not_lost(database: Database) -> None:
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)")
        await txn.execute("INSERT INTO counter (id, n) VALUES (1, 0)")

    async def bump() -> None:
        async with database.transaction("bump") as txn:
            await txn.execute("UPDATE counter SET n = n + 1 WHERE id = 1")

    await asyncio.gather(*(bump() for _ in range(20)))
    assert await database.fetchval("r", "SELECT n FROM counter") == 20


async def test_migrations_are_recorded_and_idempotent(database: Database) -> None:
    newest = load_migrations(database.engine)[-1].version
    assert await apply_migrations(database) == newest
    assert await database.fetchval("r", "SELECT MAX(version) FROM schema_version") == newest


async def test_newer_database_is_refused(database: Database) -> None:
    await database.execute(
        "w", "INSERT INTO schema_version (version, name, applied_ts) VALUES (9999, 'future', 0)"
    )
    with pytest.raises(SchemaError, match="newer"):
        await apply_migrations(database)


async def test_migration_landing_out_of_order_is_still_applied(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "late_migrations"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "9001_first.sql").write_text("CREATE TABLE first_t (x INTEGER);\n")
    (package / "9003_third.sql").write_text("CREATE TABLE third_t (x INTEGER);\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert await apply_migrations(database, "late_migrations") == 9003
    # A migration numbered below the newest applied one lands later: it still runs.
    (package / "9002_second.sql").write_text("CREATE TABLE second_t (x INTEGER);\n")
    assert await apply_migrations(database, "late_migrations") == 9003
    assert await database.fetchval("r", "SELECT COUNT(*) FROM second_t") == 0
    versions = await database.fetchall(
        "r", "SELECT version FROM schema_version WHERE version > 9000"
    )
    assert sorted(v for (v,) in versions) == [9001, 9002, 9003]


async def test_cancelled_write_leaves_no_open_transaction(database: Database) -> None:
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY)")

    async def slow_writer() -> None:
        async with database.transaction("slow") as txn:
            await txn.execute("INSERT INTO kv (k) VALUES ($1)", "a")
            await asyncio.sleep(10)

    task = asyncio.create_task(slow_writer())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with database.transaction("after") as txn:
        await txn.execute("INSERT INTO kv (k) VALUES ($1)", "b")
    assert await database.fetchall("r", "SELECT k FROM kv") == [("b",)]


async def test_deferred_writes_surface_errors_in_their_transaction(database: Database) -> None:
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY)")
    with pytest.raises(IntegrityError):
        async with database.transaction("t") as txn:
            await txn.executemany("INSERT INTO kv (k) VALUES ($1)", [("a",), ("a",)])
    assert await database.fetchall("r", "SELECT k FROM kv") == []


async def test_single_reads_see_commits_while_read_transactions_hold_snapshots(
    database: Database,
) -> None:
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT)")
        await txn.execute("INSERT INTO kv (k, v) VALUES ('a', 1)")
    started = asyncio.Event()
    release = asyncio.Event()
    seen_in_txn: list[int] = []

    async def hold_snapshot() -> None:
        async with database.transaction("hold", readonly=True) as txn:
            seen_in_txn.append(await txn.fetchval("SELECT v FROM kv WHERE k = 'a'"))
            started.set()
            await release.wait()
            seen_in_txn.append(await txn.fetchval("SELECT v FROM kv WHERE k = 'a'"))

    holders = [asyncio.create_task(hold_snapshot()) for _ in range(3)]
    await started.wait()
    await asyncio.sleep(0.01)
    async with database.transaction("w") as txn:
        await txn.execute("UPDATE kv SET v = 2 WHERE k = 'a'")
    # Many single reads at once, while three readers sit in older snapshots: every
    # one sees the committed write.
    reads = await asyncio.gather(
        *(database.fetchval("r", "SELECT v FROM kv WHERE k = 'a'") for _ in range(50))
    )
    assert reads == [2] * 50
    release.set()
    await asyncio.gather(*holders)
    assert seen_in_txn.count(1) >= 3
