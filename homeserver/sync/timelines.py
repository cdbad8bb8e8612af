"""Timelines of the rooms in a /sync response (client-server API: "Syncing", and
"Room History Visibility" for what a user may see).

Each room asks for its latest events in (after, upto]; every event there is the
user's to see (they were joined, or it is the incremental window of a room they were
in), so the common incremental sync reads them in one batched statement and checks
nothing. A selective timeline filter reads older events in further batched rounds.

A timeline read from scratch (an initial sync, a newly joined room, a room left
without having been seen joined) is sure of the events from the user's run of joins
on, but history visibility may show them earlier ones. Only when the timeline limit
reaches back to the join is it decided how far before it to read, from the history
visibility in force at the join (the join event's state) and the user's earlier
memberships:

- ``world_readable`` or ``shared`` (or none), never changed: everything before the
  join is visible (``shared``: the user joined after those events), and is read
  without checks;
- ``joined`` never changed, the user never joined before: nothing before the join;
- ``invited`` never changed, no earlier join or invite: the events from the invites
  right before the join, without checks;
- otherwise (the visibility changed, earlier memberships): the earlier events are
  filtered with the history visibility rules (``filter_events_for_user``), for a
  bounded number of rounds.

"Never changed" means the ``m.room.history_visibility`` event in force replaced none.
The events of a new room before its first history visibility event count as
``shared`` to the rules; the ``joined`` and ``invited`` cases above leave them out,
as a user joining a private room expects.

An event history visibility hides is still shown when it is a state event of the
room's current state (as Synapse does: a member who joined while the user was away
appears in the timeline of their rejoin).

``limited`` is set when events the user may see come before the returned ones, or
may: when the rounds ran out before the earliest wanted event was read.

Events past their room's message retention policy are never shown (read as if not
stored), whatever the history visibility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from homeserver.rooms.visibility import (
    INVITED,
    JOINED,
    SHARED,
)
from homeserver.sync.filters import RoomEventFilter
from homeserver.sync.memberships import JoinRun
from storage.events import StoredEvent
from storage.stores import Stores
from storage.sync import EventPosition, SyncStore

# A selective timeline filter, or a visibility check, reads older events in batches
# of this size, this often.
REFILL_BATCH = 100
REFILL_ROUNDS = 5
# A trivial filter reading past the join reads at least this many events per round.
_MIN_BATCH = 20


class VisibleEvents(Protocol):
    async def filter_events_for_user(
        self, user_id: str, events: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        """The events of ``events`` that ``user_id`` may see, in the same order."""
        ...

    async def visibility_at(self, event_ids: Sequence[str]) -> dict[str, tuple[str | None, bool]]:
        """For each event: the history visibility in force at it (None: no such state
        event) and whether that state event replaced another; unknown state left out."""
        ...

    async def drop_expired(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """``events`` without those past their room's message retention policy."""
        ...


@dataclass
class TimelineRead:
    """One room's timeline: its latest events the user may see up to ``upto``."""

    room_id: str
    after: int  # every event in (after, upto] is the user's to see
    upto: int
    run: JoinRun | None = None  # read from scratch: events at or before ``after`` may be too
    events: list[StoredEvent] = field(default_factory=list)  # the result, oldest first
    limited: bool = False


