"""Migrated SQLite databases for tests, copied from one migrated once per worker.

Running every migration into a fresh file costs a SQLite test more than most of
what it tests. The first test of a worker migrates a seed file and closes it (so
its WAL is checkpointed into it); every test then gets a byte copy of the seed,
which is the schema exactly as the migrations left it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from storage.connect import open_sqlite
from storage.database import Database


class SqliteSeed:
    """A migrated SQLite file of this worker, copied for each test."""

    def __init__(self, directory: Path) -> None:
        self._seed = directory / "seed.db"
        self._ready = False

    async def open(self, path: Path) -> Database:
        """A freshly migrated database at ``path`` (a copy of the seed)."""
        if not self._ready:
            seed = await open_sqlite(self._seed)
            await seed.close()
            self._ready = True
        _copy(self._seed, path)
        return await open_sqlite(path)


def _copy(seed: Path, path: Path) -> None:
    """The seed's file, and its WAL if closing left one (it should not)."""
    shutil.copyfile(seed, path)
    wal = seed.with_name(seed.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, path.with_name(path.name + "-wal"))
