"""Account data and room tags (client-server API: Client Config, Room Tagging)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.auth import Requester
from homeserver.errors import Forbidden, InvalidParam
from homeserver.http.body import json_object


class AccountDataHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def _own(self, request: web.Request) -> Requester:
        requester = await self._ctx.requester(request)
        if request.match_info["userId"] != requester.user_id:
            raise Forbidden("You cannot access the account data of another user")
        return requester

    @staticmethod
    def _room_id(request: web.Request) -> str | None:
        room_id = request.match_info.get("roomId")
        if room_id is not None and (not room_id.startswith("!") or len(room_id) < 2):
            raise InvalidParam(f"Invalid room ID: {room_id}")
        return room_id

    async def set_account_data(self, request: web.Request) -> web.Response:
        """PUT /user/{userId}/account_data/{type} (setAccountData) and
        PUT /user/{userId}/rooms/{roomId}/account_data/{type} (setAccountDataPerRoom)."""
        requester = await self._own(request)
        room_id = self._room_id(request)
        body = await json_object(request)
        await self._ctx.account_data.set_by_client(
            requester.user_id, room_id, request.match_info["type"], body
        )
        return json_response({})

    async def get_account_data(self, request: web.Request) -> web.Response:
        """GET /user/{userId}/account_data/{type} (getAccountData) and
        GET /user/{userId}/rooms/{roomId}/account_data/{type} (getAccountDataPerRoom)."""
        requester = await self._own(request)
        room_id = self._room_id(request)
        content = await self._ctx.account_data.get(
            requester.user_id, room_id, request.match_info["type"]
        )
        return json_response(content)

    async def get_tags(self, request: web.Request) -> web.Response:
        """GET /user/{userId}/rooms/{roomId}/tags (operation getRoomTags)."""
        requester = await self._own(request)
        room_id = self._room_id(request)
        assert room_id is not None
        tags = await self._ctx.account_data.get_tags(requester.user_id, room_id)
        return json_response({"tags": tags})

    async def set_tag(self, request: web.Request) -> web.Response:
        """PUT /user/{userId}/rooms/{roomId}/tags/{tag} (operation setRoomTag)."""
        requester = await self._own(request)
        room_id = self._room_id(request)
        assert room_id is not None
        body = await json_object(request)
        await self._ctx.account_data.set_tag(
            requester.user_id, room_id, request.match_info["tag"], body
        )
        return json_response({})

    async def delete_tag(self, request: web.Request) -> web.Response:
        """DELETE /user/{userId}/rooms/{roomId}/tags/{tag} (operation deleteRoomTag)."""
        requester = await self._own(request)
        room_id = self._room_id(request)
        assert room_id is not None
        await self._ctx.account_data.remove_tag(
            requester.user_id, room_id, request.match_info["tag"]
        )
        return json_response({})