@dataclass
class _Cursor:
    """How far one read got: the rows in (reached, upto] are read, none at or before
    ``lower`` is wanted, those at or before ``checked_below`` are filtered by
    visibility."""

    read: TimelineRead
    reached: int
    lower: int
    checked_below: int | None = None
    reached_back: bool = False  # ``lower`` was decided from the visibility at the join
    kept: list[StoredEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Reach:
    """How far before the join a timeline read from scratch goes."""

    lower: int  # no event at or before this position is wanted
    checked_below: int | None  # events at or before this are filtered by visibility


def reach_before_join(run: JoinRun, visibility: str | None, changed: bool) -> Reach:
    """How far back the events before the join may be visible (module docstring).

    ``visibility``: the history visibility in force at the join (None: no such
    event); ``changed``: that event replaced an earlier one.
    """
    if changed:
        return Reach(0, run.floor)
    value = SHARED if visibility is None else visibility
    if value == JOINED:
        return Reach(run.floor, None) if "join" not in run.earlier else Reach(0, run.floor)
    if value == INVITED:
        if run.earlier & {"join", "invite"}:
            return Reach(0, run.floor)
        start = run.invited or run.first
        return Reach(start.stream - 1, None)
    return Reach(0, None)  # world_readable, shared


def event_view(stored: StoredEvent) -> dict[str, Any]:
    """The fields filters look at."""
    event = stored.event
    return {
        "type": event.type,
        "sender": event.sender,
        "room_id": event.room_id,
        "content": event.content,
    }


def _is_trivial(f: RoomEventFilter) -> bool:
    return (
        f.types is None
        and not f.not_types
        and f.senders is None
        and not f.not_senders
        and f.rooms is None
        and not f.not_rooms
        and f.contains_url is None
    )


class TimelineReader:
    def __init__(self, stores: Stores, sync_store: SyncStore, visibility: VisibleEvents) -> None:
        self._stores = stores
        self._sync_store = sync_store
        self._visibility = visibility

    async def read(
        self,
        user_id: str,
        reads: Sequence[TimelineRead],
        timeline_filter: RoomEventFilter,
        limit: int,
    ) -> None:
        """Fill ``events`` (the latest ``limit`` kept) and ``limited`` of each read."""
        if timeline_filter.matches_nothing or limit <= 0:
            return
        cursors = [_Cursor(r, r.upto, r.after) for r in reads if r.after < r.upto]
        trivial = _is_trivial(timeline_filter)
        await self._round(user_id, cursors, limit + 1, timeline_filter, trivial)
        for rounds in range(REFILL_ROUNDS + 1):
            to_decide = [
                c
                for c in cursors
                if c.read.run is not None
                and not c.reached_back
                and c.reached <= c.lower
                and len(c.kept) <= limit
            ]
            if to_decide:
                await self._reach_back(to_decide)
            needy = [c for c in cursors if len(c.kept) <= limit and c.reached > c.lower]
            if not needy or rounds == REFILL_ROUNDS:
                break
            if trivial and all(c.checked_below is None for c in needy):
                batch = max(_MIN_BATCH, limit + 1 - min(len(c.kept) for c in needy))
            else:
                batch = REFILL_BATCH
            await self._round(user_id, needy, batch, timeline_filter, trivial)
        for c in cursors:
            c.read.limited = len(c.kept) > limit or c.reached > c.lower
            c.read.events = c.kept[-limit:]

    async def _round(
        self,
        user_id: str,
        cursors: Sequence[_Cursor],
        batch: int,
        timeline_filter: RoomEventFilter,
        trivial: bool,
    ) -> None:
        """Read up to ``batch`` older rows of each room (one statement for all)."""
        found = await self._sync_store.latest_events(
            [(c.read.room_id, c.lower, c.reached) for c in cursors], batch
        )
        ids = [e.event_id for events in found.values() for e in events]
        stored = await self._stores.events.get_events(ids) if ids else {}
        # expired events (message retention) are never shown: as if not stored
        kept = await self._visibility.drop_expired(list(stored.values()))
        if len(kept) < len(stored):
            stored = {e.event_id: e for e in kept}
        checked = [
            stored[e.event_id]
            for c in cursors
            if c.checked_below is not None
            for e in found.get(c.read.room_id, [])
            if e.stream <= c.checked_below and e.event_id in stored
        ]
        visible: set[str] = set()
        if checked:
            shown = await self._visibility.filter_events_for_user(user_id, checked)
            visible = {e.event_id for e in shown}
            stored.update((e.event_id, e) for e in shown)  # erased senders' events pruned
            visible |= await self._in_current_state(
                [e for e in checked if e.event_id not in visible]
            )
        await self._prune_erased(user_id, cursors, found, stored)
        for c in cursors:
            positions = found.get(c.read.room_id, [])
            rows = [stored[e.event_id] for e in positions if self._shown(c, e, stored, visible)]
            if not trivial:
                rows = [e for e in rows if timeline_filter.matches(event_view(e))]
            c.kept = rows + c.kept
            c.reached = positions[0].stream - 1 if len(positions) >= batch else c.lower

    async def _in_current_state(self, hidden: Sequence[StoredEvent]) -> set[str]:
        """The state events of ``hidden`` that are still the rooms' current state:
        shown in the timeline whatever the history visibility (as Synapse shows
        them), so a client that builds state from the timeline sees, say, a member
        who joined while the user was away."""
        found: set[str] = set()
        by_room: dict[str, list[tuple[tuple[str, str], str]]] = {}
        for stored in hidden:
            key = stored.event.state_tuple
            if key is not None:
                by_room.setdefault(stored.event.room_id, []).append((key, stored.event_id))
        for room_id, keyed in by_room.items():
            current = await self._stores.state.get_current_state(room_id)
            found.update(event_id for key, event_id in keyed if current.get(key) == event_id)
        return found

    async def _prune_erased(
        self,
        user_id: str,
        cursors: Sequence[_Cursor],
        found: dict[str, list[EventPosition]],
        stored: dict[str, StoredEvent],
    ) -> None:
        """Events from before the user's join whose sender asked to be erased are
        shown pruned (the visibility filter decides, by the user's membership at
        each), even where the history visibility needs no check."""
        before_join = [
            stored[e.event_id]
            for c in cursors
            if c.read.run is not None
            for e in found.get(c.read.room_id, [])
            if e.stream <= c.read.run.floor and e.event_id in stored
        ]
        if not before_join:
            return
        erased = await self._stores.accounts.erased_among({e.event.sender for e in before_join})
        pruned = [e for e in before_join if e.event.sender in erased]
        if pruned:
            shown = await self._visibility.filter_events_for_user(user_id, pruned)
            stored.update((e.event_id, e) for e in shown)

    @staticmethod
    def _shown(
        cursor: _Cursor,
        position: EventPosition,
        stored: dict[str, StoredEvent],
        visible: set[str],
    ) -> bool:
        if position.event_id not in stored:
            return False
        if cursor.checked_below is None or position.stream > cursor.checked_below:
            return True
        return position.event_id in visible

    async def _reach_back(self, cursors: Sequence[_Cursor]) -> None:
        """Lower the cursors that got to their join as far as the history visibility
        at the join allows (``reach_before_join``)."""
        runs = [c.read.run for c in cursors if c.read.run is not None]
        at_joins = await self._visibility.visibility_at([run.first.event_id for run in runs])
        for cursor, run in zip(cursors, runs, strict=True):
            at_join = at_joins.get(run.first.event_id)
            reach = Reach(0, run.floor) if at_join is None else reach_before_join(run, *at_join)
            cursor.lower, cursor.checked_below = reach.lower, reach.checked_below
            cursor.reached_back = True
