"""``POST /_matrix/client/v3/user_directory/search`` (client-server "User directory")."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import json_object
from homeserver.user_directory import parse_search_body


class UserDirectoryHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def search(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/user_directory/search."""
        requester = await self._ctx.requester(request)
        term, limit = parse_search_body(await json_object(request))
        return json_response(await self._ctx.user_directory.search(requester.user_id, term, limit))
