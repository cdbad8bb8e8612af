"""Integer IDs of table rows (state groups, outbound federation queue entries),
handed out race-free.

Each engine gives its own ``IdGenerator`` (``Database.id_generator``): PostgreSQL a
database sequence, so any number of processes and concurrent transactions sharing one
database never get the same ID; SQLite, whose single writer lives in this process, a
counter in memory that starts once (under a lock) after the largest ID stored. An ID
whose transaction rolls back is never reused: IDs are unique and increasing in
allocation order, not gapless.
"""

from __future__ import annotations

import abc
import asyncio

from storage.database import Transaction


class IdGenerator(abc.ABC):
    """New IDs of one sequence, allocated inside a write transaction."""

    @abc.abstractmethod
    async def next_ids_txn(self, txn: Transaction, count: int) -> list[int]:
        """``count`` new IDs, in increasing order."""

    async def next_id_txn(self, txn: Transaction) -> int:
        return (await self.next_ids_txn(txn, 1))[0]


class SequenceIdGenerator(IdGenerator):
    """IDs from a PostgreSQL sequence (created by a migration)."""

    def __init__(self, sequence: str) -> None:
        if not sequence.replace("_", "").isalnum():
            raise ValueError(f"not a sequence name: {sequence!r}")
        self._sql = f"SELECT nextval('{sequence}') FROM generate_series(1, $1)"

    async def next_ids_txn(self, txn: Transaction, count: int) -> list[int]:
        if count <= 0:
            return []
        rows = await txn.fetchall(self._sql, count)
        return sorted(int(r[0]) for r in rows)


class CounterIdGenerator(IdGenerator):
    """IDs from a counter of this process, started after ``SELECT MAX(...)`` of the
    tables it serves (``max_sql`` gives one row of one or more maxima, NULL when empty)."""

    def __init__(self, max_sql: str) -> None:
        self._max_sql = max_sql
        self._next: int | None = None
        self._lock = asyncio.Lock()

    async def next_ids_txn(self, txn: Transaction, count: int) -> list[int]:
        if count <= 0:
            return []
        if self._next is None:
            async with self._lock:
                if self._next is None:
                    row = await txn.fetchone(self._max_sql)
                    self._next = max((int(v) for v in row or () if v is not None), default=0) + 1
        first = self._next
        self._next += count
        return list(range(first, first + count))
