"""What the message retention purge jobs read: the rooms and their current
``m.room.retention`` state events (the policies themselves are read from the events'
content, see ``homeserver/retention``)."""

from __future__ import annotations

from storage.database import Database

RETENTION = "m.room.retention"


class RetentionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def policy_events(self) -> dict[str, str]:
        """Room ID -> event ID of the room's current ``m.room.retention`` state event."""
        rows = await self.db.fetchall(
            "retention_policy_events",
            "SELECT room_id, event_id FROM current_state WHERE type = $1 AND state_key = ''",
            RETENTION,
        )
        return {room_id: event_id for room_id, event_id in rows}

    async def rooms(self) -> list[str]:
        """Every room with a current state (the rooms a default policy applies to)."""
        rows = await self.db.fetchall(
            "retention_rooms", "SELECT DISTINCT room_id FROM current_state"
        )
        return [r[0] for r in rows]
