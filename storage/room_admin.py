"""What the room admin API reads and writes beyond the other stores: every room with
the facts the room list sorts on, blocked rooms, and forward extremity details."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from storage.database import Database

# The state events whose content a room's admin view shows.
DETAIL_STATE_TYPES = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.encryption",
    "m.room.topic",
    "m.room.avatar",
)

_IN_CHUNK = 500


@dataclass
class RoomFacts:
    """One room as the admin room list shows it."""

    room_id: str
    version: str
    creator: str | None
    public: bool
    name: str | None
    canonical_alias: str | None
    joined_members: int
    joined_local_members: int
    state_events: int
    # state type -> content, for DETAIL_STATE_TYPES the room has
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ForwardExtremity:
    event_id: str
    state_group: int | None
    depth: int
    received_ts: int


class RoomAdminStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- rooms ---------------------------------------------------------------------------

    async def room_facts(self, server_name: str, room_id: str | None = None) -> list[RoomFacts]:
        """Every room this server holds (or just ``room_id``), unordered."""
        suffix = ":" + server_name
        where = "" if room_id is None else " WHERE r.room_id = $3"
        args: list[Any] = [suffix, len(suffix)]
        if room_id is not None:
            args.append(room_id)
        rows = await self.db.fetchall(
            "admin_room_facts",
            "SELECT r.room_id, r.room_version, r.creator, r.is_public, s.name,"
            " s.canonical_alias, COALESCE(s.joined_count, 0),"
            " (SELECT COUNT(*) FROM current_state c WHERE c.room_id = r.room_id"
            "  AND c.type = 'm.room.member' AND c.membership = 'join'"
            "  AND substr(c.state_key, length(c.state_key) - $2 + 1) = $1),"
            " (SELECT COUNT(*) FROM current_state c WHERE c.room_id = r.room_id)"
            " FROM rooms r LEFT JOIN room_summaries s ON s.room_id = r.room_id" + where,
            *args,
        )
        facts = {
            r[0]: RoomFacts(
                room_id=r[0],
                version=r[1],
                creator=r[2],
                public=bool(r[3]),
                name=r[4],
                canonical_alias=r[5],
                joined_members=int(r[6]),
                joined_local_members=int(r[7]),
                state_events=int(r[8]),
            )
            for r in rows
        }
        await self._fill_contents(facts)
        return list(facts.values())

    async def _fill_contents(self, facts: dict[str, RoomFacts]) -> None:
        types = ", ".join(f"'{t}'" for t in DETAIL_STATE_TYPES)
        ids = list(facts)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "admin_room_detail_state",
                "SELECT c.room_id, c.type, e.json FROM current_state c"
                " JOIN events e ON e.event_id = c.event_id"
                f" WHERE c.state_key = '' AND c.type IN ({types}) AND c.room_id IN ({marks})",
                *chunk,
            )
            for room_id, event_type, raw in rows:
                content = json.loads(raw).get("content")
                facts[room_id].contents[event_type] = content if isinstance(content, dict) else {}

    async def local_devices_in_room(self, room_id: str, server_name: str) -> int:
        """How many devices the room's joined local members have."""
        suffix = ":" + server_name
        value = await self.db.fetchval(
            "admin_room_local_devices",
            "SELECT COUNT(*) FROM devices d JOIN current_state c ON c.state_key = d.user_id"
            " WHERE c.room_id = $1 AND c.type = 'm.room.member' AND c.membership = 'join'"
            " AND substr(c.state_key, length(c.state_key) - $3 + 1) = $2",
            room_id,
            suffix,
            len(suffix),
        )
        return int(value or 0)

    async def forgotten_by_all_local(self, room_id: str, server_name: str) -> bool:
        """Whether every local user who was ever in the room has forgotten it."""
        suffix = ":" + server_name
        rows = await self.db.fetchall(
            "admin_room_forgotten",
            "SELECT DISTINCT m.user_id, f.user_id FROM room_memberships m"
            " LEFT JOIN forgotten_rooms f ON f.user_id = m.user_id AND f.room_id = m.room_id"
            " WHERE m.room_id = $1 AND substr(m.user_id, length(m.user_id) - $3 + 1) = $2",
            room_id,
            suffix,
            len(suffix),
        )
        return bool(rows) and all(forgot is not None for _user, forgot in rows)

    async def depth_before_received_ts(self, room_id: str, ts: int) -> int | None:
        """The depth of the room's first timeline event received at or after ``ts``, or
        of its latest one when none was; None when the room has no timeline event."""
        row = await self.db.fetchone(
            "admin_first_event_after_ts",
            "SELECT depth FROM events WHERE room_id = $1 AND received_ts >= $2"
            " AND stream_ordering IS NOT NULL AND NOT outlier"
            " ORDER BY stream_ordering LIMIT 1",
            room_id,
            ts,
        )
        if row is None:
            row = await self.db.fetchone(
                "admin_latest_event",
                "SELECT depth FROM events WHERE room_id = $1"
                " AND stream_ordering IS NOT NULL AND NOT outlier"
                " ORDER BY stream_ordering DESC LIMIT 1",
                room_id,
            )
        return None if row is None else int(row[0])

    # -- blocking ------------------------------------------------------------------------

    async def block(self, room_id: str, user_id: str) -> None:
        await self.db.execute(
            "block_room",
            "INSERT INTO blocked_rooms (room_id, user_id) VALUES ($1, $2)"
            " ON CONFLICT (room_id) DO NOTHING",
            room_id,
            user_id,
        )

    async def unblock(self, room_id: str) -> None:
        await self.db.execute(
            "unblock_room", "DELETE FROM blocked_rooms WHERE room_id = $1", room_id
        )

    async def blocked_by(self, room_id: str) -> str | None:
        """The admin who blocked the room, or None when it is not blocked."""
        value = await self.db.fetchval(
            "room_blocked_by", "SELECT user_id FROM blocked_rooms WHERE room_id = $1", room_id
        )
        return None if value is None else str(value)

    async def is_blocked(self, room_id: str) -> bool:
        return await self.blocked_by(room_id) is not None

    # -- forward extremities -----------------------------------------------------------

    async def forward_extremities(self, room_id: str) -> list[ForwardExtremity]:
        rows = await self.db.fetchall(
            "admin_forward_extremities",
            "SELECT f.event_id, e.state_group, e.depth, e.received_ts FROM forward_extremities f"
            " JOIN events e ON e.event_id = f.event_id WHERE f.room_id = $1"
            " ORDER BY e.depth DESC, e.stream_ordering DESC",
            room_id,
        )
        return [
            ForwardExtremity(r[0], None if r[1] is None else int(r[1]), int(r[2]), int(r[3]))
            for r in rows
        ]
