"""Typing notifications (client-server API: Typing Notifications)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import Forbidden
from homeserver.http.body import get_bool, get_int, json_object
from homeserver.typing import DEFAULT_TIMEOUT_MS


class TypingHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def set_typing(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId} (operation setTyping)."""
        requester = await self._ctx.requester(request)
        if request.match_info["userId"] != requester.user_id:
            raise Forbidden("You cannot set the typing state of another user")
        body = await json_object(request)
        typing = get_bool(body, "typing")
        timeout = get_int(body, "timeout", DEFAULT_TIMEOUT_MS)
        await self._ctx.typing.set_typing(
            requester.user_id, request.match_info["roomId"], typing, timeout
        )
        # typing is activity, as a message or a receipt is (Synapse counts it too)
        await self._ctx.presence.bump_active(requester.user_id)
        return json_response({})
