"""Rooms: creation, sending events, reading and writing state (client-server API)."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from aiohttp import web

from client_api.consent import require_consent
from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.auth import Requester, require_not_suspended
from homeserver.delayed_events.service import DELAY_PARAM
from homeserver.errors import BadJson, InvalidParam, NotFound
from homeserver.events import is_valid_user_id
from homeserver.http.body import (
    get_bool,
    get_dict,
    get_list,
    get_str,
    get_str_list,
    json_object,
    query_int,
)
from homeserver.ratelimit import RateLimit
from homeserver.rooms.creation import RoomCreationRequest
from homeserver.rooms.creator import TxnKey
from homeserver.rooms.member_lists import MEMBERSHIPS
from homeserver.rooms.third_party_invites import ThirdPartyId

# The largest integer canonical JSON allows (an event's origin_server_ts included).
MAX_TS = 2**53 - 1


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


def _objects(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = get_list(body, key, [])
    if not all(isinstance(entry, dict) for entry in entries):
        raise BadJson(f"{key} must be a list of objects")
    return entries


def _txn_of(request: web.Request, device_id: str) -> TxnKey | None:
    """The client transaction of a PUT; None for the legacy POST forms."""
    txn_id = request.match_info.get("txnId")
    return None if txn_id is None else TxnKey(device_id, txn_id)


def _delay_of(request: web.Request) -> int | None:
    """The MSC4140 ``org.matrix.msc4140.delay`` query parameter (milliseconds), or
    None to send at once. 400 M_INVALID_PARAM unless a non-negative integer."""
    if DELAY_PARAM not in request.query:
        return None
    return query_int(request, DELAY_PARAM, 0)


def _appservice_ts(request: web.Request, requester: Requester) -> int | None:
    """The ``ts`` query parameter: the event's origin_server_ts when an application
    service sends (it bridges a message made earlier); ignored for anyone else, as
    Synapse. 400 M_INVALID_PARAM unless a non-negative integer."""
    raw = request.query.get("ts")
    if raw is None or requester.app_service is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise InvalidParam("ts must be a non-negative integer")
    ts = int(raw)
    if ts > MAX_TS:
        raise InvalidParam("ts is too large")
    return ts


def fake_event_id() -> str:
    """What a shadow-banned user is told their event got (as Synapse: a random ID of
    an event that was never made)."""
    return "$" + secrets.token_urlsafe(32)


class RoomHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        rc = ctx.config.rc_message
        self._message_limit = RateLimit(rc.per_second, rc.burst_count)
        rc = ctx.config.rc_room_creation
        self._creation_limit = RateLimit(rc.per_second, rc.burst_count)

    def _message_limit_of(self, requester: Requester) -> RateLimit:
        """rc_message, or the user's own limit set through the admin API (0/0: none)."""
        override = requester.message_limit_override
        if override is None:
            return self._message_limit
        return RateLimit(override[0], override[1])

    async def create_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/createRoom."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        require_not_suspended(requester, "Creating rooms")
        await require_consent(self._ctx, requester)
        self._ctx.limiter.check_requester("room_creation", requester, self._creation_limit)
        creation = _creation_request(body)
        invite_3pid = [ThirdPartyId.parse(entry) for entry in _objects(body, "invite_3pid")]
        if requester.shadow_banned:
            # as Synapse: the room is made, but nobody is invited to it
            creation = dataclasses.replace(creation, invite=[])
            invite_3pid = []
        room_id, _ = await self._ctx.room_creation.create_room(requester.user_id, creation)
        for invitee in invite_3pid:
            await self._ctx.third_party_invites.invite(requester.user_id, room_id, invitee)
        return json_response({"room_id": room_id})

    async def send_message(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}, and the legacy
        POST without a transaction ID (each request is a new event, as in Synapse)."""
        requester = await self._ctx.requester(request)
        content = await json_object(request, allow_empty=False)
        room_id = request.match_info["roomId"]
        if request.match_info["eventType"] != "m.room.redaction":
            require_not_suspended(requester, "Sending messages")
        await require_consent(self._ctx, requester)
        if requester.shadow_banned:
            return json_response({"event_id": fake_event_id()})
        self._ctx.limiter.check_requester("message", requester, self._message_limit_of(requester))
        txn = _txn_of(request, requester.device_id)
        delay = _delay_of(request)
        if delay is not None:
            delay_id = await self._ctx.delayed_events.schedule(
                requester.user_id,
                requester.device_id,
                room_id,
                request.match_info["eventType"],
                None,
                content,
                delay,
                _appservice_ts(request, requester),
            )
            return json_response({"delay_id": delay_id})
        if request.match_info["eventType"] == "m.room.redaction":
            # Redactions through /send (spec v1.18): ``redacts`` is in the content.
            stored = await self._ctx.room_events.redact(
                requester.user_id,
                room_id,
                get_str(content, "redacts"),
                content=content,
                txn=txn,
                own_only=requester.suspended,
            )
            return json_response({"event_id": stored.event_id})
        stored = await self._ctx.creator.send(
            room_id,
            request.match_info["eventType"],
            requester.user_id,
            content,
            txn=txn,
            origin_server_ts=_appservice_ts(request, requester),
        )
        return json_response({"event_id": stored.event_id})

    async def set_state(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}."""
        requester = await self._ctx.requester(request)
        content = await json_object(request)
        room_id = request.match_info["roomId"]
        event_type = request.match_info["eventType"]
        state_key = request.match_info.get("stateKey", "")
        ts = _appservice_ts(request, requester)
        require_not_suspended(requester, "Sending state events")
        leaving = (
            event_type == "m.room.member"
            and state_key == requester.user_id
            and content.get("membership") == "leave"
        )
        if not leaving:  # (leaving is always allowed)
            await require_consent(self._ctx, requester)
        delay = _delay_of(request)
        if delay is not None:
            delay_id = await self._ctx.delayed_events.schedule(
                requester.user_id,
                requester.device_id,
                room_id,
                event_type,
                state_key,
                content,
                delay,
                ts,
            )
            return json_response({"delay_id": delay_id})
        if event_type == "m.room.member":
            if not is_valid_user_id(state_key):
                raise InvalidParam(f"Invalid user ID: {state_key}")
            if get_str(content, "membership") not in MEMBERSHIPS:
                raise BadJson("Unknown membership")
            if requester.shadow_banned and content["membership"] == "invite":
                return json_response({"event_id": fake_event_id()})
            stored = await self._ctx.membership.set_member_state(
                requester.user_id, room_id, state_key, content, origin_server_ts=ts
            )
            return json_response({"event_id": stored.event_id})
        if requester.shadow_banned:
            return json_response({"event_id": fake_event_id()})
        if event_type == "m.room.canonical_alias" and state_key == "":
            await self._ctx.directory.check_canonical_alias(room_id, content)
        stored = await self._ctx.creator.send(
            room_id,
            event_type,
            requester.user_id,
            content,
            state_key=state_key,
            origin_server_ts=ts,
        )
        return json_response({"event_id": stored.event_id})

    async def get_state(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/state."""
        requester = await self._ctx.requester(request)
        room_id = request.match_info["roomId"]
        events = await self._ctx.members.visible_state_events(requester.user_id, room_id)
        return json_response(await self._ctx.serializer.serialize(events))

    async def get_state_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}."""
        requester = await self._ctx.requester(request)
        room_id = request.match_info["roomId"]
        stored = await self._ctx.members.visible_state_event(
            requester.user_id,
            room_id,
            request.match_info["eventType"],
            request.match_info.get("stateKey", ""),
        )
        if stored is None:
            raise NotFound("Event not found")
        if request.query.get("format") == "event":
            return json_response(await self._ctx.serializer.serialize_one(stored))
        serialized = await self._ctx.serializer.serialize_one(stored)
        return json_response(serialized["content"])

    async def get_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}."""
        requester = await self._ctx.requester(request)
        stored = await self._ctx.room_events.get_event(
            requester.user_id, request.match_info["roomId"], request.match_info["eventId"]
        )
        return json_response(
            await self._ctx.serializer.serialize_one(
                stored, user_id=requester.user_id, device_id=requester.device_id
            )
        )

    async def redact(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}, and the legacy
        POST without a transaction ID."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        reason = get_str(body, "reason", None)
        event_id = request.match_info["eventId"]
        if not event_id.startswith("$"):
            raise InvalidParam(f"Invalid event ID: {event_id}")
        if requester.shadow_banned:
            return json_response({"event_id": fake_event_id()})
        self._ctx.limiter.check_requester("message", requester, self._message_limit_of(requester))
        content = dict(body)
        if reason is None:
            content.pop("reason", None)
        stored = await self._ctx.room_events.redact(
            requester.user_id,
            request.match_info["roomId"],
            event_id,
            content=content,
            txn=_txn_of(request, requester.device_id),
            own_only=requester.suspended,
        )
        return json_response({"event_id": stored.event_id})
