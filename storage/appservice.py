"""Delivery state of application services: per-service stream positions and the
stored transactions not yet accepted (schema 0027)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction
from storage.receipts import UNTHREADED, ReceiptRecord

EVENTS = "events"
RECEIPTS = "receipts"
TO_DEVICE = "to_device"
DEVICE_LISTS = "device_lists"
TXN = "txn"  # the ID of the last transaction made (not a stream)


@dataclass(frozen=True)
class StoredTransaction:
    """A transaction made for a service and not yet accepted by it."""

    txn_id: int
    body: dict[str, Any]


@dataclass(frozen=True)
class InboxEntry:
    """A to-device message in a local device's inbox (for pushing to a service)."""

    user_id: str
    device_id: str
    stream_id: int
    sender: str
    event_type: str
    content: dict[str, Any]


class AppServiceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def positions(self, as_id: str) -> dict[str, int]:
        """stream -> position of the service (streams it never had are absent)."""
        rows = await self.db.fetchall(
            "appservice_positions",
            "SELECT stream, position FROM appservice_positions WHERE as_id = $1",
            as_id,
        )
        return {str(stream): int(position) for stream, position in rows}

    async def set_positions(self, as_id: str, positions: Mapping[str, int]) -> None:
        await self.db.run_transaction(
            "appservice_set_positions",
            lambda txn: self._set_positions_txn(txn, as_id, positions),
        )

    async def _set_positions_txn(
        self, txn: Transaction, as_id: str, positions: Mapping[str, int]
    ) -> None:
        for stream, position in positions.items():
            await txn.execute(
                "INSERT INTO appservice_positions (as_id, stream, position) VALUES ($1, $2, $3)"
                " ON CONFLICT (as_id, stream) DO UPDATE SET position = excluded.position",
                as_id,
                stream,
                position,
            )

    async def create_transaction(
        self, as_id: str, body: Mapping[str, Any], positions: Mapping[str, int]
    ) -> int:
        """Store a new transaction with the next ID and move the positions, at once;
        its ID."""

        async def txn_func(txn: Transaction) -> int:
            last = await txn.fetchval(
                "SELECT position FROM appservice_positions WHERE as_id = $1 AND stream = $2",
                as_id,
                TXN,
            )
            txn_id = int(last or 0) + 1
            await txn.execute(
                "INSERT INTO appservice_txns (as_id, txn_id, body) VALUES ($1, $2, $3)",
                as_id,
                txn_id,
                json.dumps(body),
            )
            await self._set_positions_txn(txn, as_id, {**positions, TXN: txn_id})
            return txn_id

        return await self.db.run_transaction("appservice_create_txn", txn_func)

    async def oldest_transaction(self, as_id: str) -> StoredTransaction | None:
        row = await self.db.fetchone(
            "appservice_oldest_txn",
            "SELECT txn_id, body FROM appservice_txns WHERE as_id = $1 ORDER BY txn_id LIMIT 1",
            as_id,
        )
        return None if row is None else StoredTransaction(int(row[0]), json.loads(str(row[1])))

    async def delete_transaction(self, as_id: str, txn_id: int) -> None:
        await self.db.execute(
            "appservice_delete_txn",
            "DELETE FROM appservice_txns WHERE as_id = $1 AND txn_id = $2",
            as_id,
            txn_id,
        )

    async def inbox_between(self, since: int, upto: int, limit: int) -> list[InboxEntry]:
        """To-device messages of every local device in (since, upto], oldest first."""
        rows = await self.db.fetchall(
            "appservice_inbox_between",
            "SELECT user_id, device_id, stream_id, sender, event_type, content FROM device_inbox"
            " WHERE stream_id > $1 AND stream_id <= $2 ORDER BY stream_id LIMIT $3",
            since,
            upto,
            limit,
        )
        return [
            InboxEntry(str(u), str(d), int(s), str(snd), str(t), json.loads(str(c)))
            for u, d, s, snd, t, c in rows
        ]

    async def receipts_between(self, since: int, upto: int, limit: int) -> list[ReceiptRecord]:
        """Receipts of every room that changed in (since, upto], oldest first."""
        rows = await self.db.fetchall(
            "appservice_receipts_between",
            "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id"
            " FROM receipts WHERE stream_id > $1 AND stream_id <= $2 ORDER BY stream_id LIMIT $3",
            since,
            upto,
            limit,
        )
        return [
            ReceiptRecord(
                str(room),
                str(kind),
                str(user),
                None if thread == UNTHREADED else str(thread),
                str(event),
                int(ts),
                int(stream),
            )
            for room, kind, user, thread, event, ts, stream in rows
        ]
