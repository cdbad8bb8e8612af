"""The tables of the schema, read from the database catalog (so a table added later
is seen by the purge tests without editing them)."""

from __future__ import annotations

from storage.database import Database


async def tables_with_column(db: Database, column: str) -> set[str]:
    if db.engine == "postgres":
        rows = await db.fetchall(
            "test_tables",
            "SELECT table_name FROM information_schema.columns"
            " WHERE column_name = $1 AND table_schema = current_schema()",
            column,
        )
        return {str(r[0]) for r in rows}
    rows = await db.fetchall("test_tables", "SELECT name FROM sqlite_master WHERE type = 'table'")
    found = set()
    for (table,) in rows:
        columns = await db.fetchall("test_columns", f"PRAGMA table_info({table})")
        if any(c[1] == column for c in columns):
            found.add(str(table))
    return found
