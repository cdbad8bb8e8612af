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
        self._admin_conn: psycopg.Connection | None = None

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
            conn = self._admin()
            with conn.transaction():
                created = [
                    *(
                        f"DROP TABLE {schema}.{t} CASCADE"
                        for t in _names(conn, schema, "r") - self._tables
                    ),
                    *(
                        f"DROP SEQUENCE {schema}.{s} CASCADE"
                        for s in _names(conn, schema, "S") - self._sequences
                    ),
                ]
                if created:
                    conn.execute(";".join(created))
                if _names(conn, schema, "r") != self._tables:
                    raise RuntimeError(f"a test dropped a table of {schema}")
                conn.execute(self._reset_script(schema))
        except Exception:
            self._close_admin()
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            return
        self._free.append(schema)

    def _reset_script(self, schema: str) -> str:
        """One round trip: every row deleted (foreign keys not checked meanwhile), the
        migrations' rows restored, every sequence restarted."""
        assert self._tables is not None
        return ";".join(
            [
                "SET LOCAL session_replication_role = replica",
                *(f"DELETE FROM {schema}.{t}" for t in sorted(self._tables)),
                *(
                    f"INSERT INTO {schema}.{t} SELECT * FROM {SEED_SCHEMA}.{t}"
                    for t in self._seeded
                ),
                *(f"ALTER SEQUENCE {schema}.{s} RESTART" for s in sorted(self._sequences)),
            ]
        )

    def _admin(self) -> psycopg.Connection:
        """The connection that resets schemas, kept from one release to the next."""
        if self._admin_conn is None or self._admin_conn.closed:
            self._admin_conn = psycopg.connect(self.conninfo)
        return self._admin_conn

    def close(self) -> None:
        """At the end of the run: close the connection kept for resets."""
        self._close_admin()

    def _close_admin(self) -> None:
        if self._admin_conn is not None:
            self._admin_conn.close()
            self._admin_conn = None
