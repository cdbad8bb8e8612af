"""Room admin endpoints in Synapse's shape (``docs/admin_api/rooms.md``), admins only:

- ``GET /_synapse/admin/v1/rooms``: the room list (``search_term``, ``order_by``,
  ``dir``, ``from``, ``limit``, ``public_rooms``, ``empty_rooms``);
- ``GET /_synapse/admin/v1/rooms/{roomId}``: details; ``.../members``, ``.../state``,
  ``.../messages``, ``.../timestamp_to_event``;
- ``PUT`` / ``GET /_synapse/admin/v1/rooms/{roomId}/block``;
- ``POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin``;
- ``GET`` / ``DELETE /_synapse/admin/v1/rooms/{roomId}/forward_extremities``;
- ``POST /_synapse/admin/v1/join/{roomIdOrAlias}`` (``room_membership.md``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.context import ClientContext
from client_api.messages import direction, room_event_filter
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.admin.rooms import RoomAdmin, RoomListQuery, check_room_id
from homeserver.errors import BadJson, InvalidParam, MissingParam
from homeserver.http.body import get_bool, get_str, json_object, query_bool, query_int

DEFAULT_LIMIT = 100
MESSAGES_DEFAULT_LIMIT = 10
MAX_MESSAGES_LIMIT = 1000


def _optional_bool(request: web.Request, key: str) -> bool | None:
    if key not in request.query:
        return None
    return query_bool(request, key, False)


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["roomId"]
    check_room_id(room_id)
    return room_id


class RoomAdminHandlers:
    def __init__(self, ctx: ClientContext, rooms: RoomAdmin) -> None:
        self._ctx = ctx
        self._rooms = rooms

    async def list_rooms(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms."""
        await require_admin(self._ctx, request)
        start = query_int(request, "from", 0, minimum=0)
        limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=0)
        dir_value = request.query.get("dir", "f")
        if dir_value not in ("f", "b"):
            raise InvalidParam("Unknown direction: " + dir_value)
        search_term = request.query.get("search_term")
        if search_term == "":
            raise InvalidParam("search_term cannot be empty")
        rooms = await self._rooms.list_rooms(
            RoomListQuery(
                order_by=request.query.get("order_by", "name"),
                backwards=dir_value == "b",
                search_term=search_term,
                public_rooms=_optional_bool(request, "public_rooms"),
                empty_rooms=_optional_bool(request, "empty_rooms"),
            )
        )
        page = rooms[start : start + limit]
        body: dict[str, Any] = {"rooms": page, "offset": start, "total_rooms": len(rooms)}
        if start + len(page) < len(rooms):
            body["next_batch"] = start + len(page)
        if start > 0:
            body["prev_batch"] = max(start - limit, 0)
        return json_response(body)

    async def room_details(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{roomId}."""
        await require_admin(self._ctx, request)
        return json_response(await self._rooms.details(_room_id(request)))

    async def room_members(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/members."""
        await require_admin(self._ctx, request)
        members = await self._rooms.members(_room_id(request))
        return json_response({"members": members, "total": len(members)})

    async def room_state(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/state."""
        requester = await require_admin(self._ctx, request)
        events = await self._rooms.state(_room_id(request))
        state = await self._ctx.serializer.serialize(
            events, user_id=requester.user_id, bundle_aggregations=False
        )
        return json_response({"state": state})

    async def room_messages(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/messages (as the client API's
        /messages, for any room)."""
        requester = await require_admin(self._ctx, request)
        room_id = _room_id(request)
        backwards = direction(request, default="f")
        limit = query_int(request, "limit", MESSAGES_DEFAULT_LIMIT, maximum=MAX_MESSAGES_LIMIT)
        event_filter = await room_event_filter(self._ctx, requester.user_id, request)
        page = await self._rooms.messages(
            room_id,
            backwards=backwards,
            from_token=request.query.get("from") or None,
            to_token=request.query.get("to") or None,
            limit=limit,
            event_filter=event_filter,
        )
        body: dict[str, Any] = {
            "chunk": await self._ctx.serializer.serialize(page.chunk, user_id=requester.user_id),
            "start": page.start,
        }
        if page.end is not None:
            body["end"] = page.end
        return json_response(body)

    async def timestamp_to_event(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/timestamp_to_event?ts=&dir=."""
        await require_admin(self._ctx, request)
        room_id = _room_id(request)
        if "ts" not in request.query:
            raise MissingParam("Missing query parameter: ts")
        ts = query_int(request, "ts", 0)
        backwards = direction(request, default="f")
        stored = await self._rooms.event_at_timestamp(room_id, ts, forwards=not backwards)
        return json_response(
            {"event_id": stored.event_id, "origin_server_ts": stored.event.origin_server_ts}
        )

    async def set_block(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/rooms/{roomId}/block."""
        requester = await require_admin(self._ctx, request)
        room_id = _room_id(request)
        body = await json_object(request)
        if "block" not in body:
            raise MissingParam("Missing required parameter: block")
        block = get_bool(body, "block")
        await self._rooms.set_blocked(requester.user_id, room_id, block)
        return json_response({"block": block})

    async def get_block(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/block."""
        await require_admin(self._ctx, request)
        blocked_by = await self._rooms.blocked_by(_room_id(request))
        if blocked_by is None:
            return json_response({"block": False})
        return json_response({"block": True, "user_id": blocked_by})

    async def make_room_admin(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin."""
        requester = await require_admin(self._ctx, request)
        body = await json_object(request, allow_empty=True)
        user_id = get_str(body, "user_id", requester.user_id)
        await self._rooms.make_room_admin(request.match_info["roomId"], user_id)
        return json_response({})

    async def get_forward_extremities(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities."""
        await require_admin(self._ctx, request)
        room_id = await self._rooms.resolve_room(request.match_info["roomId"])
        extremities = await self._rooms.forward_extremities(room_id)
        results = [
            {
                "event_id": e.event_id,
                "state_group": e.state_group,
                "depth": e.depth,
                "received_ts": e.received_ts,
            }
            for e in extremities
        ]
        return json_response({"count": len(results), "results": results})

    async def delete_forward_extremities(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities."""
        await require_admin(self._ctx, request)
        room_id = await self._rooms.resolve_room(request.match_info["roomId"])
        deleted = await self._rooms.delete_forward_extremities(room_id)
        return json_response({"deleted": deleted})

    async def force_join(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/join/{roomIdOrAlias}."""
        requester = await require_admin(self._ctx, request)
        body = await json_object(request)
        if "user_id" not in body:
            raise MissingParam("Missing required parameter: user_id")
        user_id = get_str(body, "user_id")
        if not user_id:
            raise BadJson("user_id must be a user ID")
        room_id = await self._rooms.force_join(
            requester.user_id, request.match_info["roomIdOrAlias"], user_id
        )
        return json_response({"room_id": room_id})


def room_admin_routes(ctx: ClientContext, rooms: RoomAdmin) -> list[Route]:
    handlers = RoomAdminHandlers(ctx, rooms)
    base = "/_synapse/admin/v1/rooms"
    room = f"{base}/{{roomId}}"
    return [
        ("GET", base, handlers.list_rooms),
        ("GET", room, handlers.room_details),
        ("GET", f"{room}/members", handlers.room_members),
        ("GET", f"{room}/state", handlers.room_state),
        ("GET", f"{room}/messages", handlers.room_messages),
        ("GET", f"{room}/timestamp_to_event", handlers.timestamp_to_event),
        ("PUT", f"{room}/block", handlers.set_block),
        ("GET", f"{room}/block", handlers.get_block),
        ("POST", f"{room}/make_room_admin", handlers.make_room_admin),
        ("GET", f"{room}/forward_extremities", handlers.get_forward_extremities),
        ("DELETE", f"{room}/forward_extremities", handlers.delete_forward_extremities),
        ("POST", "/_synapse/admin/v1/join/{roomIdOrAlias}", handlers.force_join),
    ]
