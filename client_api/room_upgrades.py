"""Room upgrades (client-server API: "Room Upgrades", room_upgrades.yaml)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import get_str, get_str_list, json_object
from homeserver.ratelimit import RateLimit


class RoomUpgradeHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        rc = ctx.config.rc_room_creation
        # an upgrade makes a room: it spends from the room creation bucket (as Synapse)
        self._creation_limit = RateLimit(rc.per_second, rc.burst_count)

    async def upgrade_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/upgrade (upgradeRoom)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        new_version = get_str(body, "new_version")
        additional_creators = get_str_list(body, "additional_creators", [])
        self._ctx.limiter.check_requester("room_creation", requester, self._creation_limit)
        new_room_id = await self._ctx.room_upgrades.upgrade(
            requester.user_id,
            request.match_info["roomId"],
            new_version,
            list(additional_creators),
        )
        return json_response({"replacement_room": new_room_id})
