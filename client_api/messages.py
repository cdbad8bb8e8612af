"""Reading room history: /messages, /context and /timestamp_to_event.

Client-server API "Getting events for a room" and "Retrieving events around an
event". The rules (tokens, visibility, filtering) live in ``homeserver.rooms.history``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import InvalidParam, MissingParam
from homeserver.http.body import query_int
from homeserver.sync.filters import RoomEventFilter, parse_room_event_filter

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000


def direction(request: web.Request, *, default: str | None = None) -> bool:
    """The ``dir`` query parameter: True for ``b`` (backwards)."""
    value = request.query.get("dir", default)
    if value is None:
        raise MissingParam("Missing query parameter: dir")
    if value not in ("b", "f"):
        raise InvalidParam("Query parameter 'dir' must be 'b' or 'f'")
    return value == "b"


async def room_event_filter(
    ctx: ClientContext, user_id: str, request: web.Request
) -> RoomEventFilter | None:
    """The ``filter`` query parameter: a RoomEventFilter as JSON, or a stored filter's ID."""
    raw = request.query.get("filter")
    if raw is None or raw == "":
        return None
    if raw.lstrip().startswith("{"):
        try:
            value: Any = json.loads(raw)
        except ValueError as exc:
            raise InvalidParam("Query parameter 'filter' is not valid JSON") from exc
        return parse_room_event_filter(value)
    if raw.isdigit():
        stored = await ctx.sync.get_filter(user_id, raw)
        if stored is not None:
            room = stored.get("room")
            timeline = room.get("timeline", {}) if isinstance(room, dict) else {}
            return parse_room_event_filter(timeline, "room.timeline.")
    raise InvalidParam("Query parameter 'filter' must be a JSON RoomEventFilter or a filter ID")


class MessageHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def get_messages(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/messages (getRoomEvents)."""
        requester = await self._ctx.requester(request)
        room_id = request.match_info["roomId"]
        backwards = direction(request)
        limit = query_int(request, "limit", DEFAULT_LIMIT, maximum=MAX_LIMIT)
        event_filter = await room_event_filter(self._ctx, requester.user_id, request)
        page = await self._ctx.history.paginate(
            requester.user_id,
            room_id,
            backwards=backwards,
            from_token=request.query.get("from") or None,
            to_token=request.query.get("to") or None,
            limit=limit,
            event_filter=event_filter,
        )
        serializer = self._ctx.serializer
        body: dict[str, Any] = {
            "chunk": await serializer.serialize(
                page.chunk, user_id=requester.user_id, device_id=requester.device_id
            ),
            "start": page.start,
        }
        if page.end is not None:
            body["end"] = page.end
        if page.state:
            body["state"] = await serializer.serialize(
                page.state, user_id=requester.user_id, device_id=requester.device_id
            )
        return json_response(body)

    async def get_context(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId} (getEventContext)."""
        requester = await self._ctx.requester(request)
        room_id = request.match_info["roomId"]
        limit = query_int(request, "limit", DEFAULT_LIMIT, maximum=MAX_LIMIT)
        event_filter = await room_event_filter(self._ctx, requester.user_id, request)
        result = await self._ctx.history.context(
            requester.user_id,
            room_id,
            request.match_info["eventId"],
            limit=limit,
            event_filter=event_filter,
        )
        events = [*result.before, result.event, *result.after]
        serialized = await self._ctx.serializer.serialize(
            events, user_id=requester.user_id, device_id=requester.device_id
        )
        n_before = len(result.before)
        state = await self._ctx.serializer.serialize(
            result.state, user_id=requester.user_id, device_id=requester.device_id
        )
        return json_response(
            {
                "event": serialized[n_before],
                "events_before": serialized[:n_before],
                "events_after": serialized[n_before + 1 :],
                "start": result.start,
                "end": result.end,
                "state": state,
            }
        )

    async def timestamp_to_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event (getEventByTimestamp)."""
        requester = await self._ctx.requester(request)
        room_id = request.match_info["roomId"]
        if "ts" not in request.query:
            raise MissingParam("Missing query parameter: ts")
        ts = query_int(request, "ts", 0)
        backwards = direction(request)
        stored = await self._ctx.history.event_at_timestamp(
            requester.user_id, room_id, ts, forwards=not backwards
        )
        return json_response(
            {"event_id": stored.event_id, "origin_server_ts": stored.event.origin_server_ts}
        )
