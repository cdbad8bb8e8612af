"""Room membership endpoints (client-server API: Room membership)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import BadJson, NotFound
from homeserver.events import InvalidIdentifier, RoomAlias, is_valid_user_id
from homeserver.http.body import get_str, json_object
from storage.events import StoredEvent


class MembershipHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def _resolve_room(self, room_id_or_alias: str) -> tuple[str, list[str]]:
        if room_id_or_alias.startswith("#"):
            try:
                RoomAlias.parse(room_id_or_alias)
            except InvalidIdentifier as exc:
                raise BadJson(f"Invalid room alias: {exc}") from exc
            found = await self._ctx.stores.rooms.get_alias(room_id_or_alias)
            if found is None:
                raise NotFound("Room alias not found")
            return found[0], found[1]
        if not room_id_or_alias.startswith("!"):
            raise BadJson("Expected a room ID or alias")
        return room_id_or_alias, []

    async def join(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/join/{roomIdOrAlias} and /rooms/{roomId}/join."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        target = request.match_info.get("roomIdOrAlias") or request.match_info["roomId"]
        room_id, servers = await self._resolve_room(target)
        servers += request.query.getall("via", []) + request.query.getall("server_name", [])
        result = await self._ctx.membership.join(
            requester.user_id, room_id, reason=get_str(body, "reason", None), servers=servers
        )
        joined = result.event.room_id if isinstance(result, StoredEvent) else result
        return json_response({"room_id": joined})

    async def _change(
        self, request: web.Request, membership: str, *, target_key: str | None
    ) -> web.Response:
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=target_key is None)
        room_id = request.match_info["roomId"]
        target = requester.user_id
        if target_key is not None:
            target = get_str(body, target_key)
            if not is_valid_user_id(target):
                raise BadJson(f"Invalid user ID: {target}")
        await self._ctx.membership.change(
            requester.user_id, room_id, target, membership, reason=get_str(body, "reason", None)
        )
        return json_response({})

    async def invite(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/invite."""
        return await self._change(request, "invite", target_key="user_id")

    async def leave(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/leave."""
        return await self._change(request, "leave", target_key=None)

    async def joined_rooms(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/joined_rooms."""
        requester = await self._ctx.requester(request)
        rooms = await self._ctx.stores.state.rooms_for_user(requester.user_id)
        return json_response({"joined_rooms": sorted(r for r, m in rooms.items() if m == "join")})
