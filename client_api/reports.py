"""Reporting content (client-server API): events, rooms and users reported to this
server's admins.

- ``POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}``
- ``POST /_matrix/client/v3/rooms/{roomId}/report`` (spec v1.13)
- ``POST /_matrix/client/v3/users/{userId}/report`` (spec v1.14)
"""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import get_str, json_object


class ReportHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def report_event(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/report/{eventId} (reportEvent)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        await self._ctx.reports.report_event(
            requester.user_id, request.match_info["roomId"], request.match_info["eventId"], body
        )
        return json_response({})

    async def report_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/report (reportRoom)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        reason = get_str(body, "reason")
        await self._ctx.reports.report_room(requester.user_id, request.match_info["roomId"], reason)
        return json_response({})

    async def report_user(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/users/{userId}/report (reportUser)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        reason = get_str(body, "reason")
        await self._ctx.reports.report_user(requester.user_id, request.match_info["userId"], reason)
        return json_response({})
