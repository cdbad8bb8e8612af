"""Relations between events (``m.relates_to``): children, aggregations, thread roots.

Every query counts only children that take part in the timeline and whose
relation still holds: not outliers, not rejected or soft-failed, and not redacted
(redacting a child breaks its relationship; client-server API "Aggregations of
child events"). The relation columns of ``events`` are filled when an event is
stored (``storage.events._relation``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from storage.database import Database

_VALID_CHILD = (
    "redacted_by IS NULL AND NOT outlier AND NOT soft_failed AND rejected_reason IS NULL"
    " AND stream_ordering IS NOT NULL"
)

Position = tuple[int, int]  # (depth, stream_ordering)


@dataclass(frozen=True)
class ChildRow:
    event_id: str
    parent_id: str
    room_id: str
    rel_type: str
    sender: str
    type: str
    is_state: bool
    origin_server_ts: int
    depth: int
    stream_ordering: int


@dataclass(frozen=True)
class ThreadSummaryRow:
    root_id: str
    room_id: str
    count: int
    latest_stream: int
    user_participated: bool


_CHILD_COLUMNS = (
    "event_id, relates_to_id, room_id, rel_type, sender, type, state_key,"
    " origin_server_ts, depth, stream_ordering"
)


def _child(row: tuple[object, ...]) -> ChildRow:
    return ChildRow(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        str(row[5]),
        row[6] is not None,
        int(row[7]),  # type: ignore[call-overload]
        int(row[8]),  # type: ignore[call-overload]
        int(row[9]),  # type: ignore[call-overload]
    )


def _marks(start: int, count: int) -> str:
    return ", ".join(f"${start + i}" for i in range(count))


class RelationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def children(
        self,
        room_id: str,
        parent_ids: Collection[str],
        *,
        rel_type: str | None = None,
        event_type: str | None = None,
        backwards: bool = True,
        start: Position | None = None,
        end: Position | None = None,
        limit: int | None = None,
    ) -> list[ChildRow]:
        """Children of ``parent_ids`` in the room, in topological order.

        Positions are boundaries: backwards gives children before ``start`` and at or
        after ``end``, newest first; forwards gives children at or after ``start`` and
        before ``end``, oldest first.
        """
        if not parent_ids:
            return []
        parents = list(parent_ids)
        args: list[object] = [room_id, *parents]
        where = [f"room_id = $1 AND relates_to_id IN ({_marks(2, len(parents))})", _VALID_CHILD]

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if rel_type is not None:
            where.append(f"rel_type = {arg(rel_type)}")
        else:
            where.append("rel_type IS NOT NULL")
        if event_type is not None:
            where.append(f"type = {arg(event_type)}")
        before, at_or_after = (start, end) if backwards else (end, start)
        if before is not None:
            d, s = arg(before[0]), arg(before[1])
            where.append(f"(depth < {d} OR (depth = {d} AND stream_ordering < {s}))")
        if at_or_after is not None:
            d, s = arg(at_or_after[0]), arg(at_or_after[1])
            where.append(f"(depth > {d} OR (depth = {d} AND stream_ordering >= {s}))")
        order = "DESC" if backwards else "ASC"
        sql = (
            f"SELECT {_CHILD_COLUMNS} FROM events WHERE {' AND '.join(where)}"
            f" ORDER BY depth {order}, stream_ordering {order}"
        )
        if limit is not None:
            sql += f" LIMIT {arg(limit)}"
        rows = await self.db.fetchall("relation_children", sql, *args)
        return [_child(r) for r in rows]

    async def edits_and_references(self, parent_ids: Collection[str]) -> list[ChildRow]:
        """``m.replace`` and ``m.reference`` children of the parents (any room)."""
        if not parent_ids:
            return []
        parents = list(parent_ids)
        rows = await self.db.fetchall(
            "edits_and_references",
            f"SELECT {_CHILD_COLUMNS} FROM events WHERE relates_to_id IN ({_marks(1, len(parents))})"
            f" AND rel_type IN ('m.replace', 'm.reference') AND {_VALID_CHILD}",
            *parents,
        )
        return [_child(r) for r in rows]

    async def thread_summaries(
        self, parent_ids: Collection[str], user_id: str
    ) -> list[ThreadSummaryRow]:
        """Per thread root among ``parent_ids``: reply count, latest reply, participation."""
        if not parent_ids:
            return []
        parents = list(parent_ids)
        rows = await self.db.fetchall(
            "thread_summaries",
            "SELECT relates_to_id, room_id, COUNT(*), MAX(stream_ordering),"
            " MAX(CASE WHEN sender = $1 THEN 1 ELSE 0 END) FROM events"
            f" WHERE relates_to_id IN ({_marks(2, len(parents))}) AND rel_type = 'm.thread'"
            f" AND {_VALID_CHILD} GROUP BY relates_to_id, room_id",
            user_id,
            *parents,
        )
        return [
            ThreadSummaryRow(str(r[0]), str(r[1]), int(r[2]), int(r[3]), bool(r[4])) for r in rows
        ]

    async def event_ids_at_streams(self, streams: Collection[int]) -> dict[int, str]:
        if not streams:
            return {}
        values = list(streams)
        rows = await self.db.fetchall(
            "event_ids_at_streams",
            f"SELECT stream_ordering, event_id FROM events"
            f" WHERE stream_ordering IN ({_marks(1, len(values))})",
            *values,
        )
        return {int(r[0]): str(r[1]) for r in rows}

    async def thread_roots(
        self,
        room_id: str,
        *,
        before_stream: int | None,
        participant: str | None,
        limit: int,
    ) -> list[tuple[str, int]]:
        """(root ID, stream of the latest reply) of the room's threads, latest first.

        Only threads whose latest reply is at or before ``before_stream``; with
        ``participant``, only threads the user started or replied to.
        """
        args: list[object] = [room_id, limit]
        having = ""
        if before_stream is not None:
            args.append(before_stream)
            having = f" HAVING MAX(c.stream_ordering) <= ${len(args)}"
        participation = ""
        if participant is not None:
            args.append(participant)
            p = f"${len(args)}"
            participation = (
                f" AND (r.sender = {p} OR EXISTS (SELECT 1 FROM events m"
                f" WHERE m.relates_to_id = r.event_id AND m.rel_type = 'm.thread'"
                f" AND m.sender = {p} AND m.room_id = $1 AND m.redacted_by IS NULL"
                " AND NOT m.outlier AND NOT m.soft_failed AND m.rejected_reason IS NULL))"
            )
        rows = await self.db.fetchall(
            "thread_roots",
            "SELECT c.relates_to_id, MAX(c.stream_ordering) AS latest FROM events c"
            " JOIN events r ON r.event_id = c.relates_to_id AND r.room_id = c.room_id"
            " WHERE c.room_id = $1 AND c.rel_type = 'm.thread' AND c.redacted_by IS NULL"
            " AND NOT c.outlier AND NOT c.soft_failed AND c.rejected_reason IS NULL"
            " AND c.stream_ordering IS NOT NULL AND NOT r.outlier"
            f"{participation} GROUP BY c.relates_to_id{having} ORDER BY latest DESC LIMIT $2",
            *args,
        )
        return [(str(r[0]), int(r[1])) for r in rows]
