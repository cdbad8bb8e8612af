"""Writes whose result is not needed (``queue``, ``executemany``) wait to be sent with
the next statement that returns something or with the COMMIT, on both engines: their
order, their errors, rollback and cancellation behave as if each had been sent at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from storage.database import Database, IntegrityError, RetryableError, Transaction

DEADLINE_S = 10.0


async def make_kv(database: Database) -> None:
    async with database.transaction("setup") as txn:
        await txn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT NOT NULL)")
        await txn.execute("INSERT INTO kv (k, v) VALUES ('taken', 0)")


async def rows(database: Database) -> dict[str, int]:
    return dict(await database.fetchall("r", "SELECT k, v FROM kv"))


async def test_a_deferred_writes_integrity_error_is_raised_at_commit_with_nothing_stored(
    database: Database,
) -> None:
    await make_kv(database)
    committed: list[str] = []
    reached_end = False
    with pytest.raises(IntegrityError):
        async with database.transaction("dup") as txn:
            txn.call_after_commit(lambda: committed.append("dup"))
            await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("a", 1), ("b", 2)])
            await txn.queue("INSERT INTO kv (k, v) VALUES ('taken', 3)")  # not raised here
            await txn.queue("UPDATE kv SET v = 9 WHERE k = 'a'")
            reached_end = True
    assert reached_end  # the violation surfaced at the commit
    assert committed == []
    assert await rows(database) == {"taken": 0}
    # The same statements without the violation commit, and the callback runs.
    async with database.transaction("ok") as txn:
        txn.call_after_commit(lambda: committed.append("ok"))
        await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("a", 1), ("b", 2)])
        await txn.queue("UPDATE kv SET v = 9 WHERE k = 'a'")
    assert committed == ["ok"]
    assert await rows(database) == {"taken": 0, "a": 9, "b": 2}


async def test_a_deferred_writes_error_is_raised_at_the_next_read(database: Database) -> None:
    await make_kv(database)
    with pytest.raises(IntegrityError):
        async with database.transaction("dup") as txn:
            await txn.queue("INSERT INTO kv (k, v) VALUES ('new', 1)")
            await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("x", 1), ("x", 2)])
            try:
                await txn.fetchval("SELECT COUNT(*) FROM kv")
            except IntegrityError:
                raised_at_read = True
                raise
            raised_at_read = False
    assert raised_at_read
    assert await rows(database) == {"taken": 0}


async def test_deferred_writes_keep_their_order_and_a_later_read_sees_them(
    database: Database,
) -> None:
    """Read-your-writes: held statements are sent, in the order given, before any
    statement that returns something; others see nothing of them until the commit."""
    await make_kv(database)
    async with database.transaction("ordered") as txn:
        await txn.queue("INSERT INTO kv (k, v) VALUES ('a', 1)")
        await txn.executemany(
            "INSERT INTO kv (k, v) VALUES ($1, $2)", [("b", 1), ("c", 1), ("d", 1)]
        )
        await txn.queue("UPDATE kv SET v = v * 10 WHERE k IN ('a', 'b')")
        await txn.queue("DELETE FROM kv WHERE k = $1", "c")
        await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", "c", 5)  # after the delete
        assert await txn.fetchall("SELECT k, v FROM kv ORDER BY k") == [
            ("a", 10),
            ("b", 10),
            ("c", 5),
            ("d", 1),
            ("taken", 0),
        ]
        # An execute's row count includes what was held before it.
        await txn.queue("INSERT INTO kv (k, v) VALUES ('e', 1)")
        assert await txn.execute("UPDATE kv SET v = v + 1 WHERE v = 1") == 2  # d and e
        await txn.queue("UPDATE kv SET v = 0 WHERE k = 'e'")
        assert await txn.fetchval("SELECT v FROM kv WHERE k = 'e'") == 0
        await txn.queue("INSERT INTO kv (k, v) VALUES ('f', 7)")  # goes with the commit
        assert await rows(database) == {"taken": 0}  # nothing committed yet
    assert await rows(database) == {
        "a": 10,
        "b": 10,
        "c": 5,
        "d": 2,
        "e": 0,
        "f": 7,
        "taken": 0,
    }


async def test_an_exception_after_deferred_writes_rolls_everything_back(
    database: Database,
) -> None:
    await make_kv(database)
    committed: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        async with database.transaction("failing") as txn:
            txn.call_after_commit(lambda: committed.append("failing"))
            await txn.queue("INSERT INTO kv (k, v) VALUES ('a', 1)")
            assert await txn.execute("UPDATE kv SET v = 5 WHERE k = 'taken'") == 1  # sent
            await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("b", 1)])  # held
            raise RuntimeError("boom")
    assert committed == []
    assert await rows(database) == {"taken": 0}
    # The connection is back, out of any transaction: the next writes commit.
    for n in range(6):
        await database.execute("w", "INSERT INTO kv (k, v) VALUES ($1, $2)", f"k{n}", n)
    assert len(await rows(database)) == 7


async def test_a_failed_flush_rolls_back_and_the_next_transactions_work(
    database: Database,
) -> None:
    """A held statement failing (again and again, on every connection of the pool)
    leaves no connection in a failed transaction, and no statement wrongly prepared."""
    await make_kv(database)
    for n in range(8):
        with pytest.raises(IntegrityError):
            async with database.transaction("dup") as txn:
                await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", f"a{n}", n)
                await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", "taken", n)
                await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", f"b{n}", n)
        async with database.transaction("ok") as txn:
            await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", f"a{n}", n)
            await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", f"b{n}", n)
    stored = await rows(database)
    assert len(stored) == 17 and stored["a7"] == 7 and stored["b3"] == 3


async def test_a_cancelled_transaction_with_held_writes_stores_nothing(
    database: Database,
) -> None:
    await make_kv(database)
    holding = asyncio.Event()
    never = asyncio.Event()

    async def writer() -> None:
        async with database.transaction("cancelled") as txn:
            await txn.queue("INSERT INTO kv (k, v) VALUES ('a', 1)")
            await txn.fetchval("SELECT COUNT(*) FROM kv")  # BEGIN and the insert sent
            await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("b", 1)])
            holding.set()
            await never.wait()

    task = asyncio.create_task(writer())
    try:
        await asyncio.wait_for(holding.wait(), DEADLINE_S)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with database.transaction("after") as txn:
        await txn.queue("INSERT INTO kv (k, v) VALUES ('after', 1)")
    assert await rows(database) == {"taken": 0, "after": 1}


async def wait_for_lock_waiters(database: Database, count: int) -> None:
    """Until ``count`` backends of this database wait for a lock (bounded)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        waiting = await database.fetchval(
            "lock_waiters",
            "SELECT COUNT(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        if waiting >= count:
            return
        assert time.monotonic() < deadline, "no transaction came to wait for the lock"
        await asyncio.sleep(0.01)


async def test_cancelled_while_its_statements_wait_on_the_server(database: Database) -> None:
    """Cancelled while BEGIN, held writes and a statement are at the server (that
    statement waiting for a row lock): the server abandons them, nothing is stored, and
    the next transactions (more than the pool has connections) work."""
    if database.engine != "postgres":
        pytest.skip("SQLite runs a statement to its end on its thread")
    await make_kv(database)
    locked = asyncio.Event()
    release = asyncio.Event()

    async def lock_holder() -> None:
        async with database.transaction("holder") as txn:
            await txn.fetchall("SELECT v FROM kv WHERE k = 'taken' FOR UPDATE")
            locked.set()
            await release.wait()

    async def victim() -> None:
        async with database.transaction("victim") as txn:
            await txn.queue("INSERT INTO kv (k, v) VALUES ('a', 1)")
            await txn.executemany("INSERT INTO kv (k, v) VALUES ($1, $2)", [("b", 1), ("c", 1)])
            await txn.execute("UPDATE kv SET v = 5 WHERE k = 'taken'")  # waits for the lock

    holder = asyncio.create_task(lock_holder())
    blocked: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(locked.wait(), DEADLINE_S)
        blocked = asyncio.create_task(victim())
        await wait_for_lock_waiters(database, 1)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
    finally:
        release.set()
        if blocked is not None and not blocked.done():
            blocked.cancel()
            await asyncio.gather(blocked, return_exceptions=True)
        await holder
    assert await rows(database) == {"taken": 0}
    for n in range(6):
        async with database.transaction("after") as txn:
            await txn.queue("UPDATE kv SET v = v + 1 WHERE k = 'taken'")
            await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", f"after{n}", n)
    stored = await rows(database)
    assert stored["taken"] == 6 and len(stored) == 7


async def test_cancelled_while_its_commit_is_at_the_server(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled while its held writes and COMMIT are at the server (a write waiting for
    a row lock): the commit was handed over, so it finishes (the write stands) before
    the cancellation is raised, and only then does the connection go back to the pool
    (the next transactions, on every connection, work and nothing is logged)."""
    if database.engine != "postgres":
        pytest.skip("SQLite runs a commit to its end on its thread")
    await make_kv(database)
    locked = asyncio.Event()
    release = asyncio.Event()
    committed: list[str] = []

    async def lock_holder() -> None:
        async with database.transaction("holder") as txn:
            await txn.fetchall("SELECT v FROM kv WHERE k = 'taken' FOR UPDATE")
            locked.set()
            await release.wait()

    async def victim() -> None:
        async with database.transaction("victim") as txn:
            txn.call_after_commit(lambda: committed.append("victim"))
            await txn.queue("INSERT INTO kv (k, v) VALUES ('a', 1)")
            await txn.queue("UPDATE kv SET v = 5 WHERE k = 'taken'")  # waits, at the commit

    caplog.set_level(logging.WARNING)
    holder = asyncio.create_task(lock_holder())
    committing: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(locked.wait(), DEADLINE_S)
        committing = asyncio.create_task(victim())
        await wait_for_lock_waiters(database, 1)
        committing.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(committing, DEADLINE_S)
    finally:
        release.set()
        if committing is not None and not committing.done():
            committing.cancel()
            await asyncio.gather(committing, return_exceptions=True)
        await holder
    assert committed == ["victim"]
    assert await rows(database) == {"taken": 5, "a": 1}
    for n in range(6):
        async with database.transaction("after") as txn:
            await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", f"after{n}", n)
    assert len(await rows(database)) == 8
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_conflict_raised_by_a_held_statement_is_retried(database: Database) -> None:
    """A serialization failure of a held statement surfaces at the commit as
    RetryableError, and run_transaction runs the function again."""
    if database.engine != "postgres":
        pytest.skip("SQLite reports a busy database at BEGIN, not at a statement")
    await make_kv(database)
    await database.execute("seq", "CREATE SEQUENCE attempts")
    attempts = 0

    async def write(txn: Transaction) -> None:
        nonlocal attempts
        attempts += 1
        await txn.queue("INSERT INTO kv (k, v) VALUES ($1, $2)", f"try{attempts}", attempts)
        await txn.queue(
            "DO $$ BEGIN IF nextval('attempts') < 3 THEN RAISE EXCEPTION 'injected'"
            " USING ERRCODE = '40001'; END IF; END $$"
        )

    await database.run_transaction("retried", write)
    assert attempts == 3
    assert await rows(database) == {"taken": 0, "try3": 3}
    with pytest.raises(RetryableError):
        async with database.transaction("once") as txn:
            await txn.queue(
                "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40P01'; END $$"
            )


async def test_single_statements_commit_alone(database: Database) -> None:
    """``Database.execute``/``execute_statements``/``fetch*`` (on PostgreSQL each one
    round trip with its BEGIN and COMMIT or ROLLBACK): row counts, errors, and a read
    that writes refused on PostgreSQL (still READ ONLY)."""
    await make_kv(database)
    assert await database.execute_statements(
        "two",
        [
            ("INSERT INTO kv (k, v) VALUES ($1, $2)", ("a", 1)),
            ("UPDATE kv SET v = v + 1 WHERE k IN ($1, $2)", ("a", "taken")),
        ],
    ) == [1, 2]
    with pytest.raises(IntegrityError):
        await database.execute_statements(
            "dup",
            [
                ("INSERT INTO kv (k, v) VALUES ('b', 1)", ()),
                ("INSERT INTO kv (k, v) VALUES ('a', 1)", ()),
            ],
        )
    assert await rows(database) == {"taken": 1, "a": 2}
    assert await database.fetchone("one", "SELECT v FROM kv WHERE k = $1", "a") == (2,)
    assert await database.fetchval("none", "SELECT v FROM kv WHERE k = $1", "zz") is None
    with pytest.raises(Exception, match=r"(?i)syntax"):
        await database.fetchall("bad", "SELEC 1")
    if database.engine == "postgres":
        with pytest.raises(Exception, match="read-only"):
            await database.fetchall("writes", "INSERT INTO kv (k, v) VALUES ('c', 1) RETURNING k")
    assert await database.fetchval("count", "SELECT COUNT(*) FROM kv") == 2
