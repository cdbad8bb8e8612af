"""The inbound PDU pipeline: s2s "Checks performed on receipt of a PDU", steps 4-6,
after :mod:`federation.pdu_checks` did steps 1-3.

For each new event of a room we hold, inside the room's lane:

* a replay of an event we already hold is a no-op, except for an accepted outlier
  (fetched as an auth or state event): it goes through the checks below and joins
  the timeline (``EventContext.de_outlier``), or stays an outlier if they fail;
* auth events: missing ones are fetched from the origin (``/event_auth``, else
  ``/event``), checked and stored as outliers; ``check_auth_events`` and
  ``check_auth`` against them, else the event is stored as *rejected*;
* the state before the event: resolved from its prev events' states
  (``StateResolver``). Unknown prev events are asked for with
  ``/get_missing_events`` (at most ``MAX_MISSING_EVENTS``) and processed first; a
  pushed event whose gap stays open is dropped (as Synapse). For a pulled event (from
  ``/get_missing_events`` or backfill) with prev events still unknown, the state
  after each of those is ``/state_ids`` at it plus the prev event itself (missing
  events from ``/event`` or ``/state``, each checked and stored as an outlier),
  resolved with the state after the prev events we hold. ``check_auth``
  against that state, else *rejected*;
* ``check_auth`` against the room's current state, else stored *soft-failed* (not
  shown to clients, not a forward extremity).

Rejected events are stored with their reason and do not change the state
(s2s "Rejection"). Remote input never raises out of :meth:`receive_room_pdus`: each
PDU gets an error string or None; a :class:`Rejection` is an error that was handled
by storing the event as rejected (``/send`` answers ``{}`` for it, as Synapse).

For the membership handshakes, :meth:`persist_outliers` checks and stores a batch of
events (an auth chain, a room's state) and :meth:`persist_with_state` stores an event
with a state given by a resident server (``send_join``'s answer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from federation.event_fetch import MAX_MISSING_EVENTS, RemoteEventFetcher
from federation.pdu_checks import (
    CheckedPdu,
    EventSignatureVerifier,
    check_pdus,
    check_signatures_and_hashes,
    parse_pdu,
)
from homeserver.clock import Clock
from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    AuthError,
    Event,
    RoomVersion,
    auth_state_from_events,
    auth_types_for_event,
    check_auth,
    check_auth_events,
)
from homeserver.rooms.lanes import RoomLanes
from homeserver.rooms.persister import EventContext, EventPersister
from homeserver.rooms.state_resolution import StateResolver
from storage.events import StoredEvent
from storage.state import StateMap
from storage.stores import Stores

logger = logging.getLogger(__name__)


class Rejection(str):
    """The reason an event was stored as rejected: handled, not a failure to process."""


# Above this many unknown state events, ask for /state at once instead of /event each.
MAX_SINGLE_EVENT_FETCHES = 50
FETCH_CONCURRENCY = 10
# Outliers stored per transaction (a joined room's state: a few big transactions).
OUTLIER_BATCH = 5000


class FederationEventPipeline:
    """Checks and persists events received from other servers."""

    def __init__(
        self,
        server_name: str,
        stores: Stores,
        verifier: EventSignatureVerifier,
        fetcher: RemoteEventFetcher,
        persister: EventPersister,
        lanes: RoomLanes,
        resolver: StateResolver,
        clock: Clock,
    ) -> None:
        self.server_name = server_name
        self._stores = stores
        self._verifier = verifier
        self._fetcher = fetcher
        self._persister = persister
        self.lanes = lanes
        self._resolver = resolver
        self._clock = clock

    # -- public entry points ------------------------------------------------------------

    async def room_version(self, room_id: str) -> RoomVersion | None:
        """The version of a room we hold (None: unknown room or version)."""
        version_id = await self._stores.events.room_version_id(room_id)
        return KNOWN_ROOM_VERSIONS.get(version_id) if version_id else None

    async def ensure_room(self, room_id: str, room_version: RoomVersion, creator: str) -> None:
        """Create the room row for a room first known through federation (a join)."""
        async with self._stores.db.transaction("ensure_federated_room") as txn:
            await self._stores.rooms.create_room_txn(
                txn, room_id, room_version.identifier, creator, self._clock.time_ms()
            )
        self._stores.events.remember_room_version(room_id, room_version.identifier)

    async def receive_room_pdus(
        self, origin: str, room_id: str, pdus: Sequence[Any]
    ) -> dict[str, str | None]:
        """Process PDUs of one room sent by ``origin`` (``/send``); event ID -> error.

        PDUs of an unknown room, or whose event ID cannot be determined, are left out
        when no ID can be given for them.
        """
        rv = await self.room_version(room_id)
        results: dict[str, str | None] = {}
        if rv is None:
            for pdu in pdus:
                raw = pdu.get("event_id") if isinstance(pdu, dict) else None
                if isinstance(raw, str):
                    results[raw] = "Unknown room"
            return results
        checked = await check_pdus(self._verifier, pdus, rv)
        events: list[Event] = []
        for item in checked:
            if isinstance(item, CheckedPdu):
                if item.event.room_id == room_id:
                    events.append(item.event)
                else:
                    results[item.event.event_id] = "Event is not in the room it was sent for"
            elif item.event_id is not None:
                results[item.event_id] = item.reason
        events.sort(key=lambda e: e.depth)
        async with self.lanes.lane(room_id):
            for event in events:
                try:
                    if await self._rescinds_invite(event):
                        await self._persister.persist(
                            event, EventContext(state_before={}, outlier=True, out_of_band=True)
                        )
                        results[event.event_id] = None
                        continue
                    results[event.event_id] = await self._process_new(origin, event, True)
                except Exception:
                    logger.exception("processing %s from %s failed", event.event_id, origin)
                    results[event.event_id] = "Internal error processing the event"
        return results

    async def _rescinds_invite(self, event: Event) -> bool:
        """Whether ``event`` withdraws the invite of a local user to a room this server
        is not in: a leave by the invite's sender citing the invite, which we hold. It
        cannot be checked against the room's state (we have none); it is stored out
        of band, like the invite, so the user sees the invite go (as Synapse)."""
        target = event.state_key
        if (
            event.type != "m.room.member"
            or event.content.get("membership") != "leave"
            or not target
            or target == event.sender
            or target.partition(":")[2] != self.server_name
        ):
            return False
        held = await self._stores.events.get_event(event.event_id)
        if held is not None:
            return False
        latest = await self._stores.rooms.latest_membership_event_id(target, event.room_id)
        if latest is None or latest not in event.auth_event_ids:
            return False
        invite = await self._stores.events.get_event(latest)
        if (
            invite is None
            or invite.event.content.get("membership") != "invite"
            or invite.event.sender != event.sender
        ):
            return False
        return self.server_name not in await self._stores.state.joined_servers(event.room_id)

    async def persist_outliers(
        self, origin: str, room_id: str, pdus: Sequence[Any]
    ) -> dict[str, StoredEvent]:
        """Check (steps 1-4) and store PDUs as outliers: an auth chain or a state.

        Returns every event of the batch that is now held (accepted or rejected),
        by event ID. Events failing steps 1-2, or whose auth events are unknown,
        are left out. Takes the room's lane.
        """
        rv = await self.room_version(room_id)
        if rv is None:
            return {}
        return await self.persist_outlier_events(origin, room_id, _parse_all(pdus, rv))

    async def persist_outlier_events(
        self, origin: str, room_id: str, events: Sequence[Event]
    ) -> dict[str, StoredEvent]:
        """:meth:`persist_outliers` for PDUs already parsed (step 1) as events of the
        room's version."""
        async with self.lanes.lane(room_id):
            return await self._persist_events_locked(origin, room_id, events)

    async def persist_with_state(
        self,
        origin: str,
        room_id: str,
        pdu: Mapping[str, Any],
        state_pdus: Sequence[Any],
        auth_chain_pdus: Sequence[Any],
    ) -> tuple[StoredEvent | None, str | None]:
        """Store an event with the state before it given by ``origin`` (send_join).

        The auth chain and the state are checked and stored as outliers first; the
        event is then checked against its auth events and against that state and
        persisted into the timeline. Returns (the stored event, None) or (None or the
        rejected event, the reason).
        """
        rv = await self.room_version(room_id)
        if rv is None:
            return None, "Unknown room"
        state = _parse_all(state_pdus, rv)
        async with self.lanes.lane(room_id):
            await self._persist_events_locked(
                origin, room_id, _parse_all(auth_chain_pdus, rv) + state
            )
        # Only events the resident named as state count as state (not the chain).
        return await self.persist_with_held_state(origin, room_id, pdu, [e.event_id for e in state])

    async def persist_with_held_state(
        self,
        origin: str,
        room_id: str,
        pdu: Mapping[str, Any],
        state_ids: Sequence[str],
        *,
        own_join: bool = False,
        known: Mapping[str, StoredEvent] | None = None,
    ) -> tuple[StoredEvent | None, str | None]:
        """:meth:`persist_with_state` once the state's events are held: the state
        before the event is made of those of ``state_ids`` that are held and
        accepted. ``own_join``: our own join, made against the state a resident
        answered — never soft-failed against what this server held from before it
        left the room (that state is stale: an invite since, say, exists here only as
        an outlier). ``known``: stored events the caller holds already (a join's
        state, just persisted), not read again."""
        rv = await self.room_version(room_id)
        if rv is None:
            return None, "Unknown room"
        checked = await check_pdus(self._verifier, [pdu], rv)
        item = checked[0]
        if not isinstance(item, CheckedPdu):
            return None, item.reason
        event = item.event
        async with self.lanes.lane(room_id):
            held = dict(known) if known is not None else {}
            missing = [event_id for event_id in state_ids if event_id not in held]
            if missing:
                held.update(await self._stores.events.get_events(missing))
            state: StateMap = {}
            for event_id in state_ids:
                stored = held.get(event_id)
                if stored is None or stored.rejected_reason is not None:
                    continue
                key = stored.event.state_tuple
                if key is not None:
                    state[key] = event_id
            error = await self._check_and_persist(origin, event, state, own_join=own_join)
            stored_event = await self._stores.events.get_event(event.event_id)
            return stored_event, error

    async def receive_backfill(self, origin: str, room_id: str, pdus: Sequence[Any]) -> int:
        """Check and store history ``origin`` answered ``/backfill`` with; returns how
        many events joined the timeline.

        Oldest first, each event's state is resolved from its prev events when we
        hold them in the timeline, else asked of ``origin`` (``/state_ids``). Events
        are checked against their auth events and that state (never soft-failed:
        they are history, not news) and stored as backfilled: before everything else
        in the room's topological order, out of /sync and of the forward extremities.
        Events held as outliers (a join's state) join the timeline the same way.
        """
        rv = await self.room_version(room_id)
        if rv is None:
            return 0
        checked = await check_pdus(self._verifier, pdus, rv)
        events = {
            c.event.event_id: c.event
            for c in checked
            if isinstance(c, CheckedPdu) and c.event.room_id == room_id
        }
        added = 0
        async with self.lanes.lane(room_id):
            held = await self._stores.events.get_events(list(events))
            for event in _prev_order(events.values()):
                known = held.get(event.event_id)
                if known is not None and not _may_de_outlier(known):
                    continue
                try:
                    state = await self._state_before(origin, event, fetch_missing=False)
                    if state is None:
                        logger.info("backfilled %s: no state before it", event.event_id)
                        continue
                    error = await self._check_and_persist(origin, event, state, backfilled=True)
                except Exception:
                    logger.exception("backfilling %s from %s failed", event.event_id, origin)
                    continue
                if error is None:
                    added += 1
                else:
                    logger.info("backfilled %s from %s: %s", event.event_id, origin, error)
        return added

    # -- one new event ------------------------------------------------------------------

    async def _process_new(self, origin: str, event: Event, fetch_missing: bool) -> str | None:
        """Steps 4-6 for one event; the caller holds the lane. Returns an error or None."""
        held = await self._stores.events.get_event(event.event_id)
        if held is not None and not _may_de_outlier(held):
            return None  # a replay of an event we hold
        state = await self._state_before(origin, event, fetch_missing)
        if state is None:
            return "Could not determine the state before the event"
        return await self._check_and_persist(origin, event, state)

    async def _check_and_persist(
        self,
        origin: str,
        event: Event,
        state: StateMap,
        *,
        backfilled: bool = False,
        own_join: bool = False,
    ) -> str | None:
        held = await self._stores.events.get_event(event.event_id)
        de_outlier = held is not None and _may_de_outlier(held)
        if held is not None and not de_outlier:
            return None
        auth_events = await self._auth_events(origin, event)
        if auth_events is None:
            return "Could not fetch the event's auth events"
        rejected = await self._check_against_auth_events(event, auth_events)
        if rejected is None:
            rejected = self._check(event, await self._auth_state(event, state), "state")
        soft_failed = False
        if rejected is None and not backfilled and not own_join:
            current = await self._stores.state.get_current_state(event.room_id)
            # No current state yet: the room is being joined with this state.
            if (
                current
                and current != state
                and self._check(event, await self._auth_state(event, current), "current state")
            ):
                logger.info("soft-failing %s from %s", event.event_id, origin)
                soft_failed = True
        if de_outlier and (rejected is not None or soft_failed):
            # It stays an outlier: out of the timeline and the state, as it would be.
            return None if rejected is None else Rejection(f"Event rejected: {rejected}")
        await self._persister.persist(
            event,
            EventContext(
                state_before=dict(state),
                rejected_reason=rejected,
                soft_failed=soft_failed,
                de_outlier=de_outlier,
                backfilled=backfilled,
                replaces_extremities=own_join,
            ),
        )
        if rejected is not None:
            logger.info("rejected %s from %s: %s", event.event_id, origin, rejected)
            return Rejection(f"Event rejected: {rejected}")
        return None

    @staticmethod
    def _check(event: Event, auth_state: Mapping[tuple[str, str], Event], what: str) -> str | None:
        try:
            check_auth(event, auth_state)
        except AuthError as exc:
            return f"not allowed by the {what} ({exc.rule}): {exc}"
        return None

    async def _create_event(self, event: Event) -> Event | None:
        """The room's create event when the version does not cite it (v12)."""
        if not event.room_version.room_id_from_create_event or event.type == "m.room.create":
            return None
        stored = await self._stores.events.get_event("$" + event.room_id[1:])
        return None if stored is None else stored.event

    async def _check_against_auth_events(
        self, event: Event, auth_events: Sequence[Event]
    ) -> str | None:
        return _auth_events_error(event, auth_events, await self._create_event(event))

    async def _auth_state(self, event: Event, state: StateMap) -> dict[tuple[str, str], Event]:
        keys = auth_types_for_event(
            event.room_version, event.type, event.sender, event.state_key, event.content
        ) | {("m.room.create", "")}
        wanted = {k: state[k] for k in keys if k in state}
        stored = await self._stores.events.get_events(list(wanted.values()))
        return {k: stored[e].event for k, e in wanted.items() if e in stored}

    # -- auth events --------------------------------------------------------------------

    async def _auth_events(self, origin: str, event: Event) -> list[Event] | None:
        """The event's auth events (with rejection marks), fetching missing ones."""
        ids = list(dict.fromkeys(event.auth_event_ids))
        stored = await self._stores.events.get_events(ids)
        missing = [i for i in ids if i not in stored]
        if missing:
            chain = await self._fetcher.event_auth(origin, event.room_id, event.event_id)
            if not chain:
                chain = await self._fetch_each(origin, missing)
            await self._persist_outliers_locked(origin, event.room_id, event.room_version, chain)
            stored = await self._stores.events.get_events(ids)
            if any(i not in stored for i in ids):
                return None
        return [
            stored[i].event.with_rejection(stored[i].rejected_reason)
            if stored[i].rejected_reason
            else stored[i].event
            for i in ids
        ]

    async def _fetch_each(self, origin: str, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(event_id: str) -> dict[str, Any] | None:
            async with limit:
                return await self._fetcher.event(origin, event_id)

        answers = await asyncio.gather(*(one(e) for e in event_ids))
        return [a for a in answers if a is not None]

    async def _persist_outliers_locked(
        self, origin: str, room_id: str, rv: RoomVersion, pdus: Sequence[Any]
    ) -> dict[str, StoredEvent]:
        return await self._persist_events_locked(origin, room_id, _parse_all(pdus, rv))

    async def _persist_events_locked(
        self, origin: str, room_id: str, parsed: Sequence[Event]
    ) -> dict[str, StoredEvent]:
        """Steps 2-4 for a batch of parsed events, stored as outliers in batches.

        Events already held are not checked again. The others go in auth-chain order,
        ``OUTLIER_BATCH`` at a time: checked for signatures (keys fetched once per
        part) and hashes, then against their auth events (read once from the
        database or taken from the batch itself), then stored, the storing of one
        part overlapping the signature checks of the next (ed25519 and SQLite both
        run off the GIL). An event whose signatures fail is left out, and so is every
        event citing it.
        """
        copies: dict[str, list[Event]] = {}
        for event in parsed:
            if event.room_id != room_id:
                continue
            same_id = copies.setdefault(event.event_id, [])
            if not any(c.pdu == event.pdu for c in same_id):
                same_id.append(event)
        held = await self._stores.events.get_events(list(copies))
        unchecked = {i: same_id for i, same_id in copies.items() if i not in held}
        create_id = "$" + room_id[1:]
        cited = {a for same_id in unchecked.values() for e in same_id for a in e.auth_event_ids}
        outside = {a for a in cited if a not in unchecked and a not in held}
        if any(e.room_version.room_id_from_create_event for e in parsed):
            outside.add(create_id)
        known = dict(held)
        known.update(await self._stores.events.get_events(list(outside)))
        # auth events as the checks take them: marked with their rejection
        auth_view = {
            i: s.event.with_rejection(s.rejected_reason) if s.rejected_reason else s.event
            for i, s in known.items()
        }
        create = known[create_id].event if create_id in known else None
        order = [e.event_id for e in _auth_order(same_id[-1] for same_id in unchecked.values())]
        storing: asyncio.Task[list[StoredEvent]] | None = None
        try:
            for start in range(0, len(order), OUTLIER_BATCH):
                part = order[start : start + OUTLIER_BATCH]
                events: dict[str, Event] = {}
                batch = [e for i in part for e in unchecked[i]]
                for item in await check_signatures_and_hashes(self._verifier, batch):
                    if isinstance(item, CheckedPdu):
                        events[item.event.event_id] = item.event  # the last good copy
                items: list[tuple[Event, EventContext]] = []
                for event_id in part:
                    if event_id not in events:
                        continue  # its signatures failed
                    event = events[event_id]
                    auth_ids = list(dict.fromkeys(event.auth_event_ids))
                    if any(a not in auth_view for a in auth_ids):
                        logger.info("outlier %s from %s: unknown auth events", event_id, origin)
                        continue
                    rejected = _auth_events_error(
                        event,
                        [auth_view[a] for a in auth_ids],
                        create
                        if event.room_version.room_id_from_create_event
                        and event.type != "m.room.create"
                        else None,
                    )
                    items.append(
                        (
                            event,
                            EventContext(state_before={}, outlier=True, rejected_reason=rejected),
                        )
                    )
                    auth_view[event_id] = event.with_rejection(rejected) if rejected else event
                    if event_id == create_id and create is None:
                        create = event
                if storing is not None:
                    held.update((s.event_id, s) for s in await storing)
                    storing = None
                if items:
                    storing = asyncio.create_task(self._persister.persist_outliers(items))
            if storing is not None:
                held.update((s.event_id, s) for s in await storing)
                storing = None
        finally:
            if storing is not None:  # failed meanwhile: the part being stored is awaited
                await asyncio.gather(storing, return_exceptions=True)
        return held

    # -- the state before an event ------------------------------------------------------

    async def _state_before(
        self, origin: str, event: Event, fetch_missing: bool
    ) -> StateMap | None:
        prev_ids = list(dict.fromkeys(event.prev_event_ids))
        if not prev_ids:
            return {} if event.type == "m.room.create" else None
        usable = await self._usable_prevs(prev_ids)
        if len(usable) < len(prev_ids) and fetch_missing:
            await self._fetch_missing_prevs(origin, event)
            usable = await self._usable_prevs(prev_ids)
        if len(usable) == len(prev_ids):
            return await self._resolver.state_after_events(event.room_id, usable)
        if fetch_missing:
            # A pushed event whose prev events its sender will not give: dropped, as
            # Synapse does ("isn't divulging details about prev_events"). Taking the
            # sender's word for the state here would let it become the only forward
            # extremity with whatever state it claims.
            logger.info("%s from %s: prev events still unknown", event.event_id, origin)
            return None
        return await self._state_with_remote_prevs(origin, event, prev_ids, usable)

    async def _usable_prevs(self, prev_ids: Sequence[str]) -> list[str]:
        stored = await self._stores.events.get_events(prev_ids)
        return [e for e, s in stored.items() if not s.outlier and s.state_group is not None]

    async def _fetch_missing_prevs(self, origin: str, event: Event) -> None:
        """``/get_missing_events`` between our forward extremities and the event."""
        room_id = event.room_id
        extremities = await self._stores.events.get_forward_extremities(room_id)
        # The room's own lowest depth, as Synapse asks: a branch missed here may start
        # far below our extremities (sent by a server that had not seen them).
        min_depth = await self._stores.events.min_depth(room_id)
        pdus = await self._fetcher.missing_events(
            origin, room_id, extremities, [event.event_id], min_depth, MAX_MISSING_EVENTS
        )
        checked = await check_pdus(self._verifier, pdus, event.room_version)
        missing = [
            c.event for c in checked if isinstance(c, CheckedPdu) and c.event.room_id == room_id
        ]
        for prev in sorted(missing, key=lambda e: e.depth):
            if prev.event_id == event.event_id:
                continue
            error = await self._process_new(origin, prev, False)
            if error is not None:
                logger.info("missing event %s from %s: %s", prev.event_id, origin, error)

    async def _state_with_remote_prevs(
        self, origin: str, event: Event, prev_ids: Sequence[str], usable: Sequence[str]
    ) -> StateMap | None:
        """The state before ``event`` when some of its prev events are still unknown
        (or only outliers): the state after each of those as ``origin`` gives it
        (``/state_ids`` at the prev event, plus the prev event itself when it is an
        accepted state event), resolved with the state after the prev events we hold,
        as Synapse computes it."""
        room_id = event.room_id
        sets = await self._resolver.states_after(usable)
        for prev_id in prev_ids:
            if prev_id in usable:
                continue
            state = await self._state_from_remote(origin, room_id, event.room_version, prev_id)
            if state is None:
                return None
            prev_event = await self._stores.events.get_event(prev_id)
            if prev_event is None:
                pdus = await self._fetch_each(origin, [prev_id])
                held = await self._persist_outliers_locked(
                    origin, room_id, event.room_version, pdus
                )
                prev_event = held.get(prev_id)
            if prev_event is None:
                logger.info("prev event %s of %s is unavailable", prev_id, event.event_id)
                return None
            key = prev_event.event.state_tuple
            if key is not None and prev_event.rejected_reason is None:
                state = {**state, key: prev_id}
            sets.append(state)
        return await self._resolver.resolve(room_id, sets)

    async def _state_from_remote(
        self, origin: str, room_id: str, rv: RoomVersion, at_event_id: str
    ) -> StateMap | None:
        """The state before ``at_event_id`` as ``origin`` gives it (``/state_ids``)."""
        remote = await self._fetcher.state_ids(origin, room_id, at_event_id)
        if remote is None:
            return None
        wanted = list(dict.fromkeys(remote.state_ids + remote.auth_chain_ids))
        held = await self._stores.events.get_events(wanted)
        missing = [e for e in wanted if e not in held]
        if missing:
            if len(missing) > MAX_SINGLE_EVENT_FETCHES:
                full = await self._fetcher.state(origin, room_id, at_event_id)
                pdus = full.pdus if full is not None else []
            else:
                pdus = await self._fetch_each(origin, missing)
            await self._persist_outliers_locked(origin, room_id, rv, pdus)
            held = await self._stores.events.get_events(remote.state_ids)
        state: StateMap = {}
        for event_id in remote.state_ids:
            stored = held.get(event_id)
            if stored is None:
                logger.info("state event %s from %s is unavailable", event_id, origin)
                return None
            key = stored.event.state_tuple
            if key is not None and stored.rejected_reason is None:
                state[key] = event_id
        return state


def _parse_all(pdus: Sequence[Any], rv: RoomVersion) -> list[Event]:
    """Step 1 for a batch: the valid PDUs as events (invalid ones are dropped)."""
    parsed = (parse_pdu(p, rv) for p in pdus)
    return [p for p in parsed if isinstance(p, Event)]


def _auth_events_error(
    event: Event, auth_events: Sequence[Event], create: Event | None
) -> str | None:
    """Step 4: why ``event`` is not allowed by its auth events (None: it is).
    ``create`` is the room's create event when the version does not cite it."""
    try:
        check_auth_events(event, auth_events)
        state = auth_state_from_events(auth_events, create)
        check_auth(event, state)
    except AuthError as exc:
        return f"not allowed by its auth events ({exc.rule}): {exc}"
    return None


def _may_de_outlier(held: StoredEvent) -> bool:
    """Whether a held event is an accepted outlier (fetched as an auth or state event,
    not out-of-band) that may join the timeline when received as a new event."""
    return held.outlier and held.rejected_reason is None and held.stream_ordering is None


def _auth_order(events: Sequence[Event] | Any) -> list[Event]:
    """Events ordered so each comes after the batch's events it cites as auth events:
    in waves (those citing none of the batch's pending events first), each wave in
    depth order; what a cycle leaves is appended in depth order. Linear in the
    batch's size (each event is counted down once per auth event it cites)."""
    pending = {e.event_id: e for e in sorted(events, key=lambda e: e.depth)}
    position = {event_id: i for i, event_id in enumerate(pending)}
    waiting_on: dict[str, int] = {}
    dependants: dict[str, list[str]] = {}
    wave: list[str] = []
    for event_id, event in pending.items():
        cited = {a for a in event.auth_event_ids if a in pending}
        waiting_on[event_id] = len(cited)
        for auth_id in cited:
            dependants.setdefault(auth_id, []).append(event_id)
        if not cited:
            wave.append(event_id)
    ordered: list[Event] = []
    while wave:
        following: list[str] = []
        for event_id in wave:
            ordered.append(pending[event_id])
            for dependant in dependants.get(event_id, ()):
                waiting_on[dependant] -= 1
                if waiting_on[dependant] == 0:
                    following.append(dependant)
        wave = sorted(following, key=position.__getitem__)
    if len(ordered) < len(pending):  # a cycle: the rest in depth order
        placed = {e.event_id for e in ordered}
        ordered += [e for i, e in pending.items() if i not in placed]
    return ordered


def _prev_order(events: Sequence[Event] | Any) -> list[Event]:
    """Events ordered so each comes after the batch's events it cites as prev events
    (depth order, which a well-formed DAG already follows, breaks the ties)."""
    pending = {e.event_id: e for e in sorted(events, key=lambda e: (e.depth, e.event_id))}
    ordered: list[Event] = []
    while pending:
        ready = [e for e in pending.values() if not any(p in pending for p in e.prev_event_ids)]
        if not ready:  # a cycle (forged prev events): fall back to depth order
            ready = list(pending.values())
        for e in ready:
            ordered.append(e)
            del pending[e.event_id]
    return ordered
