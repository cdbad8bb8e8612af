"""``POST /_matrix/client/v3/user/{userId}/openid/request_token`` (client-server
"OpenID"): a token the user hands to a third party to prove who they are."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import json_object


class OpenIdHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def request_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/user/{userId}/openid/request_token."""
        requester = await self._ctx.requester(request)
        await json_object(request, allow_empty=True)
        return json_response(
            await self._ctx.openid.request_token(requester.user_id, request.match_info["userId"])
        )
