"""The Database interface behaves the same on both engines."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from storage.database import (
    Database,
    IntegrityError,
    RetryableError,
    Transaction,
    translate_numbered,
)
from storage.migrations import SchemaError, apply_migrations, load_migrations
from storage.sqlite import SqliteDatabase


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
    all_started = asyncio.Event()
    release = asyncio.Event()
    seen_in_txn: list[int] = []

    async def hold_snapshot() -> None:
        async with database.transaction("hold", readonly=True) as txn:
            seen_in_txn.append(await txn.fetchval("SELECT v FROM kv WHERE k = 'a'"))
            if len(seen_in_txn) == 3:
                all_started.set()  # every holder has read: each holds its snapshot
            await release.wait()
            seen_in_txn.append(await txn.fetchval("SELECT v FROM kv WHERE k = 'a'"))

    holders = [asyncio.create_task(hold_snapshot()) for _ in range(3)]
    await all_started.wait()
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


# -- retries of conflicting transactions ----------------------------------------------


class Conflicts:
    """Makes the engine itself report a conflict inside a transaction.

    SQLite: another connection holds the write lock, so BEGIN IMMEDIATE fails with
    SQLITE_BUSY. PostgreSQL: the server raises a serialization failure (40001) or a
    deadlock (40P01). Either way the engine's error must come out as RetryableError.
    """

    def __init__(self, database: Database, sqlstate: str = "40001") -> None:
        self._database = database
        self._sqlstate = sqlstate
        self._holder: sqlite3.Connection | None = None

    async def start(self) -> None:
        async with self._database.transaction("t") as txn:
            await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY)")
        if isinstance(self._database, SqliteDatabase):
            async with self._database.transaction("t") as txn:
                await txn.execute("PRAGMA busy_timeout = 20")  # fail fast when busy
            self._holder = sqlite3.connect(self._database.path, isolation_level=None)
            self._holder.execute("BEGIN IMMEDIATE")

    async def inject(self, txn: Transaction) -> None:
        """The first statement of ``txn``, failing with the engine's conflict error."""
        if isinstance(self._database, SqliteDatabase):
            await txn.execute("INSERT INTO kv (k) VALUES ('never')")
        else:
            await txn.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'injected conflict'"
                f" USING ERRCODE = '{self._sqlstate}'; END $$"
            )
        raise AssertionError("the conflict was not raised")

    def release(self) -> None:
        if self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_run_transaction_retries_conflicts_with_backoff(
    database: Database, sqlstate: str, caplog: pytest.LogCaptureFixture
) -> None:
    if database.engine == "sqlite" and sqlstate != "40001":
        pytest.skip("one kind of conflict on SQLite: a busy database")
    conflicts = Conflicts(database, sqlstate)
    await conflicts.start()
    attempts = 0

    async def write(txn: Transaction) -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            await conflicts.inject(txn)
        conflicts.release()
        await txn.execute("INSERT INTO kv (k) VALUES ($1)", f"attempt {attempts}")
        return "done"

    caplog.set_level(logging.INFO, logger="storage.database")
    try:
        assert await database.run_transaction("retried", write) == "done"
    finally:
        conflicts.release()
    assert attempts == 3
    assert await database.fetchall("r", "SELECT k FROM kv") == [("attempt 3",)]
    waits = [m for m in caplog.messages if m.startswith("transaction retried conflicted")]
    assert len(waits) == 2
    assert waits[0].endswith("retry 1 in 10 ms") and waits[1].endswith("retry 2 in 20 ms")


async def test_run_transaction_gives_up_after_max_retries(database: Database) -> None:
    conflicts = Conflicts(database)
    await conflicts.start()
    database.max_retries = 3
    attempts = 0

    async def write(txn: Transaction) -> None:
        nonlocal attempts
        attempts += 1
        await conflicts.inject(txn)

    try:
        with pytest.raises(RetryableError):
            await database.run_transaction("doomed", write)
    finally:
        conflicts.release()
    assert attempts == 4  # the first try and three retries
    # The database is usable afterwards: nothing is left open or half-written.
    await database.execute("w", "INSERT INTO kv (k) VALUES ('after')")
    assert await database.fetchall("r", "SELECT k FROM kv") == [("after",)]


async def test_plain_transaction_does_not_retry(database: Database) -> None:
    conflicts = Conflicts(database)
    await conflicts.start()
    try:
        with pytest.raises(RetryableError):
            async with database.transaction("once") as txn:
                await conflicts.inject(txn)
    finally:
        conflicts.release()


