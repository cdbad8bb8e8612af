"""Spaces and room previews: ``GET /_matrix/client/v1/rooms/{roomId}/hierarchy`` and
``GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`` (authentication optional)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext, access_token_of
from client_api.versions import json_response
from homeserver.errors import InvalidParam
from homeserver.http.body import query_bool, query_int


class SpaceHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def hierarchy(self, request: web.Request) -> web.Response:
        requester = await self._ctx.requester(request)
        query = request.query
        body = await self._ctx.spaces.hierarchy(
            requester.user_id,
            request.match_info["roomId"],
            suggested_only=query_bool(request, "suggested_only", False),
            max_depth=query_int(request, "max_depth", 0) if "max_depth" in query else None,
            limit=query_int(request, "limit", 0, minimum=1) if "limit" in query else None,
            from_token=query.get("from"),
        )
        return json_response(body)

    async def room_summary(self, request: web.Request) -> web.Response:
        user_id = None
        if access_token_of(request) is not None:
            user_id = (await self._ctx.requester(request)).user_id
        target = request.match_info["roomIdOrAlias"]
        via = request.query.getall("via", [])
        if target.startswith("#"):
            room_id, servers = await self._ctx.directory.resolve_alias(target)
            via = [*via, *servers]
        elif target.startswith("!"):
            room_id = target
        else:
            raise InvalidParam(f"{target} is not a room ID or alias")
        return json_response(await self._ctx.spaces.room_summary(user_id, room_id, via))
