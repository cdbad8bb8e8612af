"""Invites across servers (s2s "Inviting to a room", ``PUT /v2/invite`` and the
deprecated ``PUT /v1/invite``), both ways.

Receiving (:meth:`InviteHandlers.on_invite`): the event must be a valid invite PDU of
the given room version (unsupported version: 400 ``M_INCOMPATIBLE_ROOM_VERSION``),
with the path's event ID and room, for a user ID of ours (with an account or not,
as Synapse: the spec has no 404 here), sent by a user of the asking server and
signed by it; the room's ACL must allow the asker (checked first, as Synapse). We add our signature
and answer the event. When we are not in the room, the invite is stored out-of-band
(an outlier membership with a stream position) with the ``invite_room_state`` as
its stripped state, so /sync shows it under ``rooms.invite``; when we are, it
arrives again over ``/send`` like any event.

Sending (:meth:`RemoteInviter.countersign`, ``MembershipService.remote_invite``): a
local user invites a remote one; the invite, built and authorized by the event
creator, goes to the invitee's server with the room's stripped state (full PDUs, as
the room version formats them), over v1 when the server does not know v2 and the
room's events have the v1 format (as Synapse); the answer must be the same event
(an invalid PDU: 400 ``M_BAD_JSON``) signed by that server, whose signature is
added before the event is persisted and sent to the room's servers.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

from aiohttp import web

from federation.client import FederationClient
from federation.errors import FederationError
from federation.event_pipeline import FederationEventPipeline
from federation.joins import MEMBER, incompatible_room_version
from federation.keyring import KeyRing
from federation.pdu_checks import CheckedPdu, DroppedPdu, check_signatures_and_hashes, parse_pdu
from federation.remote_join import client_stripped_state, persist_out_of_band
from federation.server_acl import ServerAclChecker
from homeserver.clock import Clock
from homeserver.errors import BadJson, Forbidden, MatrixError
from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    Event,
    EventIdFormat,
    SignatureError,
    SigningKey,
    server_name_of,
    sign_event_pdu,
)
from homeserver.http.body import get_dict, get_list, get_str, json_object
from homeserver.http.middleware import compact_dumps
from homeserver.rooms.lanes import RoomLanes
from homeserver.rooms.membership import STRIPPED_STATE_KEYS
from homeserver.rooms.persister import EventPersister
from storage.state import StateMap
from storage.stores import Stores

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


class InviteHandlers:
    """``PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`` (s2s: sendInviteV2)."""

    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        stores: Stores,
        acl: ServerAclChecker,
        keyring: KeyRing,
        pipeline: FederationEventPipeline,
        persister: EventPersister,
        lanes: RoomLanes,
    ) -> None:
        self._server_name = server_name
        self._signing_key = signing_key
        self._stores = stores
        self._acl = acl
        self._keyring = keyring
        self._pipeline = pipeline
        self._persister = persister
        self._lanes = lanes

    async def on_invite(self, origin: str, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v2/invite/{roomId}/{eventId} (s2s: sendInviteV2)."""
        body = await json_object(request)
        version = get_str(body, "room_version")
        pdu = get_dict(body, "event")
        room_state = get_list(body, "invite_room_state", [])
        signed_pdu = await self._invite(origin, request, version, pdu, room_state)
        return web.json_response({"event": signed_pdu}, dumps=compact_dumps)

    async def on_invite_v1(self, origin: str, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/invite/{roomId}/{eventId} (s2s: sendInviteV1):
        the body is the event itself (the room's stripped state in its
        ``unsigned.invite_room_state``) and names no room version. The v1 API serves
        rooms of versions 1 and 2, whose event format is the same: the version is the
        one the stripped create event names when it is 2, else 1 (Synapse always
        takes 1; the room row then keeps the right version for a later join).
        Answered ``[200, {"event": ...}]``."""
        pdu = await json_object(request)
        unsigned = pdu.get("unsigned")
        room_state = unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
        room_state = room_state if isinstance(room_state, list) else []
        signed_pdu = await self._invite(
            origin, request, _v1_room_version(room_state), pdu, room_state
        )
        return web.json_response([200, {"event": signed_pdu}], dumps=compact_dumps)

    async def _invite(
        self,
        origin: str,
        request: web.Request,
        version: str,
        pdu: dict[str, Any],
        room_state: list[Any],
    ) -> dict[str, Any]:
        """Check, sign and (when we are not in the room) store an invite; the signed
        PDU."""
        room_id = request.match_info["roomId"]
        event_id = request.match_info["eventId"]
        rv = KNOWN_ROOM_VERSIONS.get(version)
        if rv is None:
            raise incompatible_room_version(version)
        # the room's ACL first: a banned server learns nothing more (as Synapse)
        await self._acl.check(origin, room_id)
        if await self._stores.room_admin.is_blocked(room_id):
            raise Forbidden("This room has been blocked on this server")
        parsed = parse_pdu(pdu, rv)
        if isinstance(parsed, DroppedPdu):
            raise BadJson(parsed.reason)
        event = parsed
        if event.event_id != event_id or event.room_id != room_id:
            raise BadJson("The event does not match the event ID and room in the path")
        if event.type != MEMBER or event.membership != "invite" or not event.state_key:
            raise BadJson("Not an invite membership event")
        if server_name_of(event.state_key) != self._server_name:
            raise BadJson(f"{event.state_key} is not a user of this server")
        if server_name_of(event.sender) != origin:
            raise Forbidden(f"{event.sender} does not belong to {origin}")
        [checked] = await check_signatures_and_hashes(self._keyring, [event])
        if not isinstance(checked, CheckedPdu) or checked.redacted_for_hash:
            raise Forbidden("The invite is not validly signed")
        signed_pdu = copy.deepcopy(pdu)
        sign_event_pdu(signed_pdu, rv, self._server_name, self._signing_key)
        signed = Event.from_pdu(signed_pdu, rv, event_id=event.event_id)
        if not await self._resident(room_id):
            await self._pipeline.ensure_room(room_id, rv, "")
            await persist_out_of_band(
                self._stores,
                self._persister,
                self._lanes,
                signed,
                client_stripped_state(room_state),
            )
        return signed_pdu

    async def _resident(self, room_id: str) -> bool:
        return self._server_name in await self._stores.state.joined_servers(room_id)


class RemoteInviter:
    """Has the invitee's server sign an invite of one of our users."""

    def __init__(
        self, stores: Stores, client: FederationClient, keyring: KeyRing, clock: Clock
    ) -> None:
        self._stores = stores
        self._client = client
        self._keyring = keyring
        self._clock = clock

    async def countersign(self, event: Event, state: StateMap) -> Event:
        """The ``MembershipService.remote_invite`` hook (see the module doc)."""
        assert event.state_key is not None
        destination = server_name_of(event.state_key)
        # the room's stripped state and the inviter's own membership (as for local invites)
        keys = [*STRIPPED_STATE_KEYS, ("m.room.member", event.sender)]
        wanted = [state[k] for k in keys if k in state]
        events = await self._stores.events.get_events(wanted)
        body = {
            "room_version": event.room_version.identifier,
            "event": dict(event.pdu),
            "invite_room_state": [dict(events[e].event.pdu) for e in wanted if e in events],
        }
        try:
            answer = await self._send_invite(destination, event, body)
        except FederationError as exc:
            if exc.status in (400, 403, 404) and exc.errcode:
                raise MatrixError(exc.status, exc.errcode, exc.message) from None
            raise exc.to_matrix_error() from None
        returned = answer.get("event") if isinstance(answer, dict) else None
        if not isinstance(returned, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{destination} did not return the invite")
        theirs = parse_pdu(returned, event.room_version)
        if isinstance(theirs, DroppedPdu):
            # e.g. a float or an out-of-range integer: not valid canonical JSON
            raise BadJson(f"{destination} returned an invalid event: {theirs.reason}")
        if theirs.signing_bytes() != event.signing_bytes():
            raise MatrixError(502, "M_UNKNOWN", f"{destination} returned another event")
        signatures = theirs.signatures.get(destination)
        if not isinstance(signatures, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{destination} did not sign the invite")
        obj = dict(event.redacted_pdu())
        obj["signatures"] = {destination: signatures}
        try:
            await self._keyring.verify_json_for_server(
                obj,
                destination,
                event.origin_server_ts if event.room_version.enforce_key_validity else 0,
            )
        except SignatureError:
            raise MatrixError(502, "M_UNKNOWN", f"{destination}'s signature is invalid") from None
        pdu = copy.deepcopy(dict(event.pdu))
        pdu.setdefault("signatures", {})[destination] = dict(signatures)
        return Event(pdu, event.room_version, event_id=event.event_id)

    async def _send_invite(self, destination: str, event: Event, body: dict[str, Any]) -> Any:
        """``PUT /v2/invite``; when the invitee's server does not know it and the room's
        events have the v1/v2 format, ``PUT /v1/invite`` (the event with the stripped
        state in ``unsigned``, answered ``[200, {"event": ...}]``), as Synapse. Other
        room versions cannot go over v1: 400 ``M_UNSUPPORTED_ROOM_VERSION``."""
        tail = f"invite/{_q(event.room_id)}/{_q(event.event_id)}"
        try:
            return await self._client.put_json(destination, f"{V2}/{tail}", body)
        except FederationError as exc:
            if not exc.unknown_endpoint:
                raise
        if event.room_version.event_id_format is not EventIdFormat.V1:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"{destination} does not support this room version",
            )
        pdu = copy.deepcopy(dict(event.pdu))
        unsigned = pdu.get("unsigned")
        pdu["unsigned"] = {
            **(unsigned if isinstance(unsigned, dict) else {}),
            "invite_room_state": body["invite_room_state"],
        }
        answer = await self._client.put_json(destination, f"{V1}/{tail}", pdu)
        if isinstance(answer, list) and len(answer) == 2 and isinstance(answer[1], dict):
            return answer[1]
        raise MatrixError(502, "M_UNKNOWN", f"{destination} gave a v1 answer not [200, {{...}}]")


def _v1_room_version(room_state: list[Any]) -> str:
    """The room version of a v1 invite: "2" when its stripped create event says so,
    else "1"."""
    for entry in room_state:
        if isinstance(entry, dict) and entry.get("type") == "m.room.create":
            content = entry.get("content")
            if isinstance(content, dict) and content.get("room_version") == "2":
                return "2"
    return "1"


def _q(value: str) -> str:
    return quote(value, safe="")
