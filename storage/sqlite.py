"""The embedded engine: SQLite through aiosqlite.

One writer connection (writes are serialized by a lock, as SQLite allows only one
writer at a time anyway) and a few reader connections, all in WAL mode with
foreign keys on. Read-only transactions run on readers and see a consistent
snapshot; write transactions run on the writer.

Each aiosqlite connection is a thread, and every call to it is a round trip
through the event loop. So a transaction batches: statements whose result is not
needed (``executemany``, ``queue``) wait in memory and go to the thread together with
the next statement that returns something, or with the COMMIT. A write
transaction of inserts costs one round trip, however many statements it has; run
as a grouped transaction (``grouped_transaction``, ``run_transaction(...,
group_commit=True)``), it shares that round trip and its COMMIT with the other
writes waiting for the writer (group commit, each in its own savepoint).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.database import (
    Database,
    DatabaseOpenError,
    IntegrityError,
    RetryableError,
    Row,
    Transaction,
    translate_numbered,
)
from storage.ids import CounterIdGenerator, IdGenerator

logger = logging.getLogger(__name__)

# The page cache of each connection, in KiB. Every connection caches pages of the same
# file on its own, and a page it does not hold is one read from the OS page cache away.
# A reader's cache is dropped whole when it begins a read after another connection
# committed (WAL mode), so on a server taking writes a reader gains little from more
# than one read's pages (a quarter of SQLite's default 2 MB: the same CPU per message
# in bench/cpu_per_message.py, 1.5 MB less resident for four readers); the writer's
# stays valid, fills up with the pages it writes, and saves reads where one
# transaction touches many pages (push actions for every member of a big room).
WRITER_CACHE_KIB = 2_000
READER_CACHE_KIB = 500
CHECKPOINTER_CACHE_KIB = 64

T = TypeVar("T")
Pending = list[tuple[str, list[tuple[Any, ...]]]]


@lru_cache(maxsize=4096)
def _sql(sql: str) -> str:
    return translate_numbered(sql, "sqlite")[0]


# WAL checkpoints run on a connection of their own, at most every 250 ms after
# writes, in PASSIVE mode: they copy committed pages into the database file without
# blocking the writer or the readers. Left to the writer, a checkpoint ran inside a
# commit (every ~40 MB of WAL) and every write queued behind it waited tens of
# milliseconds: the tail of message delivery. The writer's own automatic checkpoint
# stays, as a backstop, should the background ones fall behind.
#
# The interval also bounds what the writer must sync itself: with synchronous=NORMAL,
# the first commit into a WAL that restarts after a complete checkpoint syncs the
# WAL file, that is every page written to it since the last checkpoint synced it.
# At one checkpoint a second that was up to a second of writes (~20 MB at 400
# messages/s), and a commit every half second took 40-50 ms, with every send in the
# batch waiting on it (delivery p99 58 -> 40 ms in bench/cpu_per_message.py, at the
# same CPU per message).
CHECKPOINT_INTERVAL_S = 0.25


# Primary result codes of a database another connection holds (extended codes such
# as SQLITE_BUSY_SNAPSHOT keep them in their low byte).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def _map_error(exc: sqlite3.Error) -> Exception:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(str(exc))
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return RetryableError(str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return RetryableError(str(exc))
    return exc


async def _in_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` on the connection's own thread (one round trip)."""

    def call() -> T:
        raw = conn._connection
        assert raw is not None, "connection closed"
        return fn(raw)

    try:
        result: T = await conn._execute(call)  # type: ignore[no-untyped-call]
    except sqlite3.Error as exc:
        raise _map_error(exc) from exc
    return result


def _run_pending(raw: sqlite3.Connection, begin: str | None, pending: Pending) -> None:
    if begin is not None:
        raw.execute(begin)
    for sql, rows in pending:
        if len(rows) == 1:
            raw.execute(sql, rows[0])
        else:
            raw.executemany(sql, rows)


@dataclass(slots=True)
class _SingleWrite:
    """A write of one statement, or of a few that commit together; or (``pending``)
    the queued statements of a grouped transaction, which read nothing back."""

    name: str
    statements: list[tuple[str, tuple[Any, ...]]]
    future: asyncio.Future[list[int]]
    pending: Pending | None = None


