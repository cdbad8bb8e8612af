"""Rooms: creation, sending events, reading and writing state (client-server API)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import BadJson, Forbidden, NotFound
from homeserver.events import is_valid_user_id
from homeserver.http.body import get_bool, get_dict, get_list, get_str, get_str_list, json_object
from homeserver.ratelimit import RateLimit
from homeserver.rooms.creation import RoomCreationRequest
from homeserver.rooms.creator import TxnKey


def _creation_request(body: dict[str, Any]) -> RoomCreationRequest:
    visibility = get_str(body, "visibility", "private")
    if visibility not in ("public", "private"):
        raise BadJson("visibility must be 'public' or 'private'")
    invite = get_str_list(body, "invite", [])
    for user_id in invite:
        if not is_valid_user_id(user_id):
            raise BadJson(f"Invalid user ID in invite: {user_id}")
    initial_state = get_list(body, "initial_state", [])
    for entry in initial_state:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("type"), str)
            or not isinstance(entry.get("content"), dict)
            or not isinstance(entry.get("state_key", ""), str)
        ):
            raise BadJson("initial_state entries need a string type and an object content")
    get_list(body, "invite_3pid", [])
    return RoomCreationRequest(
        visibility=visibility,
        room_alias_name=get_str(body, "room_alias_name", None),
        name=get_str(body, "name", None),
        topic=get_str(body, "topic", None),
        invite=list(invite),
        room_version=get_str(body, "room_version", None),
        creation_content=get_dict(body, "creation_content", {}),
        initial_state=list(initial_state),
        preset=get_str(body, "preset", None),
        is_direct=get_bool(body, "is_direct", False),
        power_level_content_override=get_dict(body, "power_level_content_override", None),
    )


class RoomHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        rc = ctx.config.rc_message
        self._message_limit = RateLimit(rc.per_second, rc.burst_count)

    async def create_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/createRoom."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        room_id, _ = await self._ctx.room_creation.create_room(
            requester.user_id, _creation_request(body)
        )
        return json_response({"room_id": room_id})

    async def send_message(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}."""
        requester = await self._ctx.requester(request)
        content = await json_object(request, allow_empty=False)
        room_id = request.match_info["roomId"]
        self._ctx.limiter.check("message", requester.user_id, self._message_limit)
        stored = await self._ctx.creator.send(
            room_id,
            request.match_info["eventType"],
            requester.user_id,
            content,
            txn=TxnKey(requester.device_id, request.match_info["txnId"]),
        )
        return json_response({"event_id": stored.event_id})

    async def set_state(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}."""
        requester = await self._ctx.requester(request)
        content = await json_object(request)
        room_id = request.match_info["roomId"]
        event_type = request.match_info["eventType"]
        state_key = request.match_info.get("stateKey", "")
        if event_type == "m.room.member":
            raise Forbidden("Use the membership endpoints to change membership")
        stored = await self._ctx.creator.send(
            room_id, event_type, requester.user_id, content, state_key=state_key
        )
        return json_response({"event_id": stored.event_id})

    async def _visible_state(self, user_id: str, room_id: str) -> dict[tuple[str, str], str]:
        """The state a user may read: current if joined, else as of when they left."""
        state = await self._ctx.stores.state.get_current_state(room_id)
        member_id = state.get(("m.room.member", user_id))
        if member_id is None:
            raise Forbidden("You are not a member of this room")
        member = await self._ctx.stores.events.get_event(member_id)
        if member is None:
            raise Forbidden("You are not a member of this room")
        if member.event.membership == "join":
            return state
        if member.event.membership in ("leave", "ban") and member.state_group is not None:
            return dict(await self._ctx.stores.state.get_state(member.state_group))
        raise Forbidden("You are not a member of this room")

    async def get_state(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/state."""
        requester = await self._ctx.requester(request)
        room_id = request.match_info["roomId"]
        if not await self._ctx.stores.rooms.room_exists(room_id):
            raise Forbidden("You are not a member of this room")
        state = await self._visible_state(requester.user_id, room_id)
        events = await self._ctx.stores.events.get_events(list(state.values()))
        ordered = [events[e] for e in state.values() if e in events]
        return json_response(await self._ctx.serializer.serialize(ordered))

    async def get_state_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}."""
        requester = await self._ctx.requester(request)
        room_id = request.match_info["roomId"]
        if not await self._ctx.stores.rooms.room_exists(room_id):
            raise Forbidden("You are not a member of this room")
        state = await self._visible_state(requester.user_id, room_id)
        key = (request.match_info["eventType"], request.match_info.get("stateKey", ""))
        event_id = state.get(key)
        stored = await self._ctx.stores.events.get_event(event_id) if event_id else None
        if stored is None:
            raise NotFound("Event not found")
        if request.query.get("format") == "event":
            return json_response(await self._ctx.serializer.serialize_one(stored))
        serialized = await self._ctx.serializer.serialize_one(stored)
        return json_response(serialized["content"])
