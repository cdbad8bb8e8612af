"""Creating local events: build from the room's current state, authorize, persist.

The hot path of a message: inside the room's lane, take the cached current state
and forward extremities, pick the auth events, build, hash and sign the event, run
the authorization rules of the event core against the current state, then persist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signedjson.types import SigningKey

from homeserver.clock import Clock
from homeserver.errors import Forbidden, MatrixError, NotFound, TooLarge
from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    AuthError,
    Event,
    EventBuilder,
    EventValidationError,
    RoomVersion,
    canonical_json,
    check_auth,
    validate_pdu,
)
from homeserver.retention.policy import RETENTION, validate_retention_content
from homeserver.rooms.creation_plan import PlannedEvent, check_planned_room
from homeserver.rooms.lanes import RoomLanes
from homeserver.rooms.persister import EventContext, EventPersister
from storage.database import IntegrityError, Transaction
from storage.events import StoredEvent
from storage.state import StateMap
from storage.stores import Stores

if TYPE_CHECKING:
    from homeserver.replication.forwarding import EventForwarder

MAX_PREV_EVENTS = 10
MAX_EVENT_BYTES = 65_536

# Another server's signature added to a built event before persisting (remote invites).
Countersign = Callable[[Event, StateMap], Awaitable[Event]]


def check_local_content(
    room_id: str, event_type: str, content: Mapping[str, Any], state_key: str | None = None
) -> None:
    """Content rules for events this server's users send (400 M_BAD_JSON), beyond the
    event format: an ``m.room.tombstone`` names the room that replaces this one, so
    never this room itself (client-server API, "Room Upgrades"; as Synapse); an
    ``m.room.retention`` policy has integer lifetimes, the minimum not above the
    maximum (MSC1763, as Synapse checks it whether retention is enabled or not)."""
    if event_type == RETENTION:
        validate_retention_content(content, is_state=state_key is not None)
    if event_type == "m.room.tombstone":
        replacement = content.get("replacement_room")
        if not isinstance(replacement, str):
            raise MatrixError(400, "M_BAD_JSON", "A tombstone needs a string replacement_room")
        if replacement == room_id:
            raise MatrixError(400, "M_BAD_JSON", "A tombstone cannot name the room it is sent in")


@dataclass(frozen=True)
class TxnKey:
    """The client transaction an event was sent in (for idempotent retries)."""

    device_id: str
    txn_id: str


class EventCreator:
    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        stores: Stores,
        persister: EventPersister,
        lanes: RoomLanes,
        clock: Clock,
    ) -> None:
        self.server_name = server_name
        self._signing_key = signing_key
        self._stores = stores
        self._persister = persister
        self.lanes = lanes
        self._clock = clock
        self._last_create_ts: dict[str, int] = {}
        # with several event writers: sends of rooms another process writes go there
        self.forwarder: EventForwarder | None = None

    async def stored_event(self, event_id: str) -> StoredEvent | None:
        return await self._stores.events.get_event(event_id)

    async def room_version(self, room_id: str) -> RoomVersion:
        version_id = await self._stores.events.room_version_id(room_id)
        if version_id is None or version_id not in KNOWN_ROOM_VERSIONS:
            raise NotFound("Unknown room")
        return KNOWN_ROOM_VERSIONS[version_id]

    async def state_events(
        self, state: Mapping[tuple[str, str], str]
    ) -> dict[tuple[str, str], Event]:
        stored = await self._stores.events.get_events(list(state.values()))
        return {k: stored[e].event for k, e in state.items() if e in stored}

    async def send(
        self,
        room_id: str,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        redacts: str | None = None,
        txn: TxnKey | None = None,
        extra: Mapping[str, Any] | None = None,
        stripped_state_keys: list[tuple[str, str]] | None = None,
        countersign: Countersign | None = None,
        origin_server_ts: int | None = None,
    ) -> StoredEvent:
        """Build, authorize and persist a local event in an existing room.

        ``countersign`` gets the authorized event before it is persisted and returns
        the event to persist (a remote invite: the invitee's server signs it too).
        ``origin_server_ts``: the event's time if not now (an application service's
        ``ts``, for messages it bridges).
        """
        forwarder = self.forwarder
        if forwarder is not None and countersign is None and forwarder.forwards(room_id):
            return await forwarder.send(
                room_id,
                {
                    "type": event_type,
                    "sender": sender,
                    "content": dict(content),
                    "state_key": state_key,
                    "redacts": redacts,
                    "txn": {"device_id": txn.device_id, "txn_id": txn.txn_id} if txn else None,
                    "extra": dict(extra) if extra is not None else None,
                    "stripped_state_keys": stripped_state_keys,
                    "origin_server_ts": origin_server_ts,
                },
            )
        async with self.lanes.lane(room_id):
            prepared = await self._prepare(
                room_id,
                event_type,
                sender,
                content,
                state_key=state_key,
                redacts=redacts,
                txn=txn,
                extra=extra,
                stripped_state_keys=stripped_state_keys,
                countersign=countersign,
                origin_server_ts=origin_server_ts,
            )
            if isinstance(prepared, StoredEvent):
                return prepared  # the same state again: the event already in force
            event, context = prepared
            try:
                stored = await self._persister.persist(event, context)
            except IntegrityError:
                # A retry of a send that was stored: the unique index on (sender,
                # device, txn) refuses the new copy, and the first is the answer. So
                # a new send costs no read to find out it is new, and the server
                # keeps no list of transaction IDs (10,000 were ~2.7 MB); a retry
                # costs building the event again, as rare as it is.
                if txn is None:
                    raise
                existing = await self._stores.events.get_event_id_for_txn(
                    sender, txn.device_id, txn.txn_id
                )
                found = await self._stores.events.get_event(existing) if existing else None
                if found is None:
                    raise
                stored = found
            return stored

    async def build_unpersisted(
        self,
        room_id: str,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
    ) -> tuple[Event, EventContext]:
        """Build and authorize a local event against the current state without
        persisting it (a room upgrade's tombstone, whose ID the new room cites).

        The caller holds the room's lane (``lanes.lane(room_id)``) from here until
        :meth:`persist_built`, so the state it was built on is still current then.
        """
        prepared = await self._prepare(
            room_id, event_type, sender, content, state_key=state_key, deduplicate=False
        )
        assert not isinstance(prepared, StoredEvent)
        return prepared

    async def persist_built(self, event: Event, context: EventContext) -> StoredEvent:
        """Persist an event of :meth:`build_unpersisted`; the caller holds the lane."""
        return await self._persister.persist(event, context)

    async def _prepare(
        self,
        room_id: str,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        redacts: str | None = None,
        txn: TxnKey | None = None,
        extra: Mapping[str, Any] | None = None,
        stripped_state_keys: list[tuple[str, str]] | None = None,
        countersign: Countersign | None = None,
        deduplicate: bool = True,
        origin_server_ts: int | None = None,
    ) -> tuple[Event, EventContext] | StoredEvent:
        """Build, check and authorize an event inside the room's lane; or, for a
        state event the sender already set to the same content, that event (sending
        the same state twice makes no new event, as in Synapse)."""
        rv = await self.room_version(room_id)
        check_local_content(room_id, event_type, content, state_key)
        state = await self._stores.state.get_current_state(room_id)
        if deduplicate and state_key is not None:
            same = await self._same_state(state.get((event_type, state_key)), sender, content)
            if same is not None:
                return same
        builder = EventBuilder(
            rv,
            event_type,
            sender,
            content,
            room_id=room_id,
            state_key=state_key,
            redacts=redacts,
            extra=extra or {},
        )
        event, group_before = await self._build(builder, room_id, state, origin_server_ts)
        self._authorize(event, await self._auth_state(event, builder, state))
        stripped = None
        if stripped_state_keys is not None:
            stripped = await self.stripped_state(state, stripped_state_keys, event)
        if countersign is not None:
            event = await countersign(event, state)
        context = EventContext(
            state_before=dict(state),
            state_group_before=group_before,
            txn_device_id=txn.device_id if txn else None,
            txn_id=txn.txn_id if txn else None,
            stripped_state=stripped,
            local=True,
        )
        return event, context

    async def _same_state(
        self, current_id: str | None, sender: str, content: Mapping[str, Any]
    ) -> StoredEvent | None:
        """The current state event if ``sender`` sent it with exactly ``content``."""
        if current_id is None:
            return None
        current = await self._stores.events.get_event(current_id)
        if (
            current is None
            or current.rejected_reason is not None
            or current.redacted_by is not None
            or current.event.sender != sender
        ):
            return None
        if canonical_json(dict(current.event.content)) != canonical_json(dict(content)):
            return None
        return current

    async def out_of_band_leave(
        self, previous: StoredEvent, content: Mapping[str, Any]
    ) -> StoredEvent:
        """A leave of ``previous``'s user made here alone, citing only their invite or
        knock (``previous``): a room whose residents cannot be reached cannot take the
        rejection, yet the user must be able to drop the invite (as Synapse does)."""
        event = previous.event
        assert event.state_key is not None
        builder = EventBuilder(
            event.room_version,
            "m.room.member",
            event.state_key,
            {**content, "membership": "leave"},
            room_id=event.room_id,
            state_key=event.state_key,
        )
        leave = builder.build(
            prev_event_ids=[previous.event_id],
            auth_event_ids=[*event.auth_event_ids, previous.event_id],
            depth=event.depth + 1,
            server_name=self.server_name,
            signing_key=self._signing_key,
            origin_server_ts=self._clock.time_ms(),
        )
        async with self.lanes.lane(event.room_id):
            return await self._persister.persist(
                leave,
                EventContext(state_before={}, outlier=True, out_of_band=True, local=True),
            )

    def check_new_room(
        self,
        room_version: RoomVersion,
        sender: str,
        create_content: Mapping[str, Any],
        room_id: str | None,
        planned: Sequence[PlannedEvent],
    ) -> None:
        """Authorize a new room's whole event sequence in memory (nothing is stored);
        400 M_INVALID_ROOM_STATE if any of its events would be rejected."""
        check_planned_room(
            room_version,
            sender,
            create_content,
            room_id,
            planned,
            server_name=self.server_name,
            signing_key=self._signing_key,
            origin_server_ts=self._clock.time_ms(),
            max_event_bytes=MAX_EVENT_BYTES,
        )

    async def create_room_event(
        self,
        room_version: RoomVersion,
        sender: str,
        content: Mapping[str, Any],
        room_id: str | None,
    ) -> StoredEvent:
        """Build and persist the m.room.create event of a new room."""
        builder = EventBuilder(
            room_version, "m.room.create", sender, content, room_id=room_id, state_key=""
        )
        # v12 room IDs derive from the create event: the same creator, content and
        # millisecond give the same ID, so each creator's creates get distinct times
        # (claimed before any await, so concurrent requests of one process never meet),
        # and an ID another process took meanwhile moves on to a later millisecond.
        ts = max(self._clock.time_ms(), self._last_create_ts.get(sender, 0) + 1)
        self._last_create_ts[sender] = ts
        for _attempt in range(100):
            event = builder.build(
                prev_event_ids=[],
                auth_event_ids=[],
                depth=1,
                server_name=self.server_name,
                signing_key=self._signing_key,
                origin_server_ts=ts,
            )
            self._authorize(event, {})
            new_room_id = event.room_id
            if await self._claim_room_id(new_room_id, room_version, sender):
                break
            ts = max(ts, self._last_create_ts.get(sender, 0)) + 1
            self._last_create_ts[sender] = ts
        else:
            raise MatrixError(500, "M_UNKNOWN", "Could not allocate a room ID")
        self._stores.events.remember_room_version(new_room_id, room_version.identifier)
        async with self.lanes.lane(new_room_id):
            return await self._persister.persist(event, EventContext(state_before={}, local=True))

    async def _claim_room_id(self, room_id: str, room_version: RoomVersion, sender: str) -> bool:
        """Record a new room; False when its ID is taken (one statement, so atomic)."""

        async def claim(txn: Transaction) -> bool:
            return await self._stores.rooms.create_room_txn(
                txn, room_id, room_version.identifier, sender, self._clock.time_ms()
            )

        return await self._stores.db.run_transaction("create_room", claim)

    async def _build(
        self,
        builder: EventBuilder,
        room_id: str,
        state: StateMap,
        origin_server_ts: int | None = None,
    ) -> tuple[Event, int | None]:
        extremities = await self._stores.events.get_forward_extremities(room_id)
        prevs = await self._stores.events.get_events(extremities)
        chosen = sorted(prevs.values(), key=lambda s: s.depth, reverse=True)[:MAX_PREV_EVENTS]
        depth = max((s.depth for s in chosen), default=0) + 1
        auth_ids = [state[k] for k in sorted(builder.auth_types()) if k in state]
        event = builder.build(
            prev_event_ids=[s.event_id for s in chosen],
            auth_event_ids=auth_ids,
            depth=depth,
            server_name=self.server_name,
            signing_key=self._signing_key,
            origin_server_ts=(
                self._clock.time_ms() if origin_server_ts is None else origin_server_ts
            ),
        )
        if len(canonical_json(event.pdu)) > MAX_EVENT_BYTES:
            raise TooLarge(f"Event larger than {MAX_EVENT_BYTES} bytes")
        try:
            validate_pdu(dict(event.pdu), builder.room_version)
        except EventValidationError as exc:
            raise MatrixError(400, "M_BAD_JSON", f"Invalid event: {exc}") from exc
        # The current state is exactly the state after the single extremity.
        group_before = chosen[0].state_group if len(extremities) == 1 and chosen else None
        return event, group_before

    async def _auth_state(
        self, event: Event, builder: EventBuilder, state: StateMap
    ) -> dict[tuple[str, str], Event]:
        keys = set(builder.auth_types()) | {("m.room.create", "")}
        return await self.state_events({k: state[k] for k in keys if k in state})

    @staticmethod
    def _authorize(event: Event, auth_state: Mapping[tuple[str, str], Event]) -> None:
        try:
            check_auth(event, auth_state)
        except AuthError as exc:
            raise Forbidden(f"You are not allowed to do that ({exc.rule}): {exc}") from exc

    async def stripped_state(
        self, state: StateMap, keys: list[tuple[str, str]], event: Event
    ) -> list[dict[str, Any]]:
        """Stripped state events for invitees and knockers (client-server: stripped state)."""
        events = await self.state_events({k: state[k] for k in keys if k in state})
        stripped = [
            {"type": e.type, "state_key": e.state_key, "content": e.content, "sender": e.sender}
            for e in events.values()
        ]
        create = events.get(("m.room.create", ""))
        if create is not None:
            # The full create event lets the invitee check the room version and ID.
            stripped = [s for s in stripped if s["type"] != "m.room.create"] + [dict(create.pdu)]
        return stripped
