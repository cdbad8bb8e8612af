"""The PostgreSQL engine: psycopg 3 with psycopg_pool.

Transactions run at READ COMMITTED (PostgreSQL's default); stores that need a
stronger guarantee take row locks (``SELECT ... FOR UPDATE``) or rely on unique
constraints. Serialization failures and deadlocks surface as ``RetryableError``.

A write transaction may read through the pool while it is open (hooks of the event
persister read events and state that are not in the transaction); reads never wait on
anything but a connection. So at most ``max_size - reserved_readers(max_size)`` write
transactions hold connections at once: the rest of the pool is always there for those
reads, and a burst of writes waits its turn instead of taking every connection and then
waiting for ever on a read (as SQLite's single writer does, in more lanes).

Every statement sent alone is a round trip, so a transaction batches with psycopg's
pipeline mode: BEGIN and the statements whose result is not needed (``executemany``,
``queue``) wait in memory and go, pipelined, with the next statement that returns
something, or with the COMMIT. A write transaction of inserts (a message's) costs one
round trip for BEGIN, its statements and COMMIT; a single read (``Database.fetchall``)
one for BEGIN READ ONLY, the query and its end; a single write (``Database.execute``)
one for BEGIN, the statement and COMMIT. An error of a held statement surfaces where it
is sent (a later statement, or the commit), still inside its transaction, which is then
rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from storage.database import (
    Database,
    DatabaseOpenError,
    IntegrityError,
    RetryableError,
    Row,
    Transaction,
    translate_numbered,
)
from storage.ids import IdGenerator, SequenceIdGenerator

T = TypeVar("T")


@lru_cache(maxsize=4096)
def _sql(sql: str) -> tuple[str, tuple[int, ...]]:
    text, order = translate_numbered(sql, "postgres")
    return text, tuple(order or ())


def _args(order: tuple[int, ...], args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(args[i] for i in order)


FIRST_CONNECT_TIMEOUT_S = 10


def reserved_readers(max_size: int) -> int:
    """Connections of a pool of ``max_size`` that write transactions never all take."""
    if max_size < 2:
        return 0
    return max(1, min(max_size // 4, 4))


POOL_OPEN_TIMEOUT_S = 30.0


def _describe(conninfo: str) -> str:
    """Where a conninfo points, without its password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "invalid connection string"
    shown = [f"{key}={params[key]}" for key in ("host", "port", "dbname", "user") if key in params]
    return " ".join(shown) or "libpq defaults"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _map_error(exc: psycopg.Error) -> Exception:
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return RetryableError(str(exc))
    if isinstance(exc, psycopg.errors.IntegrityError):
        return IntegrityError(str(exc))
    return exc


Pending = list[tuple[str, list[tuple[Any, ...]]]]
_OPEN = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)
_PIPELINE_OFF = psycopg.pq.PipelineStatus.OFF
# A read-only transaction that went well ends with COMMIT, not ROLLBACK: the same for it
# (it changed nothing), but psycopg forgets every prepared statement of a connection
# that runs a ROLLBACK (sending DEALLOCATE ALL, and a Parse again for each next use).
_END_READ_ONLY = "COMMIT"


