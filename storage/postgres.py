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
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

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


class PostgresTransaction(Transaction):
    def __init__(self, name: str, conn: psycopg.AsyncConnection[Any]) -> None:
        super().__init__(name)
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        text, order = _sql(sql)
        try:
            cur = await self._conn.execute(text, _args(order, args), prepare=True)
        except psycopg.Error as exc:
            raise _map_error(exc) from exc
        return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, order = _sql(sql)
        params = [_args(order, r) for r in rows]
        if not params:
            return
        try:
            async with self._conn.cursor() as cur:
                await cur.executemany(text, params)
        except psycopg.Error as exc:
            raise _map_error(exc) from exc

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        text, order = _sql(sql)
        try:
            cur = await self._conn.execute(text, _args(order, args), prepare=True)
            rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise _map_error(exc) from exc
        return [tuple(r) for r in rows]

    async def execute_script(self, script: str) -> None:
        try:
            await self._conn.execute(script.encode())
        except psycopg.Error as exc:
            raise _map_error(exc) from exc


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
            txn = PostgresTransaction(name, conn)
            start = time.perf_counter()
            try:
                try:
                    await conn.execute("BEGIN READ ONLY" if readonly else "BEGIN")
                    yield txn
                except BaseException:
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute("ROLLBACK")
                    raise
                if readonly:
                    await conn.execute("ROLLBACK")
                    return
                await asyncio.shield(self._commit(conn, txn))
            finally:
                observer = self.transaction_observer
                if observer is not None:
                    observer(name, time.perf_counter() - start)

    async def _commit(self, conn: psycopg.AsyncConnection[Any], txn: PostgresTransaction) -> None:
        try:
            await conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise _map_error(exc) from exc
        txn._run_after_commit()
