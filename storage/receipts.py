"""Read receipts (client-server API: Receipts), one row per (room, type, user, thread)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from storage.database import Database

# thread_id stored for an unthreaded receipt
UNTHREADED = ""


@dataclass(frozen=True)
class ReceiptRecord:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str | None
    event_id: str
    ts: int
    stream_id: int


_COLUMNS = "room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id"


def _record(row: tuple[object, ...]) -> ReceiptRecord:
    thread = str(row[3])
    return ReceiptRecord(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        thread if thread != UNTHREADED else None,
        str(row[4]),
        int(row[5]),  # type: ignore[call-overload]
        int(row[6]),  # type: ignore[call-overload]
    )


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def max_stream_id(self) -> int:
        value = await self.db.fetchval("receipts_max_stream", "SELECT MAX(stream_id) FROM receipts")
        return int(value or 0)

    async def upsert_if_newer(
        self,
        room_id: str,
        receipt_type: str,
        user_id: str,
        thread_id: str | None,
        event_id: str,
        event_stream_ordering: int,
        ts: int,
        stream_id: int,
    ) -> bool:
        """Store the receipt unless one at the same or a later event exists; True if stored."""
        changed = await self.db.execute(
            "upsert_receipt",
            f"INSERT INTO receipts ({_COLUMNS}, event_stream_ordering)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET"
            " event_id = excluded.event_id, ts = excluded.ts, stream_id = excluded.stream_id,"
            " event_stream_ordering = excluded.event_stream_ordering"
            " WHERE receipts.event_stream_ordering < excluded.event_stream_ordering",
            room_id,
            receipt_type,
            user_id,
            UNTHREADED if thread_id is None else thread_id,
            event_id,
            ts,
            stream_id,
            event_stream_ordering,
        )
        return changed > 0

    async def for_rooms(
        self, room_ids: Collection[str], since: int | None, upto: int
    ) -> list[ReceiptRecord]:
        """Receipts of ``room_ids`` that changed in (since, upto] (all of them if since is None)."""
        found: list[ReceiptRecord] = []
        rooms = list(room_ids)
        low = -1 if since is None else since
        for start in range(0, len(rooms), 500):
            chunk = rooms[start : start + 500]
            marks = ", ".join(f"${i + 3}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "receipts_for_rooms",
                f"SELECT {_COLUMNS} FROM receipts WHERE stream_id > $1 AND stream_id <= $2"
                f" AND room_id IN ({marks}) ORDER BY stream_id",
                low,
                upto,
                *chunk,
            )
            found += [_record(r) for r in rows]
        return found

    async def get_receipt(
        self, room_id: str, receipt_type: str, user_id: str, thread_id: str | None = None
    ) -> ReceiptRecord | None:
        row = await self.db.fetchone(
            "get_receipt",
            f"SELECT {_COLUMNS} FROM receipts WHERE room_id = $1 AND receipt_type = $2"
            " AND user_id = $3 AND thread_id = $4",
            room_id,
            receipt_type,
            user_id,
            UNTHREADED if thread_id is None else thread_id,
        )
        return None if row is None else _record(row)

    async def rooms_changed_since(self, since: int) -> dict[str, int]:
        """room_id -> latest receipt position, for rooms with receipts after ``since``."""
        rows = await self.db.fetchall(
            "receipt_rooms_changed_since",
            "SELECT room_id, MAX(stream_id) FROM receipts WHERE stream_id > $1 GROUP BY room_id",
            since,
        )
        return {str(r): int(p) for r, p in rows}

    async def for_events(
        self, room_events: Collection[tuple[str, str]], upto: int
    ) -> list[ReceiptRecord]:
        """Receipts (up to position ``upto``) that point at the given (room, event)s."""
        pairs = set(room_events)
        by_room: dict[str, list[str]] = {}
        for room_id, event_id in sorted(pairs):
            by_room.setdefault(room_id, []).append(event_id)
        # batches of at most ~400 events; the rooms select through the primary key
        batches: list[tuple[list[str], list[str]]] = []
        for room_id, event_ids in by_room.items():
            if not batches or len(batches[-1][1]) + len(event_ids) > 400:
                batches.append(([], []))
            batches[-1][0].append(room_id)
            batches[-1][1].extend(event_ids)
        found: list[ReceiptRecord] = []
        for rooms, events in batches:
            room_marks = ", ".join(f"${i + 2}" for i in range(len(rooms)))
            event_marks = ", ".join(f"${i + 2 + len(rooms)}" for i in range(len(events)))
            rows = await self.db.fetchall(
                "receipts_for_events",
                f"SELECT {_COLUMNS} FROM receipts WHERE stream_id <= $1"
                f" AND room_id IN ({room_marks}) AND event_id IN ({event_marks})",
                upto,
                *rooms,
                *events,
            )
            found += [r for r in map(_record, rows) if (r.room_id, r.event_id) in pairs]
        return found

    async def for_user_in_rooms(
        self, user_id: str, room_ids: Collection[str], upto: int
    ) -> list[ReceiptRecord]:
        """The user's own receipts (up to position ``upto``) in ``room_ids``."""
        rooms = list(dict.fromkeys(room_ids))
        found: list[ReceiptRecord] = []
        for start in range(0, len(rooms), 500):
            chunk = rooms[start : start + 500]
            marks = ", ".join(f"${i + 3}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "receipts_of_user_in_rooms",
                f"SELECT {_COLUMNS} FROM receipts WHERE user_id = $1 AND stream_id <= $2"
                f" AND room_id IN ({marks})",
                user_id,
                upto,
                *chunk,
            )
            found += [_record(r) for r in rows]
        return found
