"""GET /_matrix/client/v3/voip/turnServer (client-server API, "Voice over IP")."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response


class VoipHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def turn_server(self, request: web.Request) -> web.Response:
        requester = await self._ctx.requester(request)
        return json_response(
            self._ctx.turn.credentials(requester.user_id, is_guest=requester.is_guest)
        )
