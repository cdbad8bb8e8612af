"""Open the configured database engine and bring its schema up to date."""

from __future__ import annotations

from pathlib import Path

from storage.database import Database
from storage.migrations import apply_migrations


async def open_sqlite(path: Path) -> Database:
    from storage.sqlite import SqliteDatabase

    db = await SqliteDatabase.open(path)
    await _migrate(db)
    return db


async def open_postgres(
    conninfo: str, *, min_size: int = 2, max_size: int = 10, search_path: str | None = None
) -> Database:
    from storage.postgres import PostgresDatabase

    db = await PostgresDatabase.open(
        conninfo, min_size=min_size, max_size=max_size, search_path=search_path
    )
    await _migrate(db)
    return db


async def _migrate(db: Database) -> None:
    try:
        await apply_migrations(db)
    except BaseException:
        await db.close()
        raise