def _run_single_writes(
    raw: sqlite3.Connection, batch: list[_SingleWrite]
) -> list[list[int] | Exception]:
    """One transaction of single writes, each in a savepoint: its row counts, or the
    error that undid it alone. A busy database fails the whole batch (to be retried)."""
    outcomes: list[list[int] | Exception] = []
    raw.execute("BEGIN IMMEDIATE")
    try:
        for write in batch:
            raw.execute("SAVEPOINT single_write")
            try:
                if write.pending is not None:
                    _run_pending(raw, None, write.pending)
                    outcomes.append([])
                else:
                    outcomes.append(
                        [raw.execute(sql, args).rowcount for sql, args in write.statements]
                    )
            except sqlite3.Error as exc:
                mapped = _map_error(exc)
                if isinstance(mapped, RetryableError):
                    raise
                raw.execute("ROLLBACK TO single_write")
                outcomes.append(mapped)
            raw.execute("RELEASE single_write")
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return outcomes


class SqliteTransaction(Transaction):
    def __init__(self, name: str, conn: aiosqlite.Connection, begin: str) -> None:
        super().__init__(name)
        self._conn = conn
        self._begin: str | None = begin
        self._pending: Pending = []

    @property
    def begun(self) -> bool:
        return self._begin is None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Send the queued statements, then ``fn``, in one round trip."""
        begin, pending = self._begin, self._pending
        self._begin, self._pending = None, []

        def call(raw: sqlite3.Connection) -> T:
            _run_pending(raw, begin, pending)
            return fn(raw)

        return await _in_thread(self._conn, call)

    async def queue(self, sql: str, *args: Any) -> None:
        self._pending.append((_sql(sql), [args]))

    async def execute(self, sql: str, *args: Any) -> int:
        text = _sql(sql)
        return await self._run(lambda raw: raw.execute(text, args).rowcount)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(r) for r in rows]
        if batch:
            self._pending.append((_sql(sql), batch))

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        text = _sql(sql)
        return await self._run(lambda raw: [tuple(r) for r in raw.execute(text, args).fetchall()])

    async def execute_script(self, script: str) -> None:
        for statement in split_statements(script):
            await self.queue(statement)
        await self._run(lambda raw: None)

    async def commit(self) -> None:
        if not self.begun and not self._pending:
            return  # nothing was done
        await self._run(lambda raw: raw.execute("COMMIT"))

    async def rollback(self) -> None:
        self._pending = []
        if self.begun:
            # Not if the BEGIN itself failed (a busy database): there is nothing to undo.
            await _in_thread(self._conn, _rollback_if_open)


def _rollback_if_open(raw: sqlite3.Connection) -> None:
    if raw.in_transaction:
        raw.execute("ROLLBACK")


def split_statements(script: str) -> list[str]:
    """Split a migration script into statements (``;`` at the end of a line)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if current and "\n".join(current).strip():
        statements.append("\n".join(current))
    return statements


