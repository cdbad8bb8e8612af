"""Presence endpoints (client-server API: Presence)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import Forbidden, InvalidParam
from homeserver.http.body import get_str, json_object
from homeserver.presence import PRESENCE_STATES
from homeserver.ratelimit import RateLimit


class PresenceHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        rc = ctx.config.rc_presence
        self._limit = RateLimit(rc.per_second, rc.burst_count)

    async def set_presence(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/presence/{userId}/status (operation setPresence)."""
        requester = await self._ctx.requester(request)
        if request.match_info["userId"] != requester.user_id:
            raise Forbidden("You cannot set the presence state of another user")
        body = await json_object(request)
        presence = get_str(body, "presence")
        if presence not in PRESENCE_STATES:
            raise InvalidParam("presence must be one of " + ", ".join(PRESENCE_STATES))
        status_msg = get_str(body, "status_msg", None)
        self._ctx.limiter.check_requester("presence", requester, self._limit)
        await self._ctx.presence.set_state(requester.user_id, presence, status_msg)
        return json_response({})

    async def get_presence(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/presence/{userId}/status (operation getPresence)."""
        requester = await self._ctx.requester(request)
        content = await self._ctx.presence.get_visible(
            requester.user_id, request.match_info["userId"]
        )
        return json_response(content)
