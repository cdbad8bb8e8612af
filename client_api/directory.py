"""Room aliases and the published room directory (client-server API: "Room aliases",
"Published room directory")."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import BadJson, InvalidParam
from homeserver.http.body import (
    get_bool,
    get_dict,
    get_int,
    get_list,
    get_str,
    json_object,
    query_bool,
    query_int,
)
from homeserver.rooms.directory import PublicRoomsQuery


class DirectoryHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def get_room_alias(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/directory/room/{roomAlias}."""
        room_id, servers = await self._ctx.directory.resolve_alias(request.match_info["roomAlias"])
        return json_response({"room_id": room_id, "servers": servers})

    async def set_room_alias(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/directory/room/{roomAlias}."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        room_id = get_str(body, "room_id")
        await self._ctx.directory.create_alias(
            requester.user_id,
            request.match_info["roomAlias"],
            room_id,
            app_service=requester.app_service,
        )
        return json_response({})

    async def delete_room_alias(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/directory/room/{roomAlias}."""
        requester = await self._ctx.requester(request)
        await self._ctx.directory.delete_alias(
            requester.user_id, request.match_info["roomAlias"], app_service=requester.app_service
        )
        return json_response({})

    async def get_local_aliases(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/aliases."""
        requester = await self._ctx.requester(request)
        aliases = await self._ctx.directory.local_aliases(
            requester.user_id, request.match_info["roomId"]
        )
        return json_response({"aliases": aliases})

    async def get_visibility(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/directory/list/room/{roomId}."""
        visibility = await self._ctx.directory.visibility(request.match_info["roomId"])
        return json_response({"visibility": visibility})

    async def set_visibility(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/directory/list/room/{roomId}."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        visibility = get_str(body, "visibility", "public")
        await self._ctx.directory.set_visibility(
            requester.user_id, request.match_info["roomId"], visibility
        )
        return json_response({})

    async def get_public_rooms(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/publicRooms (no token needed if the config allows)."""
        await self._authenticate_for_public_rooms(request)
        limit = query_int(request, "limit", -1, minimum=0) if "limit" in request.query else None
        include_all = query_bool(request, "include_all_networks", False)
        instance = request.query.get("third_party_instance_id")
        query = PublicRoomsQuery(
            limit=limit,
            since=request.query.get("since"),
            include_all_networks=include_all,
            third_party_instance_id=instance,
        )
        result = await self._ctx.directory.public_rooms(query, server=request.query.get("server"))
        return json_response(result)

    async def query_public_rooms(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/publicRooms."""
        await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        limit = get_int(body, "limit", None)
        if limit is not None and limit < 0:
            raise InvalidParam("limit must not be negative")
        since = get_str(body, "since", None)
        filter_ = get_dict(body, "filter", {})
        search_term = get_str(filter_, "generic_search_term", None)
        room_types = get_list(filter_, "room_types", None)
        if room_types is not None and not all(t is None or isinstance(t, str) for t in room_types):
            raise BadJson("'room_types' must be an array of strings or nulls")
        include_all = get_bool(body, "include_all_networks", False)
        instance = get_str(body, "third_party_instance_id", None)
        query = PublicRoomsQuery(
            limit=limit,
            since=since,
            search_term=search_term,
            room_types=room_types,
            include_all_networks=include_all,
            third_party_instance_id=instance,
        )
        result = await self._ctx.directory.public_rooms(query, server=request.query.get("server"))
        return json_response(result)

    async def _authenticate_for_public_rooms(self, request: web.Request) -> None:
        if not self._ctx.config.allow_public_rooms_without_auth:
            await self._ctx.requester(request)
