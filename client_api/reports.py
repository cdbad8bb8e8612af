"""Reporting content (client-server API): events, rooms and users reported to this
server's admins.

- ``POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}``
- ``POST /_matrix/client/v3/rooms/{roomId}/report`` (spec v1.13)
- ``POST /_matrix/client/v3/users/{userId}/report`` (spec v1.14)

All three share one rate limit per user (``rc_reports``, Synapse's option).
"""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import get_str, json_object
from homeserver.ratelimit import RateLimit


class ReportHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        rc = ctx.config.rc_reports
        self._limit = RateLimit(rc.per_second, rc.burst_count)

    async def report_event(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/report/{eventId} (reportEvent)."""
        requester = await self._ctx.requester(request)
        self._ctx.limiter.check_requester("report", requester, self._limit)
        body = await json_object(request, allow_empty=True)
        await self._ctx.reports.report_event(
            requester.user_id, request.match_info["roomId"], request.match_info["eventId"], body
        )
        return json_response({})

    async def report_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/report (reportRoom)."""
        requester = await self._ctx.requester(request)
        self._ctx.limiter.check_requester("report", requester, self._limit)
        body = await json_object(request, allow_empty=True)
        reason = get_str(body, "reason")
        await self._ctx.reports.report_room(requester.user_id, request.match_info["roomId"], reason)
        return json_response({})

    async def report_user(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/users/{userId}/report (reportUser)."""
        requester = await self._ctx.requester(request)
        self._ctx.limiter.check_requester("report", requester, self._limit)
        body = await json_object(request, allow_empty=True)
        reason = get_str(body, "reason")
        await self._ctx.reports.report_user(requester.user_id, request.match_info["userId"], reason)
        return json_response({})
