"""Room deletion and history purge endpoints in Synapse's shape, admins only:

- ``DELETE /_synapse/admin/v1/rooms/{roomId}``: shut down (and purge) the room,
  answering when done;
- ``DELETE /_synapse/admin/v2/rooms/{roomId}``: the same in the background, answered
  with a ``delete_id``; its status at ``GET /_synapse/admin/v2/rooms/{roomId}/delete_status``
  and ``GET /_synapse/admin/v2/rooms/delete_status/{deleteId}``;
- ``POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]`` (``purge_up_to_ts`` or
  ``purge_up_to_event_id``, ``delete_local_events``), answered with a ``purge_id``;
  its status at ``GET /_synapse/admin/v1/purge_history_status/{purgeId}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.admin.purge import HistoryPurges
from homeserver.admin.room_deletion import (
    DEFAULT_MESSAGE,
    DEFAULT_ROOM_NAME,
    DeletionRequest,
    RoomDeletion,
)
from homeserver.admin.rooms import check_room_id
from homeserver.errors import BadJson, MatrixError
from homeserver.events import is_valid_user_id
from homeserver.http.body import get_bool, get_str, json_object


def _deletion_request(body: dict[str, Any]) -> DeletionRequest:
    new_room_user_id = get_str(body, "new_room_user_id", None)
    if new_room_user_id is not None and not is_valid_user_id(new_room_user_id):
        raise MatrixError(400, "M_INVALID_PARAM", "new_room_user_id is not a user ID")
    return DeletionRequest(
        new_room_user_id=new_room_user_id,
        room_name=get_str(body, "room_name", DEFAULT_ROOM_NAME),
        message=get_str(body, "message", DEFAULT_MESSAGE),
        block=get_bool(body, "block", False),
        purge=get_bool(body, "purge", True),
        force_purge=get_bool(body, "force_purge", False),
    )


class RoomDeletionHandlers:
    def __init__(self, ctx: ClientContext, deletion: RoomDeletion, purges: HistoryPurges) -> None:
        self._ctx = ctx
        self._deletion = deletion
        self._purges = purges

    async def delete_room_v1(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/rooms/{roomId}."""
        requester = await require_admin(self._ctx, request)
        room_id = request.match_info["roomId"]
        check_room_id(room_id)
        deletion = _deletion_request(await json_object(request))
        result = await self._deletion.delete_now(requester.user_id, room_id, deletion)
        return json_response(result.to_json())

    async def delete_room_v2(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v2/rooms/{roomId}."""
        requester = await require_admin(self._ctx, request)
        room_id = request.match_info["roomId"]
        check_room_id(room_id)
        deletion = _deletion_request(await json_object(request))
        delete_id = await self._deletion.start(requester.user_id, room_id, deletion)
        return json_response({"delete_id": delete_id})

    async def delete_status_of_room(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/rooms/{roomId}/delete_status."""
        await require_admin(self._ctx, request)
        room_id = request.match_info["roomId"]
        check_room_id(room_id)
        tasks = self._deletion.statuses_of_room(room_id)
        return json_response({"results": [t.to_json() for t in tasks]})

    async def delete_status(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/rooms/delete_status/{deleteId}."""
        await require_admin(self._ctx, request)
        return json_response(self._deletion.status(request.match_info["deleteId"]).to_json())

    async def purge_history(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]."""
        await require_admin(self._ctx, request)
        room_id = request.match_info["roomId"]
        check_room_id(room_id)
        body = await json_object(request, allow_empty=True)
        delete_local_events = bool(body.get("delete_local_events", False))
        event_id = request.match_info.get("eventId") or get_str(body, "purge_up_to_event_id", None)
        if event_id is not None:
            depth = await self._purges.depth_of_event(room_id, event_id)
        elif "purge_up_to_ts" in body:
            ts = body["purge_up_to_ts"]
            if type(ts) is not int:
                raise BadJson("purge_up_to_ts must be an int")
            depth = await self._purges.depth_at_timestamp(room_id, ts)
        else:
            raise BadJson("must specify purge_up_to_event_id or purge_up_to_ts")
        purge_id = self._purges.start(room_id, depth, delete_local_events=delete_local_events)
        return json_response({"purge_id": purge_id})

    async def purge_history_status(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/purge_history_status/{purgeId}."""
        await require_admin(self._ctx, request)
        return json_response(self._purges.status(request.match_info["purgeId"]).to_json())


def room_deletion_routes(
    ctx: ClientContext, deletion: RoomDeletion, purges: HistoryPurges
) -> list[Route]:
    handlers = RoomDeletionHandlers(ctx, deletion, purges)
    v1 = "/_synapse/admin/v1"
    v2 = "/_synapse/admin/v2"
    return [
        ("DELETE", f"{v1}/rooms/{{roomId}}", handlers.delete_room_v1),
        ("DELETE", f"{v2}/rooms/{{roomId}}", handlers.delete_room_v2),
        ("GET", f"{v2}/rooms/delete_status/{{deleteId}}", handlers.delete_status),
        ("GET", f"{v2}/rooms/{{roomId}}/delete_status", handlers.delete_status_of_room),
        ("POST", f"{v1}/purge_history/{{roomId}}", handlers.purge_history),
        ("POST", f"{v1}/purge_history/{{roomId}}/{{eventId}}", handlers.purge_history),
        ("GET", f"{v1}/purge_history_status/{{purgeId}}", handlers.purge_history_status),
    ]
