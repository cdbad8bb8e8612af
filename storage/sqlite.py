"""The embedded engine: SQLite through aiosqlite.

One writer connection (writes are serialized by a lock, as SQLite allows only one
writer at a time anyway) and a few reader connections, all in WAL mode with
foreign keys on. Read-only transactions run on readers and see a consistent
snapshot; write transactions start with ``BEGIN IMMEDIATE`` on the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiosqlite

from storage.database import (
    Database,
    IntegrityError,
    RetryableError,
    Row,
    Transaction,
    translate_numbered,
)


@lru_cache(maxsize=4096)
def _sql(sql: str) -> str:
    return translate_numbered(sql, "sqlite")[0]


def _map_error(exc: sqlite3.Error) -> Exception:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return RetryableError(str(exc))
    return exc


class SqliteTransaction(Transaction):
    def __init__(self, name: str, conn: aiosqlite.Connection) -> None:
        super().__init__(name)
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            cursor = await self._conn.execute(_sql(sql), args)
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc
        rowcount = cursor.rowcount
        await cursor.close()
        return rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(_sql(sql), [tuple(r) for r in rows])
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        try:
            rows = await self._conn.execute_fetchall(_sql(sql), args)
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc
        return [tuple(r) for r in rows]

    async def execute_script(self, script: str) -> None:
        for statement in split_statements(script):
            await self.execute(statement)


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


class SqliteDatabase(Database):
    engine = "sqlite"

    def __init__(self, path: Path, readers: int = 3) -> None:
        self.path = path
        self._reader_count = readers
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[aiosqlite.Connection] = []

    @classmethod
    async def open(cls, path: Path, readers: int = 3) -> SqliteDatabase:
        db = cls(path, readers)
        await db._connect()
        return db

    async def _new_connection(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        self._all.append(conn)
        return conn

    async def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._new_connection()
        for _ in range(self._reader_count):
            self._readers.put_nowait(await self._new_connection())

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()

    @asynccontextmanager
    async def transaction(
        self, name: str, *, readonly: bool = False
    ) -> AsyncIterator[SqliteTransaction]:
        if readonly:
            conn = await self._readers.get()
            try:
                await conn.execute("BEGIN")
                txn = SqliteTransaction(name, conn)
                try:
                    yield txn
                finally:
                    await conn.execute("ROLLBACK")
            finally:
                self._readers.put_nowait(conn)
            return
        assert self._writer is not None, "database is closed"
        async with self._write_lock:
            conn = self._writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _map_error(exc) from exc
            txn = SqliteTransaction(name, conn)
            try:
                yield txn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            # The commit and its callbacks finish even if the caller is cancelled.
            await asyncio.shield(self._commit(conn, txn))

    async def _commit(self, conn: aiosqlite.Connection, txn: SqliteTransaction) -> None:
        try:
            await conn.execute("COMMIT")
        except sqlite3.Error as exc:
            await conn.execute("ROLLBACK")
            raise _map_error(exc) from exc
        txn._run_after_commit()