class PostgresTransaction(Transaction):
    """A transaction whose statements go to the server in as few round trips as can be.

    Nothing is sent until a result is needed: BEGIN and the statements whose result is
    not (``queue``, ``executemany``) wait in memory, in order, and go pipelined with the
    next statement that returns something (``execute``, ``fetch*``, ``execute_script``)
    or with the COMMIT, in one round trip. An error of a held statement surfaces there.
    """

    def __init__(self, name: str, conn: psycopg.AsyncConnection[Any], begin: str) -> None:
        super().__init__(name)
        self._conn = conn
        self._begin: str | None = begin  # until sent
        self._pending: Pending = []
        self._ended = False  # committed or rolled back by the round trip of its last statement

    @property
    def begun(self) -> bool:
        """Whether BEGIN was sent (so there may be a transaction to end)."""
        return self._begin is None

    async def _send(
        self, statements: Sequence[tuple[str, tuple[Any, ...]]] = (), end: str | None = None
    ) -> list[psycopg.AsyncCursor[Any]]:
        """One round trip: BEGIN (unless sent), the held statements, ``statements``
        (their cursors are returned, with their results) and ``end`` (COMMIT or
        ROLLBACK), pipelined. The first error of any of them is raised (mapped)."""
        begin, pending = self._begin, self._pending
        self._begin, self._pending = None, []
        conn = self._conn
        try:
            if begin is None and not pending and end is None and len(statements) == 1:
                text, args = statements[0]
                return [await conn.execute(text, args, prepare=True)]
            cursors: list[psycopg.AsyncCursor[Any]] = []
            failure: psycopg.Error | None = None
            async with conn.pipeline() as pipeline:
                try:
                    if begin is not None:
                        await conn.execute(begin)
                    for text, rows in pending:
                        if len(rows) == 1:
                            await conn.execute(text, rows[0], prepare=True)
                        else:
                            await conn.cursor().executemany(text, rows)
                    for text, args in statements:
                        cursors.append(await conn.execute(text, args, prepare=True))
                    if end is not None:
                        await conn.execute(end)
                except psycopg.Error as exc:
                    # The error came back while the rest was being queued: take in what
                    # the server still answers, so that the pipeline ends cleanly.
                    failure = exc
                    with contextlib.suppress(psycopg.Error):
                        await pipeline.sync()
            if failure is not None:
                raise failure
        except psycopg.Error as exc:
            raise _map_error(exc) from exc
        finally:
            if conn.pgconn.pipeline_status != _PIPELINE_OFF and not conn.closed:
                # Still in pipeline mode: cancelled as it entered it (psycopg then never
                # leaves it). Closed, the pool replaces it rather than lending it out.
                await conn.close()
        if end is not None:
            self._ended = True
        return cursors

    async def queue(self, sql: str, *args: Any) -> None:
        text, order = _sql(sql)
        self._pending.append((text, [_args(order, args)]))

    async def execute(self, sql: str, *args: Any) -> int:
        text, order = _sql(sql)
        (cur,) = await self._send([(text, _args(order, args))])
        return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, order = _sql(sql)
        params = [_args(order, r) for r in rows]
        if params:
            self._pending.append((text, params))

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        text, order = _sql(sql)
        (cur,) = await self._send([(text, _args(order, args))])
        return await _rows(cur)

    async def execute_script(self, script: str) -> None:
        if not self.begun or self._pending:
            await self._send()
        try:
            await self._conn.execute(script.encode())
        except psycopg.Error as exc:
            raise _map_error(exc) from exc

    async def fetchall_and_end(self, sql: str, *args: Any) -> list[Row]:
        """The rows of a read-only transaction's last statement, sent with its end (a
        read-only transaction of one query costs one round trip)."""
        text, order = _sql(sql)
        (cur,) = await self._send([(text, _args(order, args))], end=_END_READ_ONLY)
        return await _rows(cur)

    async def execute_and_commit(
        self, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[int]:
        """Run the transaction's last statements and its COMMIT, in one round trip;
        their row counts. The after-commit callbacks run when the block exits."""
        unit = []
        for sql, args in statements:
            text, order = _sql(sql)
            unit.append((text, _args(order, args)))
        cursors = await self._send(unit, end="COMMIT")
        return [cur.rowcount for cur in cursors]

    async def commit(self) -> None:
        """COMMIT, with whatever is held; nothing at all if nothing was done."""
        if self._ended or (not self.begun and not self._pending):
            return
        await self._send(end="COMMIT")

    async def end_readonly(self) -> None:
        """End a read-only transaction (with anything held, so that its errors still
        surface)."""
        if self._ended or (not self.begun and not self._pending):
            return
        await self._send(end=_END_READ_ONLY)

    async def rollback(self) -> None:
        """Undo whatever was sent; the held statements are dropped."""
        self._pending = []
        if not self.begun or self._ended:
            return
        # Not when the server already ended it (a failed COMMIT), nor on a connection
        # left busy or broken by a cancellation: the pool discards that one.
        if self._conn.info.transaction_status in _OPEN:
            with contextlib.suppress(psycopg.Error):
                await self._conn.execute("ROLLBACK")
        self._ended = True


async def _to_the_end(work: Coroutine[Any, Any, T]) -> T:
    """``work``'s outcome, awaited to its end even if the caller is cancelled meanwhile
    (the cancellation is raised after it). The end of a transaction must be: its
    pipelined statements hold the connection's lock one at a time, so a connection
    given back to the pool in between would be used by two at once."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = cancelled or not task.done()
    if cancelled:
        if not task.cancelled():
            task.exception()  # (retrieved: the cancellation wins)
        raise asyncio.CancelledError
    return task.result()


async def _rows(cur: psycopg.AsyncCursor[Any]) -> list[Row]:
    try:
        rows = await cur.fetchall()
    except psycopg.Error as exc:
        raise _map_error(exc) from exc
    return [tuple(r) for r in rows]


class PostgresDatabase(Database):
    engine = "postgres"

    def __init__(self, pool: AsyncConnectionPool[Any], max_size: int) -> None:
        self._pool = pool
        self._writers = asyncio.Semaphore(max(1, max_size - reserved_readers(max_size)))

    @classmethod
    async def open(
        cls,
        conninfo: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        search_path: str | None = None,
    ) -> PostgresDatabase:
        """Connect a pool. ``search_path`` isolates a schema (used by tests).

        One connection is made first, with a short timeout, so that a server that is
        down or refuses us is reported at once (DatabaseOpenError) rather than after
        the pool has retried for ``POOL_OPEN_TIMEOUT_S``.
        """
        kwargs: dict[str, Any] = {"autocommit": True}
        if search_path is not None:
            kwargs["options"] = f"-c search_path={search_path}"
        try:
            first = await psycopg.AsyncConnection.connect(
                conninfo, connect_timeout=FIRST_CONNECT_TIMEOUT_S, **kwargs
            )
        except psycopg.Error as exc:
            raise DatabaseOpenError(
                f"database: cannot connect to PostgreSQL ({_describe(conninfo)}): {_one_line(exc)}"
            ) from exc
        await first.close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=kwargs, open=False
        )
        try:
            await pool.open(wait=True, timeout=POOL_OPEN_TIMEOUT_S)
        except PoolTimeout as exc:
            await pool.close()
            raise DatabaseOpenError(
                f"database: PostgreSQL ({_describe(conninfo)}) accepted one connection but"
                f" the pool of {min_size} could not connect within {POOL_OPEN_TIMEOUT_S:.0f} s"
            ) from exc
        return cls(pool, max_size)

    def id_generator(self, sequence: str, max_sql: str) -> IdGenerator:
        return SequenceIdGenerator(sequence)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(
        self, name: str, *, readonly: bool = False
    ) -> AsyncIterator[PostgresTransaction]:
        if readonly:
            async with self._open(name, readonly=True) as txn:
                yield txn
            return
        async with self._writers, self._open(name, readonly=False) as txn:
            yield txn

    @asynccontextmanager
    async def _open(self, name: str, *, readonly: bool) -> AsyncIterator[PostgresTransaction]:
        async with self._pool.connection() as conn:
            txn = PostgresTransaction(name, conn, "BEGIN READ ONLY" if readonly else "BEGIN")
            start = time.perf_counter()
            try:
                try:
                    yield txn
                except BaseException:
                    # Even when cancelled: the connection must leave the transaction.
                    await _to_the_end(txn.rollback())
                    raise
                if readonly:
                    await _to_the_end(txn.end_readonly())
                    return
                # The commit and its callbacks finish even if the caller is cancelled.
                await _to_the_end(self._commit(txn))
            finally:
                observer = self.transaction_observer
                if observer is not None:
                    observer(name, time.perf_counter() - start)

    async def _commit(self, txn: PostgresTransaction) -> None:
        try:
            await txn.commit()
        except BaseException:
            await txn.rollback()
            raise
        txn._run_after_commit()

    # Single statements: each the whole of its transaction, sent with its BEGIN (a read's
    # still READ ONLY) and its end, in one round trip.

    async def fetchall(self, name: str, sql: str, *args: Any) -> list[Row]:
        async with self.transaction(name, readonly=True) as txn:
            return await txn.fetchall_and_end(sql, *args)

    async def fetchone(self, name: str, sql: str, *args: Any) -> Row | None:
        rows = await self.fetchall(name, sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any:
        row = await self.fetchone(name, sql, *args)
        return None if row is None else row[0]

    async def execute(self, name: str, sql: str, *args: Any) -> int:
        return (await self.execute_statements(name, [(sql, args)]))[0]

    async def execute_statements(
        self, name: str, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[int]:
        async def attempt() -> list[int]:
            async with self.transaction(name) as txn:
                return await txn.execute_and_commit(statements)

        return await self.retrying(f"transaction {name}", attempt)
