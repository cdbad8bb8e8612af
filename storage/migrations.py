"""Numbered schema migrations, applied in order at start-up.

``schema/`` holds files named ``NNNN_description.sql``. Where the dialects truly
differ a migration may instead (or also) come as ``NNNN_description.sqlite.sql`` and
``NNNN_description.postgres.sql``; the engine's own variant wins. Each migration runs
in one transaction together with the row recording its version, so a failure leaves
the database at the previous version. A database whose version is newer than the
newest migration this code knows is refused.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from importlib import resources

from storage.database import Database

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$")


class SchemaError(Exception):
    """The database cannot be used with this version of the code."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(engine: str, package: str = "schema") -> list[Migration]:
    """Every migration for ``engine``, in version order."""
    generic: dict[int, tuple[str, str]] = {}
    specific: dict[int, tuple[str, str]] = {}
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version, name, dialect = int(match.group(1)), match.group(2), match.group(3)
        if dialect is None:
            generic[version] = (name, entry.read_text())
        elif dialect == engine:
            specific[version] = (name, entry.read_text())
    merged = {**generic, **specific}
    return [Migration(v, merged[v][0], merged[v][1]) for v in sorted(merged)]


async def apply_migrations(db: Database, package: str = "schema") -> int:
    """Bring the schema up to date; return the resulting version."""
    migrations = load_migrations(db.engine, package)
    newest = migrations[-1].version if migrations else 0
    async with db.transaction("create_schema_version") as txn:
        if db.engine == "postgres":
            # Several processes may start at once against one database.
            await txn.execute("SELECT pg_advisory_xact_lock(7312001)")
        await txn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL,"
            " applied_ts BIGINT NOT NULL)"
        )
    rows = await db.fetchall("get_schema_versions", "SELECT version FROM schema_version")
    applied = {int(r[0]) for r in rows}
    current = max(applied, default=0)
    if current > newest:
        raise SchemaError(
            f"the database schema is at version {current}, newer than this code "
            f"supports ({newest}); upgrade the homeserver"
        )
    # Every migration not yet recorded, in order: one that landed with a lower number
    # than an already-applied one is still applied.
    for migration in migrations:
        if migration.version in applied:
            continue
        async with db.transaction(f"migration_{migration.version:04d}") as txn:
            if db.engine == "postgres":
                await txn.execute("SELECT pg_advisory_xact_lock(7312001)")
                done = await txn.fetchval(
                    "SELECT 1 FROM schema_version WHERE version = $1", migration.version
                )
                if done:
                    continue
            await txn.execute_script(migration.sql)
            await txn.execute(
                "INSERT INTO schema_version (version, name, applied_ts) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                int(time.time() * 1000),
            )
        logger.info("applied schema migration %04d_%s", migration.version, migration.name)
    return max(current, newest)