async def test_single_write_is_retried(database: Database) -> None:
    """``Database.execute`` runs its statement through run_transaction."""
    conflicts = Conflicts(database)
    await conflicts.start()
    if isinstance(database, SqliteDatabase):
        # The lock holder lets go while the write is waiting between retries.
        asyncio.get_running_loop().call_later(0.05, conflicts.release)
        statement = "INSERT INTO kv (k) VALUES ('written')"
    else:
        # A sequence counts the attempts: nextval is not undone by the rollbacks.
        await database.execute("t", "CREATE SEQUENCE attempts")
        statement = (
            "DO $$ BEGIN IF nextval('attempts') < 3 THEN RAISE EXCEPTION 'injected'"
            " USING ERRCODE = '40001'; END IF; INSERT INTO kv (k) VALUES ('written'); END $$"
        )
    try:
        await database.execute("w", statement)
    finally:
        conflicts.release()
    assert await database.fetchall("r", "SELECT k FROM kv") == [("written",)]


async def test_deadlocked_transactions_both_complete(database: Database) -> None:
    """Two transactions taking row locks in opposite orders: PostgreSQL aborts one of
    them as a deadlock, run_transaction runs it again, and both updates land."""
    if database.engine != "postgres":
        pytest.skip("SQLite has one writer: its transactions cannot deadlock")
    async with database.transaction("t") as txn:
        await txn.execute("CREATE TABLE acct (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)")
        await txn.execute("INSERT INTO acct (id, n) VALUES (1, 0), (2, 0)")
    both_locked_first = asyncio.Barrier(2)
    attempts = 0

    def transfer(first: int, second: int) -> Callable[[Transaction], Awaitable[None]]:
        async def txn_func(txn: Transaction) -> None:
            nonlocal attempts
            attempts += 1
            await txn.execute("UPDATE acct SET n = n + 1 WHERE id = $1", first)
            if attempts <= 2:
                await both_locked_first.wait()
            await txn.execute("UPDATE acct SET n = n + 1 WHERE id = $1", second)

        return txn_func

    await asyncio.gather(
        database.run_transaction("a_then_b", transfer(1, 2)),
        database.run_transaction("b_then_a", transfer(2, 1)),
    )
    assert attempts == 3
    assert await database.fetchall("r", "SELECT n FROM acct ORDER BY id") == [(2,), (2,)]


async def test_concurrent_single_writes_each_get_their_own_outcome(database: Database) -> None:
    """Single writes issued together (on SQLite: committed as one group) each get their
    own row count or error; a failing one leaves the others written."""
    async with database.transaction("setup") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT)")
        await txn.execute("INSERT INTO kv (k, v) VALUES ('taken', 0)")
    writes = [
        database.execute("w", "INSERT INTO kv (k, v) VALUES ($1, $2)", f"k{n}", n)
        for n in range(50)
    ]
    writes.append(database.execute("dup", "INSERT INTO kv (k, v) VALUES ('taken', 1)"))
    writes.append(database.execute("none", "UPDATE kv SET v = 5 WHERE k = 'absent'"))
    if isinstance(database, SqliteDatabase):
        # one group, in the order given: the inserts above are visible to it
        writes.append(database.execute("upd", "UPDATE kv SET v = v + 1 WHERE k LIKE 'k1%'"))
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert outcomes[:50] == [1] * 50
    assert isinstance(outcomes[50], IntegrityError)
    assert outcomes[51] == 0
    rows = dict(await database.fetchall("r", "SELECT k, v FROM kv"))
    assert rows["taken"] == 0 and len(rows) == 51
    if isinstance(database, SqliteDatabase):
        assert outcomes[52] == 11  # k1 and k10..k19
        assert rows["k1"] == 2 and rows["k12"] == 13 and rows["k2"] == 2


async def test_a_cancelled_single_write_still_lands(database: Database) -> None:
    async with database.transaction("setup") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY)")
    writes = [
        asyncio.ensure_future(database.execute("w", "INSERT INTO kv (k) VALUES ($1)", f"k{n}"))
        for n in range(5)
    ]
    await asyncio.sleep(0)
    writes[2].cancel()
    await asyncio.gather(*writes, return_exceptions=True)
    # Cancelling the caller does not undo a write handed over to the database (it may
    # already be committed): whatever happened, the others are written and the
    # database is usable.
    await database.execute("w", "INSERT INTO kv (k) VALUES ('after')")
    keys = {k for (k,) in await database.fetchall("r", "SELECT k FROM kv")}
    assert {"k0", "k1", "k3", "k4", "after"} <= keys