def _probe(path: Path) -> None:
    """Open ``path`` as a database in WAL mode, or raise sqlite3.Error / OSError."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
    finally:
        conn.close()


class SqliteDatabase(Database):
    engine = "sqlite"

    def __init__(self, path: Path, readers: int = 4) -> None:
        self.path = path
        self._reader_count = readers
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._reader_conns: list[aiosqlite.Connection] = []
        # readers lent to a read transaction, and single reads queued on each reader
        self._in_txn: set[aiosqlite.Connection] = set()
        self._queued: dict[aiosqlite.Connection, int] = {}
        self._all: list[aiosqlite.Connection] = []
        self._releases: set[asyncio.Task[None]] = set()
        # single-statement writes waiting for the writer (group commit), and the task
        # that commits them
        self._single_writes: list[_SingleWrite] = []
        self._flusher: asyncio.Task[None] | None = None
        # the checkpoint connection, the checkpoint running (if any), when the last began
        self._checkpointer: aiosqlite.Connection | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._last_checkpoint = time.monotonic()

    @classmethod
    async def open(cls, path: Path, readers: int = 4) -> SqliteDatabase:
        db = cls(path, readers)
        await db._connect()
        return db

    async def _new_connection(self, cache_kib: int) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        # Checkpoint the WAL every ~40 MB instead of SQLite's ~4 MB: a message into a
        # big room writes a page per notified member, and a checkpoint after nearly
        # every such commit doubled its cost.
        await conn.execute("PRAGMA wal_autocheckpoint=10000")
        self._all.append(conn)
        return conn

    async def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Open it once on a plain thread first: a connection that aiosqlite fails to
            # open leaves its worker thread to report to an event loop that may be gone.
            await asyncio.to_thread(_probe, self.path)
            self._writer = await self._new_connection(WRITER_CACHE_KIB)
            # it reads no table: a small page cache
            self._checkpointer = await self._new_connection(CHECKPOINTER_CACHE_KIB)
            for _ in range(self._reader_count):
                conn = await self._new_connection(READER_CACHE_KIB)
                self._reader_conns.append(conn)
                self._queued[conn] = 0
                self._readers.put_nowait(conn)
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise DatabaseOpenError(
                f"database: cannot open the SQLite database {self.path}: {exc}"
            ) from exc

    def id_generator(self, sequence: str, max_sql: str) -> IdGenerator:
        return CounterIdGenerator(max_sql)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._checkpoint_task is not None:
            await asyncio.gather(self._checkpoint_task, return_exceptions=True)
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        for conn in self._all:
            await conn.close()
        self._all.clear()

    async def _release_reader(self, conn: aiosqlite.Connection, txn: SqliteTransaction) -> None:
        try:
            if txn.begun:
                await _in_thread(conn, _rollback_if_open)
        finally:
            self._in_txn.discard(conn)
            self._readers.put_nowait(conn)

    @asynccontextmanager
    async def transaction(
        self, name: str, *, readonly: bool = False
    ) -> AsyncIterator[SqliteTransaction]:
        observer = self.transaction_observer
        if readonly:
            conn = await self._readers.get()
            self._in_txn.add(conn)
            txn = SqliteTransaction(name, conn, "BEGIN")
            start = time.perf_counter()
            try:
                yield txn
            finally:
                if observer is not None:
                    observer(name, time.perf_counter() - start)
                # Give the reader back once it has rolled back, without making the
                # caller wait for that round trip.
                task = asyncio.ensure_future(self._release_reader(conn, txn))
                self._releases.add(task)
                task.add_done_callback(self._releases.discard)
            return
        async with self._write_transaction(name, group=False) as txn:
            yield txn

    @asynccontextmanager
    async def grouped_transaction(self, name: str) -> AsyncIterator[SqliteTransaction]:
        """A write transaction that, when its statements all wait to be sent (it read
        nothing back: a message's), hands them to the group commit of single writes
        (below) in a savepoint of their own, releasing the writer at once: the
        transactions of concurrent senders then share a BEGIN, a COMMIT and a round
        trip to the writer thread. One that read something commits alone."""
        async with self._write_transaction(name, group=True) as txn:
            yield txn

    @asynccontextmanager
    async def _write_transaction(
        self, name: str, *, group: bool
    ) -> AsyncIterator[SqliteTransaction]:
        observer = self.transaction_observer
        assert self._writer is not None, "database is closed"
        await self._write_lock.acquire()
        locked = True
        txn = SqliteTransaction(name, self._writer, "BEGIN IMMEDIATE")
        start = time.perf_counter()
        try:
            try:
                yield txn
            except BaseException:
                # Even when cancelled: the connection must leave the transaction.
                await asyncio.shield(txn.rollback())
                raise
            if group and not txn.begun and txn._pending:
                # Nothing was sent: its statements join the next group commit, and the
                # writer is free for the next transaction meanwhile.
                self._write_lock.release()
                locked = False
                await asyncio.shield(self._commit_grouped(txn))
            else:
                # The commit and its callbacks finish even if the caller is cancelled.
                await asyncio.shield(self._commit(txn))
        finally:
            if locked:
                self._write_lock.release()
            if observer is not None:
                observer(name, time.perf_counter() - start)

    def _committed(self) -> None:
        """A write committed: start a background checkpoint if one is due."""
        if self._checkpointer is None or self._checkpoint_task is not None:
            return
        now = time.monotonic()
        if now - self._last_checkpoint < CHECKPOINT_INTERVAL_S:
            return
        self._last_checkpoint = now
        self._checkpoint_task = asyncio.get_running_loop().create_task(
            self._checkpoint_in_background(), name="sqlite-checkpoint"
        )

    async def _checkpoint_in_background(self) -> None:
        try:
            await self.checkpoint()
        except Exception:  # the writer's own checkpoints still bound the WAL
            logger.warning("background WAL checkpoint failed", exc_info=True)
        finally:
            self._checkpoint_task = None

    async def checkpoint(self) -> tuple[int, int, int]:
        """A PASSIVE checkpoint now: (1 if it could not finish because of a lock
        else 0, frames in the WAL, frames now in the database file)."""
        conn = self._checkpointer
        assert conn is not None, "database is closed"

        def run(raw: sqlite3.Connection) -> tuple[int, int, int]:
            busy, log, done = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return int(busy), int(log), int(done)

        return await _in_thread(conn, run)

    async def _commit_grouped(self, txn: SqliteTransaction) -> None:
        """Commit a transaction's queued statements with the next group of single
        writes; its after-commit callbacks run once that group committed."""
        pending, txn._pending = txn._pending, []
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._single_writes.append(_SingleWrite(txn.name, [], future, pending))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush_single_writes())
        await future
        txn._run_after_commit()

    async def _commit(self, txn: SqliteTransaction) -> None:
        try:
            await txn.commit()
        except BaseException:
            await txn.rollback()
            raise
        self._committed()
        txn._run_after_commit()

    # Single-statement writes (``execute``) are committed in groups: those that arrive
    # while the writer is busy share the next transaction, each in its own savepoint
    # (one failing leaves the others in), in one round trip to the writer thread. When
    # many clients write at once (a room's members all sending read receipts), the
    # writer commits a handful of transactions instead of one per request, and each
    # wake-up of the long-polls carries many changes.

    async def execute(self, name: str, sql: str, *args: Any) -> int:
        return (await self.execute_statements(name, [(sql, args)]))[0]

    async def execute_statements(
        self, name: str, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[int]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        unit = [(_sql(sql), tuple(args)) for sql, args in statements]
        self._single_writes.append(_SingleWrite(name, unit, future))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush_single_writes())
        return await future

    async def _flush_single_writes(self) -> None:
        try:
            while self._single_writes:
                async with self._write_lock:
                    batch, self._single_writes = self._single_writes, []
                    await self._commit_single_writes(batch)
        finally:
            self._flusher = None

    async def _commit_single_writes(self, batch: list[_SingleWrite]) -> None:
        writer = self._writer
        assert writer is not None, "database is closed"
        outcomes: list[list[int] | Exception]
        start = time.perf_counter()
        try:  # a busy database (at BEGIN or COMMIT) retries the whole group
            outcomes = await self.retrying(
                f"{len(batch)} single writes",
                lambda: _in_thread(writer, lambda raw: _run_single_writes(raw, batch)),
            )
            self._committed()
        except RetryableError as exc:
            outcomes = [exc] * len(batch)
        except BaseException as exc:
            for write in batch:
                if not write.future.done():
                    write.future.set_exception(exc)
            raise
        finally:
            observer = self.transaction_observer
            if observer is not None:
                # the group's time, shared by its writes
                share = (time.perf_counter() - start) / len(batch)
                for write in batch:
                    if write.pending is None:  # (a grouped transaction observes itself)
                        observer(write.name, share)
        for write, outcome in zip(batch, outcomes, strict=True):
            if write.future.done():
                continue  # its caller was cancelled; the write stands
            if isinstance(outcome, BaseException):
                write.future.set_exception(outcome)
            else:
                write.future.set_result(outcome)

    # Single reads need no explicit transaction: one statement is one snapshot. They
    # are not lent a reader: each goes to the queue of the reader with the fewest
    # waiting (outside a read transaction), whose thread runs them back to back
    # without waiting for the event loop to hand the connection back in between.

    async def fetchall(self, name: str, sql: str, *args: Any) -> list[Row]:
        text = _sql(sql)

        def read(raw: sqlite3.Connection) -> list[Row]:
            return [tuple(r) for r in raw.execute(text, args).fetchall()]

        free = [c for c in self._reader_conns if c not in self._in_txn]
        observer = self.transaction_observer
        if not free:  # every reader is in a transaction: wait for one
            conn = await self._readers.get()
            start = time.perf_counter()
            try:
                return await _in_thread(conn, read)
            finally:
                self._readers.put_nowait(conn)
                if observer is not None:
                    observer(name, time.perf_counter() - start)
        conn = min(free, key=self._queued.__getitem__)
        self._queued[conn] += 1
        start = time.perf_counter()
        try:
            return await _in_thread(conn, read)
        finally:
            self._queued[conn] -= 1
            if observer is not None:
                observer(name, time.perf_counter() - start)

    async def fetchone(self, name: str, sql: str, *args: Any) -> Row | None:
        rows = await self.fetchall(name, sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any:
        row = await self.fetchone(name, sql, *args)
        return None if row is None else row[0]
