"""How a due delayed event is sent: as its owner would send it through the client
API (a membership through the membership rules, a canonical alias checked)."""

from __future__ import annotations

from typing import Any

from homeserver.rooms.creator import EventCreator
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.membership import MembershipService


class RoomEventSender:
    def __init__(
        self, creator: EventCreator, membership: MembershipService, directory: DirectoryService
    ) -> None:
        self._creator = creator
        self._membership = membership
        self._directory = directory

    async def __call__(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_type: str,
        state_key: str | None,
        content: dict[str, Any],
        origin_server_ts: int | None,
    ) -> None:
        if state_key is not None and event_type == "m.room.member":
            await self._membership.set_member_state(
                user_id, room_id, state_key, content, origin_server_ts=origin_server_ts
            )
            return
        if event_type == "m.room.canonical_alias" and state_key == "":
            await self._directory.check_canonical_alias(room_id, content)
        await self._creator.send(
            room_id,
            event_type,
            user_id,
            content,
            state_key=state_key,
            origin_server_ts=origin_server_ts,
        )
