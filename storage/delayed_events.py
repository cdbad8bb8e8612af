"""MSC4140 delayed events (schema 0035): scheduled until sent or cancelled.

A row is deleted when its event is taken for sending, when it is cancelled, and when
another user's state event replaces the state it would set; so what is stored is
always what is still pending.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Row, Transaction

_COLUMNS = (
    "delay_id, user_id, device_id, delay, send_ts, room_id, event_type, state_key,"
    " origin_server_ts, content"
)


@dataclass(frozen=True)
class DelayedEvent:
    delay_id: str
    user_id: str
    device_id: str | None
    delay: int
    send_ts: int
    room_id: str
    event_type: str
    state_key: str | None
    origin_server_ts: int | None
    content: dict[str, Any]


def _event(row: Row) -> DelayedEvent:
    return DelayedEvent(
        row[0],
        row[1],
        row[2],
        int(row[3]),
        int(row[4]),
        row[5],
        row[6],
        row[7],
        None if row[8] is None else int(row[8]),
        json.loads(row[9]),
    )


class DelayedEventStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, event: DelayedEvent, limit: int) -> int | None:
        """Store ``event`` unless its user already has ``limit`` pending; then return
        the send time of the one that must go first for a place to free up."""

        async def txn_func(txn: Transaction) -> int | None:
            pending = await txn.fetchall(
                "SELECT send_ts FROM delayed_events WHERE user_id = $1 ORDER BY send_ts",
                event.user_id,
            )
            if len(pending) >= limit:
                return int(pending[len(pending) - limit][0])
            await txn.execute(
                f"INSERT INTO delayed_events ({_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                event.delay_id,
                event.user_id,
                event.device_id,
                event.delay,
                event.send_ts,
                event.room_id,
                event.event_type,
                event.state_key,
                event.origin_server_ts,
                json.dumps(event.content),
            )
            return None

        return await self._db.run_transaction("add_delayed_event", txn_func)

    async def for_user(self, user_id: str) -> list[DelayedEvent]:
        rows = await self._db.fetchall(
            "delayed_events_for_user",
            f"SELECT {_COLUMNS} FROM delayed_events WHERE user_id = $1 ORDER BY send_ts, delay_id",
            user_id,
        )
        return [_event(r) for r in rows]

    async def cancel(self, delay_id: str) -> bool:
        """Drop a pending event; False if there is none of that ID."""
        return (
            await self._db.execute(
                "cancel_delayed_event", "DELETE FROM delayed_events WHERE delay_id = $1", delay_id
            )
            > 0
        )

    async def restart(self, delay_id: str, now_ms: int) -> bool:
        """Count a pending event's delay again from ``now_ms``; False if there is none."""
        return (
            await self._db.execute(
                "restart_delayed_event",
                "UPDATE delayed_events SET send_ts = $2 + delay WHERE delay_id = $1",
                delay_id,
                now_ms,
            )
            > 0
        )

    async def take(self, delay_id: str) -> DelayedEvent | None:
        """Remove and return one pending event (to send it now)."""

        async def txn_func(txn: Transaction) -> DelayedEvent | None:
            row = await txn.fetchone(
                f"SELECT {_COLUMNS} FROM delayed_events WHERE delay_id = $1", delay_id
            )
            if row is None:
                return None
            await txn.execute("DELETE FROM delayed_events WHERE delay_id = $1", delay_id)
            return _event(row)

        return await self._db.run_transaction("take_delayed_event", txn_func)

    async def take_due(self, now_ms: int, limit: int) -> list[DelayedEvent]:
        """Remove and return up to ``limit`` events due at ``now_ms``, earliest first."""

        async def txn_func(txn: Transaction) -> list[DelayedEvent]:
            rows = await txn.fetchall(
                f"SELECT {_COLUMNS} FROM delayed_events WHERE send_ts <= $1"
                " ORDER BY send_ts, delay_id LIMIT $2",
                now_ms,
                limit,
            )
            for row in rows:
                await txn.execute("DELETE FROM delayed_events WHERE delay_id = $1", row[0])
            return [_event(r) for r in rows]

        return await self._db.run_transaction("take_due_delayed_events", txn_func)

    async def next_send_ts(self) -> int | None:
        value = await self._db.fetchval(
            "next_delayed_event", "SELECT MIN(send_ts) FROM delayed_events"
        )
        return None if value is None else int(value)

    async def cancel_state_txn(
        self, txn: Transaction, room_id: str, event_type: str, state_key: str, sender: str
    ) -> None:
        """Drop other users' pending events that would set this state (its sender's
        own stay)."""
        await txn.execute(
            "DELETE FROM delayed_events WHERE room_id = $1 AND event_type = $2"
            " AND state_key = $3 AND user_id <> $4",
            room_id,
            event_type,
            state_key,
            sender,
        )