async def test_grouped_transactions_are_each_atomic(database: Database) -> None:
    """Transactions run with ``group_commit`` at the same time (on SQLite: those that
    read nothing back share one commit, each in its own savepoint) each commit or fail
    alone: a constraint violation undoes all of its own statements and none of the
    others', and runs none of its after-commit callbacks; one that reads, or raises,
    behaves as a plain transaction."""
    async with database.transaction("setup") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT)")
        await txn.execute("INSERT INTO kv (k, v) VALUES ('taken', 0)")
    committed: list[str] = []

    def writer(name: str, keys: list[str]) -> Callable[[Transaction], Awaitable[str]]:
        async def body(txn: Transaction) -> str:
            await txn.queue("INSERT INTO kv (k, v) VALUES ($1, 1)", keys[0])
            await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, 2)", [(k,) for k in keys[1:]])
            txn.call_after_commit(lambda: committed.append(name))
            return name

        return body

    async def reader(txn: Transaction) -> str:
        count = await txn.fetchval("SELECT COUNT(*) FROM kv WHERE k = 'taken'")
        await txn.queue("INSERT INTO kv (k, v) VALUES ('read', $1)", count)
        txn.call_after_commit(lambda: committed.append("reader"))
        return "reader"

    async def raiser(txn: Transaction) -> str:
        await txn.queue("INSERT INTO kv (k, v) VALUES ('raised', 0)")
        txn.call_after_commit(lambda: committed.append("raiser"))
        raise RuntimeError("boom")

    bodies = [writer(f"w{n}", [f"w{n}a", f"w{n}b", f"w{n}c"]) for n in range(20)]
    bodies.insert(7, writer("dup", ["dup-first", "taken"]))
    bodies.insert(12, reader)
    bodies.insert(15, raiser)
    outcomes = await asyncio.gather(
        *(database.run_transaction("grouped", body, group_commit=True) for body in bodies),
        return_exceptions=True,
    )
    assert isinstance(outcomes[7], IntegrityError)
    assert outcomes[12] == "reader"
    assert isinstance(outcomes[15], RuntimeError)
    writers = [o for i, o in enumerate(outcomes) if i not in (7, 12, 15)]
    assert writers == [f"w{n}" for n in range(20)]
    assert sorted(committed) == sorted([*writers, "reader"])
    rows = dict(await database.fetchall("r", "SELECT k, v FROM kv"))
    assert "dup-first" not in rows and "raised" not in rows
    assert rows["taken"] == 0 and rows["read"] == 1
    for n in range(20):
        assert (rows[f"w{n}a"], rows[f"w{n}b"], rows[f"w{n}c"]) == (1, 2, 2)
    assert len(rows) == 2 + 3 * 20


async def test_a_cancelled_grouped_transaction_still_commits_whole(database: Database) -> None:
    async with database.transaction("setup") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY)")
    committed: list[int] = []

    def body(n: int) -> Callable[[Transaction], Awaitable[None]]:
        async def run(txn: Transaction) -> None:
            await txn.executemany("INSERT INTO kv (k) VALUES ($1)", [(f"k{n}a",), (f"k{n}b",)])
            txn.call_after_commit(lambda: committed.append(n))

        return run

    tasks = [
        asyncio.ensure_future(database.run_transaction("g", body(n), group_commit=True))
        for n in range(5)
    ]
    for _ in range(3):
        await asyncio.sleep(0)
    tasks[2].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await database.execute("w", "INSERT INTO kv (k) VALUES ('after')")
    keys = {k for (k,) in await database.fetchall("r", "SELECT k FROM kv")}
    # Each transaction is whole or absent; the others are in; the database is usable.
    for n in range(5):
        assert (f"k{n}a" in keys) == (f"k{n}b" in keys)
        assert (f"k{n}a" in keys) == (n in committed)
    assert {"k0a", "k1a", "k3a", "k4a", "after"} <= keys


async def test_sqlite_checkpoints_the_wal_off_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a commit, a background PASSIVE checkpoint (not the writer, inside a
    commit) copies the WAL into the database file."""
    import storage.sqlite

    monkeypatch.setattr(storage.sqlite, "CHECKPOINT_INTERVAL_S", 0.0)
    db = await SqliteDatabase.open(tmp_path / "hs.db", readers=1)
    try:
        async with db.transaction("t") as txn:
            await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT)")
        first = db._checkpoint_task  # (started by that commit)
        assert first is not None
        await first
        await db.execute("w", "INSERT INTO kv (k, v) VALUES ($1, $2)", "a", 1)
        task = db._checkpoint_task
        assert task is not None
        await task
        # The database file alone (no WAL beside it) already holds the row.
        alone = tmp_path / "alone.db"
        alone.write_bytes((tmp_path / "hs.db").read_bytes())
        with sqlite3.connect(alone) as copy:
            assert copy.execute("SELECT k, v FROM kv").fetchall() == [("a", 1)]
        busy, log, done = await db.checkpoint()
        assert (busy, log) == (0, done)
    finally:
        await db.close()
