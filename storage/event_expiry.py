"""When self-destructing messages are to be pruned (MSC2228; ``event_expiry``)."""

from __future__ import annotations

from storage.database import Database, Transaction


class EventExpiryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, event_id: str, expiry_ts: int) -> None:
        await self.db.execute(
            "add_event_expiry",
            "INSERT INTO event_expiry (event_id, expiry_ts) VALUES ($1, $2)"
            " ON CONFLICT (event_id) DO NOTHING",
            event_id,
            expiry_ts,
        )

    async def earliest(self) -> int | None:
        """The soonest expiry still to apply (None: none)."""
        value = await self.db.fetchval(
            "earliest_event_expiry", "SELECT MIN(expiry_ts) FROM event_expiry"
        )
        return None if value is None else int(value)

    async def due(self, now_ms: int, limit: int) -> list[str]:
        """Events whose expiry has come, soonest first."""
        rows = await self.db.fetchall(
            "due_event_expiries",
            "SELECT event_id FROM event_expiry WHERE expiry_ts <= $1"
            " ORDER BY expiry_ts, event_id LIMIT $2",
            now_ms,
            limit,
        )
        return [str(r[0]) for r in rows]

    async def delete_txn(self, txn: Transaction, event_id: str) -> None:
        await txn.queue("DELETE FROM event_expiry WHERE event_id = $1", event_id)
