"""The resident side of the membership handshakes: ``make_join`` / ``send_join``
(v2 and v1), ``make_leave`` / ``send_leave`` (v2 and v1) and ``make_knock`` /
``send_knock``. The v1 ``send_*`` endpoints (deprecated, still served as Synapse
does) answer as v2 but wrapped as ``[200, answer]``; v1 ``send_join`` answers the
whole state.

Spec: s2s "Joining Rooms", "Restricted rooms", "Knocking upon a room", "Leaving
Rooms (Rejecting Invites)".

``make_*`` answers a template built from our current state of the room (prev events
are our forward extremities, auth events chosen by the event core), after checking
the server ACL, that the user belongs to the asking server, that the asker supports
the room version (``ver``; 400 ``M_INCOMPATIBLE_ROOM_VERSION``) and that the
membership would be allowed now (403). For a restricted room, a local user who may
invite is named as ``join_authorised_via_users_server`` (403 when the user meets no
condition, 400 ``M_UNABLE_TO_AUTHORISE_JOIN`` when no local user can authorise).

``send_*`` checks the signed event (ID, room, type, membership, sender's server),
adds our signature when we are the authorising server of a restricted join, and
hands it to the inbound pipeline (signatures, hashes, auth against its auth events,
the state before it and the current state). Only an accepted event is answered with
200; it is then sent to the other servers in the room. ``send_join`` answers the
state before the join and its auth chain (with ``omit_members``, state without
membership events, ``members_omitted`` and ``servers_in_room``); ``send_knock`` the
stripped state of the room.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from aiohttp import web

from federation.event_pipeline import FederationEventPipeline
from federation.pdu_checks import DroppedPdu, parse_pdu
from federation.sender import FederationSender
from federation.server_acl import ServerAclChecker
from homeserver.clock import Clock
from homeserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, MissingParam, NotFound
from homeserver.events import (
    AuthError,
    Event,
    EventBuilder,
    RoomVersion,
    SigningKey,
    check_auth,
    is_valid_user_id,
    server_name_of,
    sign_event_pdu,
)
from homeserver.http.body import json_object, query_bool
from homeserver.http.middleware import compact_dumps
from homeserver.rooms.membership import STRIPPED_STATE_KEYS
from storage.events import StoredEvent
from storage.state import StateMap
from storage.stores import Stores

MAX_PREV_EVENTS = 10
MEMBER = "m.room.member"


class JoinAuthoriser(Protocol):
    """What restricted joins need of ``MembershipService``."""

    async def join_authoriser(self, user_id: str, room_id: str) -> str | None: ...


def incompatible_room_version(version: str) -> MatrixError:
    return MatrixError(
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
        f"Your homeserver does not support the features required to join this room"
        f" (room version {version})",
        extra={"room_version": version},
    )


def _server(user_id: str) -> str:
    return user_id.partition(":")[2]


class ResidentHandshakes:
    """Answers the ``make_*`` / ``send_*`` requests of joining, leaving and knocking
    servers; handlers take ``(origin, request)`` after X-Matrix auth."""

    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        stores: Stores,
        acl: ServerAclChecker,
        pipeline: FederationEventPipeline,
        sender: FederationSender,
        authoriser: JoinAuthoriser,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._signing_key = signing_key
        self._stores = stores
        self._acl = acl
        self._pipeline = pipeline
        self._sender = sender
        self._authoriser = authoriser
        self._clock = clock

    # -- handlers -----------------------------------------------------------------------

    async def on_make_join(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/make_join/{roomId}/{userId} (s2s: makeJoin)."""
        return await self._make(origin, request, "join", request.query.getall("ver", ["1"]))

    async def on_make_leave(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/make_leave/{roomId}/{userId} (s2s: makeLeave)."""
        return await self._make(origin, request, "leave", None)

    async def on_make_knock(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/make_knock/{roomId}/{userId} (s2s: makeKnock)."""
        versions = request.query.getall("ver", [])
        if not versions:
            raise MissingParam("Missing parameter: ver")
        return await self._make(origin, request, "knock", versions)

    async def on_send_join(self, origin: str, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v2/send_join/{roomId}/{eventId} (s2s: sendJoinV2)."""
        omit_members = query_bool(request, "omit_members", False)
        stored = await self._send(origin, request, "join")
        answer = await self._join_answer(stored, omit_members)
        return _json_bytes_response(answer)

    async def on_send_join_v1(self, origin: str, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/send_join/{roomId}/{eventId} (s2s: sendJoinV1):
        as v2 with the whole state, answered in the historical ``[200, {...}]`` shape."""
        stored = await self._send(origin, request, "join")
        answer = await self._join_answer(stored, False, v1=True)
        return _json_bytes_response(b"[200," + answer + b"]")

    async def on_send_leave_v1(self, origin: str, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId} (s2s: sendLeaveV1):
        as v2, answered ``[200, {}]``."""
        await self._send(origin, request, "leave")
        return web.json_response([200, {}], dumps=compact_dumps)

    async def on_send_leave(self, origin: str, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId} (s2s: sendLeaveV2)."""
        await self._send(origin, request, "leave")
        return web.json_response({}, dumps=compact_dumps)

    async def on_send_knock(self, origin: str, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId} (s2s: sendKnock)."""
        stored = await self._send(origin, request, "knock")
        state = await self._stores.state.get_current_state(stored.event.room_id)
        wanted = [state[k] for k in STRIPPED_STATE_KEYS if k in state]
        events = await self._stores.events.get_events(wanted)
        return web.json_response(
            {"knock_room_state": [dict(events[e].event.pdu) for e in wanted if e in events]},
            dumps=compact_dumps,
        )

    # -- make_* -------------------------------------------------------------------------

    async def _room(self, origin: str, room_id: str) -> RoomVersion:
        """The version of a room we are in (404 otherwise), after the ACL check."""
        rv = await self._pipeline.room_version(room_id)
        if rv is None:
            raise NotFound("Unknown room")
        await self._acl.check(origin, room_id)
        members = await self._stores.state.current_members(room_id)
        if not any(m == "join" and _server(u) == self._server_name for u, m in members.items()):
            raise NotFound("This server is not in the room")
        return rv

    async def _check_not_blocked(self, room_id: str, membership: str) -> None:
        """No one joins or knocks on a room a server admin blocked (admin API)."""
        if membership != "leave" and await self._stores.room_admin.is_blocked(room_id):
            raise Forbidden("This room has been blocked on this server")

    async def _make(
        self, origin: str, request: web.Request, membership: str, versions: list[str] | None
    ) -> web.Response:
        room_id = request.match_info["roomId"]
        user_id = request.match_info["userId"]
        if not is_valid_user_id(user_id):
            raise InvalidParam(f"Invalid user ID: {user_id}")
        if server_name_of(user_id) != origin:
            raise Forbidden(f"{user_id} does not belong to {origin}")
        rv = await self._room(origin, room_id)
        await self._check_not_blocked(room_id, membership)
        if versions is not None and rv.identifier not in versions:
            raise incompatible_room_version(rv.identifier)
        if membership == "knock" and not rv.knocking:
            raise incompatible_room_version(rv.identifier)
        content: dict[str, Any] = {"membership": membership}
        if membership == "join":
            authoriser = await self._authoriser.join_authoriser(user_id, room_id)
            if authoriser is not None:
                content["join_authorised_via_users_server"] = authoriser
        event = await self._template_event(rv, room_id, user_id, content)
        template = dict(event.pdu)
        for key in ("signatures", "hashes", "unsigned"):
            template.pop(key, None)
        return web.json_response(
            {"room_version": rv.identifier, "event": template}, dumps=compact_dumps
        )

    async def _template_event(
        self, rv: RoomVersion, room_id: str, user_id: str, content: dict[str, Any]
    ) -> Event:
        """The membership event as it would be built now, checked against the current
        state (403 when not allowed)."""
        state = await self._stores.state.get_current_state(room_id)
        builder = EventBuilder(rv, MEMBER, user_id, content, room_id=room_id, state_key=user_id)
        extremities = await self._stores.events.get_forward_extremities(room_id)
        prevs = await self._stores.events.get_events(extremities)
        chosen = sorted(prevs.values(), key=lambda s: s.depth, reverse=True)[:MAX_PREV_EVENTS]
        auth_types = builder.auth_types() | {("m.room.create", "")}
        event = builder.build(
            prev_event_ids=[s.event_id for s in chosen],
            auth_event_ids=[state[k] for k in sorted(builder.auth_types()) if k in state],
            depth=max((s.depth for s in chosen), default=0) + 1,
            server_name=self._server_name,
            signing_key=self._signing_key,
            origin_server_ts=self._clock.time_ms(),
        )
        wanted = {k: state[k] for k in auth_types if k in state}
        stored = await self._stores.events.get_events(list(wanted.values()))
        try:
            check_auth(event, {k: stored[e].event for k, e in wanted.items() if e in stored})
        except AuthError as exc:
            raise Forbidden(f"You may not {content['membership']} this room: {exc}") from None
        return event

    # -- send_* -------------------------------------------------------------------------

    async def _send(self, origin: str, request: web.Request, membership: str) -> StoredEvent:
        room_id = request.match_info["roomId"]
        event_id = request.match_info["eventId"]
        body = await json_object(request)
        rv = await self._room(origin, room_id)
        await self._check_not_blocked(room_id, membership)
        if not isinstance(body.get("signatures"), dict) or not isinstance(body.get("hashes"), dict):
            # unsigned or unhashed: it cannot be the origin's event (403, as Synapse
            # answers a signature check that fails)
            raise Forbidden("The event is not signed and hashed by its server")
        parsed = parse_pdu(body, rv)
        if isinstance(parsed, DroppedPdu):
            raise BadJson(parsed.reason)
        event = parsed
        if event.event_id != event_id:
            raise BadJson("The event ID does not match the event")
        if event.room_id != room_id:
            raise BadJson("The event is not for this room")
        if event.type != MEMBER or event.membership != membership:
            raise BadJson(f"Not an m.room.member event with membership {membership}")
        if event.state_key != event.sender:
            raise BadJson("The state_key must be the sender")
        if server_name_of(event.sender) != origin:
            raise Forbidden(f"{event.sender} does not belong to {origin}")
        pdu = copy.deepcopy(body)
        authoriser = event.content.get("join_authorised_via_users_server")
        if (
            membership == "join"
            and rv.restricted_joins
            and isinstance(authoriser, str)
            and _server(authoriser) == self._server_name
        ):
            # We are the authorising server: our signature makes the join valid.
            sign_event_pdu(pdu, rv, self._server_name, self._signing_key)
        results = await self._pipeline.receive_room_pdus(origin, room_id, [pdu])
        error = results.get(event_id, "The event could not be checked")
        stored = await self._stores.events.get_event(event_id)
        if stored is None or stored.rejected_reason is not None or stored.soft_failed:
            raise Forbidden(error or f"The {membership} event was not accepted")
        if error is not None:
            raise Forbidden(error)
        servers = await self._sender.joined_servers(room_id)
        await self._sender.send_pdu(stored.event, servers - {origin}, stored.stream_ordering)
        return stored

    async def _state_before(self, stored: StoredEvent) -> StateMap:
        assert stored.state_group is not None
        state = dict(await self._stores.state.get_state(stored.state_group))
        key = stored.event.state_tuple
        if key is not None and state.get(key) == stored.event_id:
            if stored.replaces_state is None:
                del state[key]
            else:
                state[key] = stored.replaces_state
        return state

    async def _join_answer(
        self, stored: StoredEvent, omit_members: bool, *, v1: bool = False
    ) -> bytes:
        """The state before the join and the auth chains (s2s: sendJoinV2 200), as
        JSON. The state and chain events are spliced in as stored, never parsed: a
        big room's state is tens of thousands of them."""
        room_id = stored.event.room_id
        state = await self._state_before(stored)
        answer: dict[str, Any] = {"origin": self._server_name}
        if omit_members:
            # The servers of the state's joined members, and those that joined since
            # the join's prev events (as Synapse answers: the room's current hosts): a
            # partial-state joiner sends only to these until its resync completes.
            members = [e for k, e in state.items() if k[0] == MEMBER]
            memberships = await self._stores.rooms.memberships_of_events(members)
            servers = {_server(k[1]) for k, e in state.items() if memberships.get(e) == "join"}
            servers |= {self._server_name}
            servers |= await self._stores.state.joined_servers(room_id) - {
                _server(stored.event.sender)
            }
            state = {k: e for k, e in state.items() if k[0] != MEMBER}
            answer["servers_in_room"] = sorted(servers)
        events = self._stores.events
        state_json = await events.get_pdu_json(list(state.values()))
        # The auth chains of the join and of the state: their auth events, recursively,
        # not the state events themselves (as Synapse answers; one named in both is
        # an auth event of another, the create event, the power levels, ...).
        cited = set(stored.event.auth_event_ids) | await events.auth_event_ids_of(state_json)
        if stored.event.room_version.room_id_from_create_event:
            cited.add("$" + room_id[1:])  # v12 events do not cite it: the receiver needs it
        chain_ids = await events.auth_chain_ids(cited)
        if omit_members:
            chain_ids -= state_json.keys()
        chain_json = await events.get_pdu_json(chain_ids)
        chain = sorted(chain_json.items(), key=lambda item: (item[1][0], item[0]))
        answer["event"] = dict(stored.event.pdu)
        if not v1:
            answer["members_omitted"] = omit_members
        head = compact_dumps(answer)[:-1].encode()  # without its closing brace
        return b"".join(
            (
                head,
                b',"state":[',
                ",".join(raw for _depth, raw in state_json.values()).encode(),
                b'],"auth_chain":[',
                ",".join(raw for _id, (_depth, raw) in chain).encode(),
                b"]}",
            )
        )


def _json_bytes_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")
