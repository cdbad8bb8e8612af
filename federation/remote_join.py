"""The joining side of the membership handshakes: a local user joins, knocks on or
leaves (rejects an invite to, retracts a knock on) a room this server is not in.

Spec: s2s "Joining Rooms", "Knocking upon a room", "Leaving Rooms (Rejecting
Invites)". Candidate servers are tried in order: those the client named (``via``,
``server_name``, the alias's servers), the server of whoever invited the user, the
server of the room's creator as the stripped state tells it, the room ID's server.

A join: ``make_join`` (``ver`` = every version we implement) gives a template; its
type, room, sender, state key and membership are checked; the event is built from
it (our content, our timestamp), hashed and signed; ``send_join`` answers the state
and auth chain. ``send_join`` and ``send_leave`` go to the v1 endpoint (answered
``[200, {...}]``) when the resident does not know the v2 one, as Synapse. Before
the room counts as joined: the create event must be in the state and match the
room ID and version; the auth chain and state are checked by the inbound pipeline
(signatures batched through the key ring, content hashes, the auth rules of each
event against its auth events, in auth-chain order) and stored as outliers; a
state event whose signature or hash cannot be verified is left out of the state
(as Synapse), a rejected one fails the join; finally the join is
checked against its auth events and that state and persisted into the timeline with
it as the state before. Later events arrive over ``/send``.

Knocks and leaves of rooms we are not in are *out-of-band* memberships: stored as
outliers with a stream position (``EventContext.out_of_band``) so /sync shows them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from federation.client import FederationClient
from federation.errors import FederationError
from federation.event_pipeline import FederationEventPipeline
from federation.joins import MEMBER, incompatible_room_version
from federation.pdu_checks import DroppedPdu, off_loop_if_large, parse_pdu
from homeserver.clock import Clock
from homeserver.errors import MatrixError, NotFound
from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    Event,
    EventIdFormat,
    RoomVersion,
    SigningKey,
    hash_and_sign,
    validate_pdu,
)
from homeserver.events.errors import EventValidationError
from homeserver.events.hashing import generate_v1_event_id
from homeserver.garbage.pause import gc_paused
from homeserver.rooms.lanes import RoomLanes
from homeserver.rooms.persister import EventContext, EventPersister
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

T = TypeVar("T")

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
JOIN_TIMEOUT_S = 120.0
# Above this many PDUs, a send_join answer is parsed in a worker thread.
PARSE_IN_THREAD_ABOVE = 500
# Template fields the joining server keeps (it adds origin_server_ts, hashes, signatures).
TEMPLATE_FIELDS = ("type", "room_id", "sender", "state_key", "prev_events", "auth_events", "depth")


def _content_hash(pdu: dict[str, Any]) -> str:
    """The PDU's claimed content hash ("" if none), to find identical PDUs quickly."""
    hashes = pdu.get("hashes")
    value = hashes.get("sha256") if isinstance(hashes, dict) else None
    return value if isinstance(value, str) else ""


class JoinFailed(MatrixError):
    """A resident's answer we cannot use (tried the next candidate)."""

    def __init__(self, message: str) -> None:
        super().__init__(502, "M_UNKNOWN", message)


def _q(value: str) -> str:
    return quote(value, safe="")


def _server(user_id: str) -> str:
    return user_id.partition(":")[2]


def client_stripped_state(entries: Any) -> list[dict[str, Any]]:
    """Stripped state events for clients from ``invite_room_state`` /
    ``knock_room_state`` (full PDUs or already stripped); the create event is kept
    whole, as for local invites."""
    result: list[dict[str, Any]] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            continue
        if entry["type"] == "m.room.create":
            result.append(dict(entry))
            continue
        result.append(
            {k: entry[k] for k in ("type", "state_key", "content", "sender") if k in entry}
        )
    return result


async def persist_out_of_band(
    stores: Stores,
    persister: EventPersister,
    lanes: RoomLanes,
    event: Event,
    stripped_state: list[dict[str, Any]] | None = None,
) -> StoredEvent:
    """Store a membership event of a room we are not in so /sync shows it."""
    async with lanes.lane(event.room_id):
        held = await stores.events.get_event(event.event_id)
        if held is not None:
            return held
        return await persister.persist(
            event,
            EventContext(
                state_before={}, outlier=True, out_of_band=True, stripped_state=stripped_state
            ),
        )


