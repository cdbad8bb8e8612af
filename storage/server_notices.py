"""Which room server notices reach each local user in."""

from __future__ import annotations

from storage.database import Database


class ServerNoticeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def room_of(self, user_id: str) -> str | None:
        value = await self.db.fetchval(
            "get_server_notice_room",
            "SELECT room_id FROM server_notice_rooms WHERE user_id = $1",
            user_id,
        )
        return None if value is None else str(value)

    async def set_room(self, user_id: str, room_id: str) -> None:
        await self.db.execute(
            "set_server_notice_room",
            "INSERT INTO server_notice_rooms (user_id, room_id) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET room_id = excluded.room_id",
            user_id,
            room_id,
        )
