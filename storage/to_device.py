"""Send-to-device messages waiting for local devices (client-server API:
Send-to-Device messaging), kept until the device's next sync acknowledges them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction

STREAM_NAME = "to_device"


@dataclass(frozen=True)
class InboxMessage:
    stream_id: int
    sender: str
    event_type: str
    content: dict[str, Any]


class ToDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def max_stream_id(self) -> int:
        """The highest position ever handed out (kept even when its messages are gone)."""
        value = await self.db.fetchval(
            "to_device_max_stream",
            "SELECT position FROM stream_high_water_marks WHERE stream_name = $1",
            STREAM_NAME,
        )
        return int(value or 0)

    async def add_messages(
        self,
        sender: str,
        sender_device: str,
        txn_id: str,
        event_type: str,
        messages: Sequence[tuple[str, str, dict[str, Any]]],
        stream_id: int,
        ts: int,
    ) -> bool:
        """Queue ``(user, device, content)`` messages under one position, once per
        (sender, device, txn_id); False when that transaction was already handled."""

        async def txn_func(txn: Transaction) -> bool:
            inserted = await txn.execute(
                "INSERT INTO to_device_txns (sender, sender_device, txn_id, stream_id, ts)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                sender,
                sender_device,
                txn_id,
                stream_id,
                ts,
            )
            if not inserted:
                return False
            await self._insert_inbox_txn(txn, sender, event_type, messages, stream_id)
            return True

        return await self.db.run_transaction("add_to_device_messages", txn_func)

    async def add_remote_messages(
        self,
        sender: str,
        event_type: str,
        messages: Sequence[tuple[str, str, dict[str, Any]]],
        stream_id: int,
    ) -> None:
        """Queue messages that arrived over federation (already deduplicated there)."""
        await self.db.run_transaction(
            "add_remote_to_device_messages",
            lambda txn: self._insert_inbox_txn(txn, sender, event_type, messages, stream_id),
        )

    async def _insert_inbox_txn(
        self,
        txn: Transaction,
        sender: str,
        event_type: str,
        messages: Sequence[tuple[str, str, dict[str, Any]]],
        stream_id: int,
    ) -> bool:
        await txn.executemany(
            "INSERT INTO device_inbox (user_id, device_id, stream_id, sender, event_type, content)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [(u, d, stream_id, sender, event_type, json.dumps(c)) for u, d, c in messages],
        )
        await txn.execute(
            "INSERT INTO stream_high_water_marks (stream_name, position) VALUES ($1, $2)"
            " ON CONFLICT (stream_name) DO UPDATE SET position = excluded.position"
            " WHERE stream_high_water_marks.position < excluded.position",
            STREAM_NAME,
            stream_id,
        )
        return True

    async def delete_acknowledged(self, user_id: str, device_id: str, upto: int) -> int:
        return await self.db.execute(
            "delete_acknowledged_to_device",
            "DELETE FROM device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3",
            user_id,
            device_id,
            upto,
        )

    async def pending(
        self, user_id: str, device_id: str, since: int, upto: int, limit: int
    ) -> list[InboxMessage]:
        rows = await self.db.fetchall(
            "pending_to_device",
            "SELECT stream_id, sender, event_type, content FROM device_inbox"
            " WHERE user_id = $1 AND device_id = $2 AND stream_id > $3 AND stream_id <= $4"
            " ORDER BY stream_id LIMIT $5",
            user_id,
            device_id,
            since,
            upto,
            limit,
        )
        return [InboxMessage(int(s), str(snd), str(t), json.loads(str(c))) for s, snd, t, c in rows]

    async def has_pending(self, user_id: str, device_id: str, since: int) -> bool:
        value = await self.db.fetchval(
            "has_pending_to_device",
            "SELECT 1 FROM device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_id > $3"
            " LIMIT 1",
            user_id,
            device_id,
            since,
        )
        return value is not None

    async def delete_device(self, user_id: str, device_id: str) -> None:
        """Drop the inbox of a deleted device."""
        await self.db.execute(
            "delete_device_inbox",
            "DELETE FROM device_inbox WHERE user_id = $1 AND device_id = $2",
            user_id,
            device_id,
        )
