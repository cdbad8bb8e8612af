"""Send-to-device messaging (client-server API: Send-to-Device messaging)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import get_dict, json_object


class ToDeviceHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def send_to_device(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId} (operation sendToDevice)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        messages = get_dict(body, "messages")
        await self._ctx.to_device.send(
            requester.user_id,
            requester.device_id or "",
            request.match_info["eventType"],
            request.match_info["txnId"],
            messages,
        )
        return json_response({})
