"""Reports users file against events, rooms and users (client-server "Reporting
content"), read and closed by admins (Synapse's admin API)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Row, Transaction


@dataclass(frozen=True)
class EventReport:
    id: int
    received_ts: int
    room_id: str
    event_id: str
    user_id: str
    reason: str | None
    score: int | None
    # of the reported event and its room, where this server still holds them
    sender: str | None
    room_name: str | None
    canonical_alias: str | None
    event_json: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry of ``GET /_synapse/admin/v1/event_reports``."""
        return {
            "id": self.id,
            "received_ts": self.received_ts,
            "room_id": self.room_id,
            "name": self.room_name,
            "event_id": self.event_id,
            "user_id": self.user_id,
            "reason": self.reason,
            "score": self.score,
            "sender": self.sender,
            "canonical_alias": self.canonical_alias,
        }


@dataclass(frozen=True)
class UserReport:
    id: int
    received_ts: int
    target_user_id: str
    user_id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """An entry of ``GET /_synapse/admin/v1/user_reports``, and the detail."""
        return {
            "id": self.id,
            "received_ts": self.received_ts,
            "target_user_id": self.target_user_id,
            "user_id": self.user_id,
            "reason": self.reason,
        }


_USER_REPORT_COLUMNS = "id, received_ts, target_user_id, user_id, reason"


def _user_report(row: Row) -> UserReport:
    return UserReport(int(row[0]), int(row[1]), row[2], row[3], row[4])


_REPORT_SELECT = (
    "SELECT r.id, r.received_ts, r.room_id, r.event_id, r.user_id, r.reason, r.content,"
    " e.sender, s.name, s.canonical_alias{extra} FROM event_reports AS r"
    " LEFT JOIN events AS e ON e.event_id = r.event_id"
    " LEFT JOIN room_summaries AS s ON s.room_id = r.room_id"
)


def _score(raw_content: str) -> int | None:
    try:
        score = json.loads(raw_content).get("score")
    except (ValueError, AttributeError):
        return None
    return score if type(score) is int else None


def _report(row: Row, with_event: bool = False) -> EventReport:
    event_json: dict[str, Any] | None = None
    if with_event and row[10] is not None:
        event_json = dict(json.loads(row[10]))
    return EventReport(
        id=int(row[0]),
        received_ts=int(row[1]),
        room_id=row[2],
        event_id=row[3],
        user_id=row[4],
        reason=row[5],
        score=_score(row[6]),
        sender=row[7],
        room_name=row[8],
        canonical_alias=row[9],
        event_json=event_json,
    )


class ReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._event_report_ids = db.id_generator(
            "event_report_id_seq", "SELECT MAX(id) FROM event_reports"
        )
        self._room_report_ids = db.id_generator(
            "room_report_id_seq", "SELECT MAX(id) FROM room_reports"
        )
        self._user_report_ids = db.id_generator(
            "user_report_id_seq", "SELECT MAX(id) FROM user_reports"
        )

    # -- filing -----------------------------------------------------------------------

    async def add_event_report(
        self,
        room_id: str,
        event_id: str,
        user_id: str,
        reason: str | None,
        content: dict[str, Any],
        received_ts: int,
    ) -> int:
        async def txn_func(txn: Transaction) -> int:
            report_id = await self._event_report_ids.next_id_txn(txn)
            await txn.execute(
                "INSERT INTO event_reports (id, received_ts, room_id, event_id, user_id,"
                " reason, content) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                report_id,
                received_ts,
                room_id,
                event_id,
                user_id,
                reason,
                json.dumps(content, separators=(",", ":"), ensure_ascii=False),
            )
            return report_id

        return await self.db.run_transaction("add_event_report", txn_func)

    async def add_room_report(
        self, room_id: str, user_id: str, reason: str, received_ts: int
    ) -> int:
        async def txn_func(txn: Transaction) -> int:
            report_id = await self._room_report_ids.next_id_txn(txn)
            await txn.execute(
                "INSERT INTO room_reports (id, received_ts, room_id, user_id, reason)"
                " VALUES ($1, $2, $3, $4, $5)",
                report_id,
                received_ts,
                room_id,
                user_id,
                reason,
            )
            return report_id

        return await self.db.run_transaction("add_room_report", txn_func)

    async def add_user_report(
        self, target_user_id: str, user_id: str, reason: str, received_ts: int
    ) -> int:
        async def txn_func(txn: Transaction) -> int:
            report_id = await self._user_report_ids.next_id_txn(txn)
            await txn.execute(
                "INSERT INTO user_reports (id, received_ts, target_user_id, user_id, reason)"
                " VALUES ($1, $2, $3, $4, $5)",
                report_id,
                received_ts,
                target_user_id,
                user_id,
                reason,
            )
            return report_id

        return await self.db.run_transaction("add_user_report", txn_func)

    # -- reading and closing event reports ----------------------------------------------

    async def event_reports(
        self,
        start: int,
        limit: int,
        *,
        newest_first: bool,
        user_id: str | None = None,
        room_id: str | None = None,
        event_sender: str | None = None,
    ) -> tuple[list[EventReport], int]:
        """A page of event reports (by time received) and how many match in all."""
        conditions: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("r.user_id", user_id),
            ("r.room_id", room_id),
            ("e.sender", event_sender),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} = ${len(args)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "DESC" if newest_first else "ASC"
        rows = await self.db.fetchall(
            "get_event_reports",
            _REPORT_SELECT.format(extra="")
            + where
            + f" ORDER BY r.received_ts {order}, r.id {order}"
            + f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
            *args,
            limit,
            start,
        )
        total = await self.db.fetchval(
            "count_event_reports",
            "SELECT COUNT(*) FROM event_reports AS r"
            " LEFT JOIN events AS e ON e.event_id = r.event_id" + where,
            *args,
        )
        return [_report(r) for r in rows], int(total or 0)

    async def event_report(self, report_id: int) -> EventReport | None:
        """One event report, with the reported event's JSON as stored."""
        row = await self.db.fetchone(
            "get_event_report",
            _REPORT_SELECT.format(extra=", e.json") + " WHERE r.id = $1",
            report_id,
        )
        return None if row is None else _report(row, with_event=True)

    async def delete_event_report(self, report_id: int) -> bool:
        changed = await self.db.execute(
            "delete_event_report", "DELETE FROM event_reports WHERE id = $1", report_id
        )
        return changed > 0

    # -- reading and closing user reports -----------------------------------------------

    async def user_reports(
        self,
        start: int,
        limit: int,
        *,
        newest_first: bool,
        user_id: str | None = None,
        target_user_id: str | None = None,
    ) -> tuple[list[UserReport], int]:
        """A page of user reports (by time received) and how many match in all."""
        conditions: list[str] = []
        args: list[Any] = []
        for column, value in (("user_id", user_id), ("target_user_id", target_user_id)):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} = ${len(args)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "DESC" if newest_first else "ASC"
        rows = await self.db.fetchall(
            "get_user_reports",
            f"SELECT {_USER_REPORT_COLUMNS} FROM user_reports{where}"
            f" ORDER BY received_ts {order}, id {order}"
            f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
            *args,
            limit,
            start,
        )
        total = await self.db.fetchval(
            "count_user_reports", f"SELECT COUNT(*) FROM user_reports{where}", *args
        )
        return [_user_report(r) for r in rows], int(total or 0)

    async def user_report(self, report_id: int) -> UserReport | None:
        row = await self.db.fetchone(
            "get_user_report",
            f"SELECT {_USER_REPORT_COLUMNS} FROM user_reports WHERE id = $1",
            report_id,
        )
        return None if row is None else _user_report(row)

    async def delete_user_report(self, report_id: int) -> bool:
        changed = await self.db.execute(
            "delete_user_report", "DELETE FROM user_reports WHERE id = $1", report_id
        )
        return changed > 0
