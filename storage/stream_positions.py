"""Where each writer process of a stream has got to, and the sequences that hand out
the positions of the streams with several writers (``homeserver/replication``).

``stream_positions`` holds one row per (stream, writer): the writer has persisted
every position it allocated up to ``stream_id`` and will never again allocate one at
or below it. Rows only rise. The sequences (``<stream>_stream_seq``) exist on
PostgreSQL only: several processes need them, and SQLite serves one process.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction


class NoSequenceError(RuntimeError):
    """Stream sequences exist on PostgreSQL only (SQLite serves one process)."""


def _checked(sequence: str) -> str:
    if not sequence or not sequence.replace("_", "").isalnum():
        raise ValueError(f"not a sequence name: {sequence!r}")
    return sequence


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """What ``snapshot`` read: the sequence's last handed-out value (read first) and
    then every writer's row of the stream."""

    last_allocated: int
    positions: dict[str, int]


class StreamPositionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writers' positions -----------------------------------------------------------

    async def upsert_position(self, stream: str, instance: str, position: int) -> None:
        """Record that ``instance`` has got to ``position`` of ``stream`` (a lower
        position than the one stored changes nothing)."""
        await self.db.execute(
            "upsert_stream_position",
            "INSERT INTO stream_positions (stream_name, instance_name, stream_id)"
            " VALUES ($1, $2, $3) ON CONFLICT (stream_name, instance_name)"
            " DO UPDATE SET stream_id = excluded.stream_id"
            " WHERE stream_positions.stream_id < excluded.stream_id",
            stream,
            instance,
            position,
        )

    async def positions(self, stream: str) -> dict[str, int]:
        """Every writer's recorded position of ``stream``."""
        async with self.db.transaction("get_stream_positions", readonly=True) as txn:
            return await self.positions_txn(txn, stream)

    async def positions_txn(self, txn: Transaction, stream: str) -> dict[str, int]:
        rows = await txn.fetchall(
            "SELECT instance_name, stream_id FROM stream_positions WHERE stream_name = $1",
            stream,
        )
        return {str(instance): int(position) for instance, position in rows}

    # -- sequences (PostgreSQL) -------------------------------------------------------

    async def next_stream_id(self, sequence: str) -> int:
        """A new position from ``sequence`` (its own short write transaction)."""

        async def take(txn: Transaction) -> int:
            return await self.next_stream_id_txn(txn, sequence)

        return await self.db.run_transaction("next_stream_id", take)

    async def next_stream_id_txn(self, txn: Transaction, sequence: str) -> int:
        self._require_sequences()
        return int(await txn.fetchval(f"SELECT nextval('{_checked(sequence)}')"))

    async def last_stream_id_txn(self, txn: Transaction, sequence: str) -> int:
        """The last value ``sequence`` handed out (by any process); every later
        ``nextval`` is above it."""
        self._require_sequences()
        row = await txn.fetchone(f"SELECT last_value, is_called FROM {_checked(sequence)}")
        assert row is not None
        last, called = int(row[0]), bool(row[1])
        return last if called else last - 1

    async def snapshot(self, stream: str, sequence: str) -> StreamSnapshot:
        """The sequence's last value, then the writers' rows: a writer that has no row
        yet had allocated nothing when the rows were read (a writer records its row
        before its first allocation), so all it will allocate is above the value."""
        async with self.db.transaction("stream_positions_snapshot", readonly=True) as txn:
            last = await self.last_stream_id_txn(txn, sequence)
            positions = await self.positions_txn(txn, stream)
        return StreamSnapshot(last, positions)

    async def advance_sequence(self, sequence: str, at_least: int) -> None:
        """Move ``sequence`` past ``at_least`` if it is behind (a single process, which
        counts positions in memory, wrote beyond it); never moves it back."""
        self._require_sequences()
        name = _checked(sequence)
        await self.db.execute(
            "advance_stream_sequence",
            f"SELECT setval('{name}', $1) FROM {name} WHERE (CASE WHEN is_called"
            " THEN last_value ELSE last_value - 1 END) < $1",
            at_least,
        )

    def _require_sequences(self) -> None:
        if self.db.engine != "postgres":
            raise NoSequenceError("stream sequences need PostgreSQL")