class RemoteMembership:
    """Joins, knocks and leaves of local users through a resident server."""

    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        stores: Stores,
        client: FederationClient,
        pipeline: FederationEventPipeline,
        persister: EventPersister,
        lanes: RoomLanes,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._signing_key = signing_key
        self._stores = stores
        self._client = client
        self._pipeline = pipeline
        self._persister = persister
        self._lanes = lanes
        self._clock = clock

    # -- the MembershipService hooks ----------------------------------------------------

    async def join(
        self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]
    ) -> str:
        """``MembershipService.remote_join``: the room ID once joined."""

        async def attempt(destination: str) -> str:
            rv, event = await self._make(destination, "join", room_id, user_id, content)
            answer = await self._send_v2_or_v1(
                destination, "send_join", event, timeout_s=JOIN_TIMEOUT_S
            )
            # The answer is a big room's whole state: millions of objects to check and
            # store, with no cycles among them (see homeserver.garbage.pause).
            with gc_paused():
                await self._complete_join(destination, room_id, rv, event, answer)
            return room_id

        return await self._each_candidate(user_id, room_id, servers, attempt)

    async def knock(
        self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]
    ) -> str:
        """``MembershipService.remote_knock``: the room ID once knocked."""

        async def attempt(destination: str) -> str:
            rv, event = await self._make(destination, "knock", room_id, user_id, content)
            answer = await self._client.put_json(
                destination,
                f"{V1}/send_knock/{_q(room_id)}/{_q(event.event_id)}",
                dict(event.pdu),
            )
            state = answer.get("knock_room_state") if isinstance(answer, dict) else None
            await self._pipeline.ensure_room(room_id, rv, "")
            await persist_out_of_band(
                self._stores, self._persister, self._lanes, event, client_stripped_state(state)
            )
            return room_id

        return await self._each_candidate(user_id, room_id, servers, attempt)

    async def leave(self, user_id: str, room_id: str, content: dict[str, Any]) -> StoredEvent:
        """``MembershipService.remote_leave``: reject an invite or retract a knock."""

        async def attempt(destination: str) -> StoredEvent:
            _rv, event = await self._make(destination, "leave", room_id, user_id, content)
            await self._send_v2_or_v1(destination, "send_leave", event)
            return await persist_out_of_band(self._stores, self._persister, self._lanes, event)

        return await self._each_candidate(user_id, room_id, [], attempt)

    async def _send_v2_or_v1(
        self, destination: str, endpoint: str, event: Event, timeout_s: float | None = None
    ) -> Any:
        """``PUT /v2/<endpoint>``; when the resident does not know that endpoint, the
        v1 one (as Synapse), whose answer is wrapped as ``[200, answer]``."""
        path = f"{endpoint}/{_q(event.room_id)}/{_q(event.event_id)}"
        try:
            return await self._client.put_json(
                destination, f"{V2}/{path}", dict(event.pdu), timeout_s=timeout_s
            )
        except FederationError as exc:
            if not exc.unknown_endpoint:
                raise
        logger.info("%s has no v2 %s, trying v1", destination, endpoint)
        answer = await self._client.put_json(
            destination, f"{V1}/{path}", dict(event.pdu), timeout_s=timeout_s
        )
        return unwrap_v1_answer(destination, answer)

    # -- candidates ---------------------------------------------------------------------

    async def candidates(self, user_id: str, room_id: str, servers: Sequence[str]) -> list[str]:
        """Servers to try, in order (see the module doc); never ourselves."""
        found = list(servers)
        membership = await self._current_membership(user_id, room_id)
        if membership is not None:
            found.append(_server(membership.event.sender))
            stripped = await self._stores.rooms.get_stripped_state(membership.event_id)
            for entry in stripped:
                if entry.get("type") == "m.room.create" and isinstance(entry.get("sender"), str):
                    found.append(_server(entry["sender"]))
        if ":" in room_id:
            found.append(_server(room_id))
        return [s for s in dict.fromkeys(found) if s and s != self._server_name]

    async def _current_membership(self, user_id: str, room_id: str) -> StoredEvent | None:
        """The user's latest membership event in the room (an out-of-band invite)."""
        event_id = await self._stores.db.fetchval(
            "latest_membership_event",
            "SELECT event_id FROM room_memberships WHERE user_id = $1 AND room_id = $2"
            " AND stream_ordering IS NOT NULL ORDER BY stream_ordering DESC LIMIT 1",
            user_id,
            room_id,
        )
        return None if event_id is None else await self._stores.events.get_event(event_id)

    async def _each_candidate(
        self,
        user_id: str,
        room_id: str,
        servers: Sequence[str],
        attempt: Callable[[str], Awaitable[T]],
    ) -> T:
        destinations = await self.candidates(user_id, room_id, servers)
        if not destinations:
            raise NotFound("No known servers to reach the room through")
        error: MatrixError | None = None
        for destination in destinations:
            try:
                return await attempt(destination)
            except FederationError as exc:
                logger.info(
                    "membership of %s in %s via %s failed: %r", user_id, room_id, destination, exc
                )
                if exc.errcode == "M_INCOMPATIBLE_ROOM_VERSION":
                    version = exc.body.get("room_version") if isinstance(exc.body, dict) else None
                    extra = {"room_version": version} if isinstance(version, str) else None
                    raise MatrixError(400, exc.errcode, exc.message, extra=extra) from None
                if exc.status in (400, 403, 404) and exc.errcode:
                    error = MatrixError(exc.status, exc.errcode, exc.message)
                elif error is None:
                    error = exc.to_matrix_error()
            except JoinFailed as exc:
                logger.warning(
                    "membership of %s in %s via %s: %s", user_id, room_id, destination, exc.message
                )
                error = error or exc
        assert error is not None
        raise error

    # -- make_* and the event built from its template -----------------------------------

    async def _make(
        self,
        destination: str,
        membership: str,
        room_id: str,
        user_id: str,
        content: dict[str, Any],
    ) -> tuple[RoomVersion, Event]:
        query = None if membership == "leave" else {"ver": sorted(KNOWN_ROOM_VERSIONS)}
        answer = await self._client.get_json(
            destination, f"{V1}/make_{membership}/{_q(room_id)}/{_q(user_id)}", query
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
            raise JoinFailed(f"{destination} gave no event template")
        version = answer.get("room_version", "1")
        rv = KNOWN_ROOM_VERSIONS.get(version) if isinstance(version, str) else None
        if rv is None:
            raise incompatible_room_version(str(version))
        template = answer["event"]
        tpl_content = template.get("content")
        if (
            template.get("type") != MEMBER
            or template.get("room_id") != room_id
            or template.get("sender") != user_id
            or template.get("state_key") != user_id
            or not isinstance(tpl_content, dict)
            or tpl_content.get("membership") != membership
        ):
            raise JoinFailed(f"{destination} gave a template for another membership")
        pdu: dict[str, Any] = {k: template[k] for k in TEMPLATE_FIELDS if k in template}
        merged = dict(content)
        merged.update(tpl_content)  # membership and join_authorised_via_users_server
        pdu["content"] = merged
        pdu["origin_server_ts"] = self._clock.time_ms()
        if rv.event_id_format is EventIdFormat.V1:
            pdu["event_id"] = generate_v1_event_id(self._server_name)
            pdu["origin"] = self._server_name
        try:
            event = hash_and_sign(pdu, rv, self._server_name, self._signing_key)
            checked = dict(event.pdu)
            if rv.event_id_format is EventIdFormat.V1:
                # the references are sent as the resident gave them (as Synapse); each
                # must name an event, whatever its hash part
                for key in ("prev_events", "auth_events"):
                    checked[key] = _normalised_refs(checked.get(key))
            validate_pdu(checked, rv)
        except (EventValidationError, ValueError, TypeError) as exc:
            raise JoinFailed(f"{destination} gave an invalid template: {exc}") from None
        return rv, event

    # -- send_join's answer -------------------------------------------------------------

    async def _complete_join(
        self, destination: str, room_id: str, rv: RoomVersion, event: Event, answer: Any
    ) -> None:
        if not isinstance(answer, dict):
            raise JoinFailed(f"{destination} gave no send_join answer")
        state = [p for p in answer.get("state") or [] if isinstance(p, dict)]
        chain = [p for p in answer.get("auth_chain") or [] if isinstance(p, dict)]
        pdu = dict(event.pdu)
        signed = answer.get("event")
        if isinstance(signed, dict):
            # A restricted join: the resident's copy carries the authorising signature.
            parsed = parse_pdu(signed, rv)
            if isinstance(parsed, Event) and parsed.signing_bytes() == event.signing_bytes():
                signatures = {**dict(parsed.signatures), **dict(event.signatures)}
                pdu["signatures"] = signatures
        create = self._create_event(room_id, rv, state)
        # A big room's state is parsed in a worker thread, off the event loop.
        state_events, chain_events = await off_loop_if_large(
            len(state) + len(chain),
            _parse_answer,
            destination,
            rv,
            state,
            chain,
            above=PARSE_IN_THREAD_ABOVE,
        )
        await self._pipeline.ensure_room(room_id, rv, create.sender)
        held = await self._pipeline.persist_outlier_events(
            destination, room_id, chain_events + state_events
        )
        named: list[str] = []
        known: dict[str, StoredEvent] = {}
        for state_event in state_events:
            event_id = state_event.event_id
            stored = held.get(event_id) or await self._stores.events.get_event(event_id)
            if stored is None:
                # not validly signed or hashed: left out of the state (as Synapse); if
                # it mattered, our join fails its auth check below
                logger.warning("%s gave an unverifiable state event %s", destination, event_id)
                continue
            if stored.rejected_reason is not None:
                raise JoinFailed(
                    f"{destination} gave a bad state event {event_id}: {stored.rejected_reason}"
                )
            named.append(event_id)
            known[event_id] = stored
        stored, error = await self._pipeline.persist_with_held_state(
            destination, room_id, pdu, named, own_join=True, known=known
        )
        if error is not None or stored is None or stored.rejected_reason is not None:
            raise JoinFailed(f"our join was not accepted against the room state: {error}")

    @staticmethod
    def _create_event(room_id: str, rv: RoomVersion, state: list[dict[str, Any]]) -> Event:
        """The state's create event, checked against the room ID and version."""
        for raw in state:
            if raw.get("type") == "m.room.create" and raw.get("state_key") == "":
                parsed = parse_pdu(raw, rv)
                if isinstance(parsed, DroppedPdu):
                    raise JoinFailed(f"invalid create event: {parsed.reason}")
                version = parsed.content.get("room_version", "1")
                if version != rv.identifier:
                    raise JoinFailed(f"the create event is of room version {version}")
                if rv.room_id_from_create_event:
                    if room_id != "!" + parsed.event_id[1:]:
                        raise JoinFailed("the create event is not this room's")
                elif parsed.room_id != room_id:
                    raise JoinFailed("the create event is of another room")
                return parsed
        raise JoinFailed("the room state has no create event")


def _normalised_refs(refs: Any) -> Any:
    """A v1-format template's event references as ``[event_id, hashes]`` pairs (for
    checking only), the hash part ``{}`` where it is missing or malformed:
    ``["$a"]`` and ``[["$a", "junk"]]`` -> ``[["$a", {}]]``. Anything else is left for
    validation to refuse."""
    if not isinstance(refs, list):
        return refs
    normalised: list[Any] = []
    for ref in refs:
        if isinstance(ref, str):
            normalised.append([ref, {}])
        elif isinstance(ref, list) and ref and isinstance(ref[0], str):
            normalised.append([ref[0], ref[1] if len(ref) > 1 and isinstance(ref[1], dict) else {}])
        else:
            normalised.append(ref)
    return normalised


def unwrap_v1_answer(destination: str, answer: Any) -> Any:
    """The body of a v1 membership answer, ``[200, body]`` (s2s: sendJoinV1 and the
    other v1 endpoints answer this historical shape)."""
    if isinstance(answer, list) and len(answer) == 2 and isinstance(answer[1], dict):
        return answer[1]
    raise JoinFailed(f"{destination} gave a v1 answer not of the form [200, {{...}}]")


def _parse_answer(
    destination: str, rv: RoomVersion, state: Sequence[Any], chain: Sequence[Any]
) -> tuple[list[Event], list[Event]]:
    """The state and auth chain of a send_join answer as events (step 1); an invalid
    state event fails the join. The chain usually repeats the state: a PDU identical
    to one of the state's is the same event, parsed once."""
    state_events: list[Event] = []
    for raw in state:
        parsed = parse_pdu(raw, rv)
        if isinstance(parsed, DroppedPdu):
            raise JoinFailed(f"{destination} gave an invalid state event: {parsed.reason}")
        state_events.append(parsed)
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for raw in state:
        by_hash.setdefault(_content_hash(raw), []).append(raw)
    chain_events = [
        p
        for p in (
            parse_pdu(raw, rv)
            for raw in chain
            if not any(raw == s for s in by_hash.get(_content_hash(raw), ()))
        )
        if isinstance(p, Event)
    ]
    return state_events, chain_events
