"""Filters (client-server API: "Filtering", POST/GET /user/{userId}/filter)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import Forbidden, NotFound
from homeserver.http.body import json_object


class FilterHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def define_filter(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/user/{userId}/filter (operation defineFilter)."""
        requester = await self._ctx.requester(request)
        if request.match_info["userId"] != requester.user_id:
            raise Forbidden("Cannot create filters for other users")
        body = await json_object(request)
        filter_id = await self._ctx.sync.add_filter(requester.user_id, body)
        return json_response({"filter_id": filter_id})

    async def get_filter(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/user/{userId}/filter/{filterId} (operation getFilter)."""
        requester = await self._ctx.requester(request)
        if request.match_info["userId"] != requester.user_id:
            raise Forbidden("Cannot get filters of other users")
        found = await self._ctx.sync.get_filter(requester.user_id, request.match_info["filterId"])
        if found is None:
            raise NotFound("No such filter")
        return json_response(found)
