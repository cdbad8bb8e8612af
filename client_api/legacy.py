"""The legacy client API: the ``/events`` stream, ``/events/{eventId}``, ``/initialSync``
and ``/rooms/{roomId}/initialSync`` (client-server API r0, deprecated but still
documented; ``peekEvents`` and ``roomInitialSync`` preview world-readable rooms).
The rules live in ``homeserver.legacy``."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.auth import require_not_guest
from homeserver.http.body import query_bool, query_int
from homeserver.legacy import StreamRequest
from homeserver.streams import SyncToken

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# Without a timeout the stream waits this long for news, as Synapse does.
DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 5 * 60 * 1000


def _limit(request: web.Request) -> int:
    return query_int(request, "limit", DEFAULT_LIMIT, maximum=MAX_LIMIT)


class LegacyHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def get_events(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/events (operations getEvents and peekEvents)."""
        requester = await self._ctx.requester(request)
        raw_from = request.query.get("from")
        body = await self._ctx.legacy.events.get_stream(
            StreamRequest(
                user_id=requester.user_id,
                device_id=requester.device_id,
                is_guest=requester.is_guest,
                from_token=SyncToken.parse(raw_from) if raw_from else None,
                timeout_ms=query_int(
                    request, "timeout", DEFAULT_TIMEOUT_MS, maximum=MAX_TIMEOUT_MS
                ),
                limit=_limit(request) or DEFAULT_LIMIT,
                room_id=request.query.get("room_id") or None,
            )
        )
        return json_response(body)

    async def get_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/events/{eventId} (operation getOneEvent)."""
        requester = await self._ctx.requester(request)
        require_not_guest(requester)
        event = await self._ctx.legacy.events.get_event(
            requester.user_id, requester.device_id, request.match_info["eventId"]
        )
        return json_response(event)

    async def initial_sync(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/initialSync (operation initialSync)."""
        requester = await self._ctx.requester(request)
        require_not_guest(requester)
        body = await self._ctx.legacy.initial_sync.snapshot_all_rooms(
            requester.user_id,
            requester.device_id,
            limit=_limit(request),
            archived=query_bool(request, "archived", False),
        )
        return json_response(body)

    async def room_initial_sync(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/initialSync (operation roomInitialSync)."""
        requester = await self._ctx.requester(request)
        body = await self._ctx.legacy.initial_sync.room_initial_sync(
            requester.user_id,
            requester.device_id,
            request.match_info["roomId"],
            limit=_limit(request),
        )
        return json_response(body)
