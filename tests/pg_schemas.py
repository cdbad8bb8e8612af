"""Migrated PostgreSQL schemas for tests, made once per worker and reused.

Migrating a fresh schema costs most of a PostgreSQL test's time (about 0.8 s of DDL).
A test takes a schema from the pool instead, and gives it back when its database is
closed; the schema is then put back as the migrations left it: rows deleted
(foreign keys not checked meanwhile), the rows the migrations wrote restored,
sequences restarted, and any table or sequence the test created dropped. A schema
whose reset fails is dropped instead of reused.
"""

from __future__ import annotations

import secrets

import psycopg

from storage.connect import open_postgres
from storage.database import Database

SEED_SCHEMA = "migrated_seed"


def _names(conn: psycopg.Connection, schema: str, relkind: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = %s",
        (schema, relkind),
    ).fetchall()
    return {str(r[0]) for r in rows}


class PgSchemaPool:
    """Clean migrated schemas of one test database (one pool per worker)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._free: list[str] = []
        self._tables: set[str] | None = None
        self._sequences: set[str] = set()
        self._seeded: list[str] = []

    async def open(self) -> tuple[Database, str]:
        """A database on a clean migrated schema; give the schema back with release."""
        if self._free:
            schema = self._free.pop()
        else:
            schema = f"t_{secrets.token_hex(6)}"
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
        db = await open_postgres(self.conninfo, min_size=1, max_size=4, search_path=schema)
        if self._tables is None:
            self._remember_baseline(schema)
        return db, schema

    def _remember_baseline(self, schema: str) -> None:
        """What the migrations made: their tables, sequences and rows (copied aside)."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            self._tables = _names(conn, schema, "r")
            self._sequences = _names(conn, schema, "S")
            conn.execute(f"DROP SCHEMA IF EXISTS {SEED_SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {SEED_SCHEMA}")
            for table in sorted(self._tables):
                row = conn.execute(f"SELECT 1 FROM {schema}.{table} LIMIT 1").fetchone()
                if row is not None:
                    conn.execute(
                        f"CREATE TABLE {SEED_SCHEMA}.{table} AS SELECT * FROM {schema}.{table}"
                    )
                    self._seeded.append(table)

    def release(self, schema: str) -> None:
        """Put the schema back as migrated and into the pool (dropped if that fails)."""
        assert self._tables is not None
        try:
            with psycopg.connect(self.conninfo) as conn, conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                for table in _names(conn, schema, "r") - self._tables:
                    conn.execute(f"DROP TABLE {schema}.{table} CASCADE")
                for sequence in _names(conn, schema, "S") - self._sequences:
                    conn.execute(f"DROP SEQUENCE {schema}.{sequence} CASCADE")
                if _names(conn, schema, "r") != self._tables:
                    raise RuntimeError(f"a test dropped a table of {schema}")
                for table in sorted(self._tables):
                    conn.execute(f"DELETE FROM {schema}.{table}")
                for table in self._seeded:
                    conn.execute(
                        f"INSERT INTO {schema}.{table} SELECT * FROM {SEED_SCHEMA}.{table}"
                    )
                for sequence in sorted(self._sequences):
                    conn.execute(f"ALTER SEQUENCE {schema}.{sequence} RESTART")
        except Exception:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            return
        self._free.append(schema)
