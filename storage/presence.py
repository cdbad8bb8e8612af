"""Presence of local users (client-server API: Presence), persisted in batches."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from storage.database import Database, Transaction


@dataclass(frozen=True)
class PresenceRecord:
    """One user's presence as the server tracks it."""

    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int
    last_user_sync_ts: int
    currently_active: bool
    stream_id: int


_COLUMNS = (
    "user_id, state, status_msg, last_active_ts, last_user_sync_ts, currently_active, stream_id"
)


def _record(row: tuple[object, ...]) -> PresenceRecord:
    return PresenceRecord(
        str(row[0]),
        str(row[1]),
        None if row[2] is None else str(row[2]),
        int(row[3]),  # type: ignore[call-overload]
        int(row[4]),  # type: ignore[call-overload]
        bool(row[5]),
        int(row[6]),  # type: ignore[call-overload]
    )


class PresenceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def max_stream_id(self) -> int:
        value = await self.db.fetchval("presence_max_stream", "SELECT MAX(stream_id) FROM presence")
        return int(value or 0)

    async def get_presence(self, user_ids: Collection[str]) -> dict[str, PresenceRecord]:
        found: dict[str, PresenceRecord] = {}
        ids = list(user_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "get_presence",
                f"SELECT {_COLUMNS} FROM presence WHERE user_id IN ({marks})",
                *chunk,
            )
            for row in rows:
                record = _record(row)
                found[record.user_id] = record
        return found

    async def changed_since(self, since: int, upto: int) -> list[PresenceRecord]:
        """Every stored presence whose latest change lies in (since, upto]."""
        rows = await self.db.fetchall(
            "presence_changed_since",
            f"SELECT {_COLUMNS} FROM presence WHERE stream_id > $1 AND stream_id <= $2"
            " ORDER BY stream_id",
            since,
            upto,
        )
        return [_record(r) for r in rows]

    async def not_offline(self) -> list[PresenceRecord]:
        """Users whose stored presence is not offline (their timers resume at start-up)."""
        rows = await self.db.fetchall(
            "presence_not_offline",
            f"SELECT {_COLUMNS} FROM presence WHERE state != 'offline'",
        )
        return [_record(r) for r in rows]

    async def upsert_many(self, records: Collection[PresenceRecord]) -> None:
        """Persist a batch of presence states in one transaction."""
        if not records:
            return

        async def txn_func(txn: Transaction) -> None:
            await txn.executemany(
                f"INSERT INTO presence ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (user_id) DO UPDATE SET state = excluded.state,"
                " status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts,"
                " last_user_sync_ts = excluded.last_user_sync_ts,"
                " currently_active = excluded.currently_active, stream_id = excluded.stream_id",
                [
                    (
                        r.user_id,
                        r.state,
                        r.status_msg,
                        r.last_active_ts,
                        r.last_user_sync_ts,
                        r.currently_active,
                        r.stream_id,
                    )
                    for r in records
                ],
            )

        await self.db.run_transaction("persist_presence", txn_func)
