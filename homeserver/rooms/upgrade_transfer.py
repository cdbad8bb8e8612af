"""What moves with a room when it is upgraded, on each server that knew the old room.

Client-server API, "Room Upgrades": "When a user joins the new room, the server
should automatically transfer/replicate some of the user's personalized settings such
as notifications, tags, etc." As in Synapse this happens once per server: on the
server that upgrades the room, right after the upgrade; on any other server, when it
first joins the replacement room over federation (its ``m.room.create`` names the old
room as ``predecessor``). Then, for every local user joined to the old room:

- the old room's tags are set on the new room too (``m.tag``);
- a direct chat stays one: the new room joins the old one in ``m.direct``;
- the user's push rules for the old room are copied for the new room;

and for the server: a room it published in its directory is published under the new
ID (the old one is taken out), and its aliases of the old room point at the new room.
"""

from __future__ import annotations

import logging
from typing import Any

from homeserver.account_data import AccountDataService
from homeserver.push.rules_service import PushRulesService
from storage.stores import Stores

logger = logging.getLogger(__name__)

DIRECT = "m.direct"


class UpgradeTransfer:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        account_data: AccountDataService,
        push_rules: PushRulesService,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._account_data = account_data
        self._push_rules = push_rules

    def _is_mine(self, user_id: str) -> bool:
        return user_id.partition(":")[2] == self._server_name

    async def transfer(self, old_room_id: str, new_room_id: str) -> None:
        """Bring this server's settings for ``old_room_id`` over to ``new_room_id``."""
        members = await self._stores.state.current_members(old_room_id)
        for user_id in sorted(u for u, m in members.items() if m == "join" and self._is_mine(u)):
            try:
                await self.copy_user_settings(user_id, old_room_id, new_room_id)
            except Exception:
                logger.exception(
                    "settings of %s not copied from %s to %s", user_id, old_room_id, new_room_id
                )
        if await self._stores.rooms.is_public(old_room_id):
            await self._stores.rooms.set_public(old_room_id, False)
            await self._stores.rooms.set_public(new_room_id, True)
        await self._stores.rooms.move_aliases(old_room_id, new_room_id)

    async def copy_user_settings(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        """One user's tags, direct-chat entry and push rules of the old room."""

        def add_direct(current: dict[str, Any] | None) -> dict[str, Any] | None:
            for other, rooms in (current or {}).items():
                if isinstance(rooms, list) and old_room_id in rooms:
                    if new_room_id in rooms:
                        return None
                    return {**(current or {}), other: [*rooms, new_room_id]}
            return None

        await self._account_data.update(user_id, None, DIRECT, add_direct)
        for tag, info in (await self._account_data.get_tags(user_id, old_room_id)).items():
            await self._account_data.set_tag(
                user_id, new_room_id, tag, info if isinstance(info, dict) else {}
            )
        await self._push_rules.copy_room_rules(user_id, old_room_id, new_room_id)

    async def after_remote_join(self, room_id: str) -> None:
        """``MembershipService.remote_join_hooks``: this server joined ``room_id``; if
        it replaces a room this server knows, bring the settings over."""
        state = await self._stores.state.get_current_state(room_id)
        create_id = state.get(("m.room.create", ""))
        create = await self._stores.events.get_event(create_id) if create_id else None
        predecessor = create.event.content.get("predecessor") if create is not None else None
        old_room_id = predecessor.get("room_id") if isinstance(predecessor, dict) else None
        if not isinstance(old_room_id, str) or old_room_id == room_id:
            return
        if not await self._stores.rooms.room_exists(old_room_id):
            return
        logger.info("joined %s, which replaces %s: moving settings over", room_id, old_room_id)
        await self.transfer(old_room_id, room_id)
