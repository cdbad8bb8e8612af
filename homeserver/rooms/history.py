"""Reading a room's history: /messages pagination, /context and timestamp_to_event.

Client-server API "Getting events for a room" (``GET /rooms/{roomId}/messages``,
``GET /rooms/{roomId}/context/{eventId}``, ``GET /rooms/{roomId}/timestamp_to_event``).

Positions in a room's history are *boundaries* in topological order (depth, then
stream ordering): ``t<depth>-<stream>`` separates the events before (depth, stream)
from those at or after it. Paginating backwards from a boundary gives the events
before it, newest first; forwards gives the events at or after it, oldest first. A
sync token (``s...``) stands for the boundary just after the latest event of the
room at or before its events position. Every page is filtered by history visibility
(``homeserver.rooms.visibility``) and by the request's RoomEventFilter; a page
whose rows are all filtered out is refilled a few times before it is returned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from homeserver.errors import NotFound
from homeserver.rooms.visibility import HistoryVisibility, RoomAccess
from homeserver.streams import SyncToken, TopologicalToken, parse_pagination_token
from homeserver.sync.filters import RoomEventFilter
from storage.events import StoredEvent
from storage.stores import Stores

Position = tuple[int, int]  # (depth, stream_ordering) boundary

START_OF_ROOM: Position = (0, 0)
MAX_ROUNDS = 5
MAX_FETCH = 1000
TIMESTAMP_PAGE = 50  # timestamp_to_event candidates read at a time


def position_token(position: Position) -> str:
    return TopologicalToken(position[0], position[1]).serialize()


def after(stored: StoredEvent) -> Position:
    """The boundary just after an event (it falls before the boundary)."""
    return stored.depth, (stored.stream_ordering or 0) + 1


def at(stored: StoredEvent) -> Position:
    """The boundary just before an event (it falls after the boundary)."""
    return stored.depth, stored.stream_ordering or 0


@dataclass
class Scan:
    """One page read in one direction."""

    events: list[StoredEvent] = field(default_factory=list)
    position: Position = START_OF_ROOM  # boundary after the last row consumed
    exhausted: bool = False


@dataclass(frozen=True)
class MessagesPage:
    chunk: list[StoredEvent]
    start: str
    end: str | None
    state: list[StoredEvent]


@dataclass(frozen=True)
class EventContextResult:
    event: StoredEvent
    before: list[StoredEvent]
    after: list[StoredEvent]
    start: str
    end: str
    state: list[StoredEvent]


class Backfiller(Protocol):
    async def backfill(self, room_id: str, min_depth: int, max_depth: int) -> bool:
        """Fetch the history missing before the room's backward extremities cited at
        depths in ``[min_depth, max_depth]``; True when events were added."""
        ...


class RoomHistory:
    def __init__(self, stores: Stores, visibility: HistoryVisibility) -> None:
        self._stores = stores
        self._visibility = visibility
        # federation: fills in history this server does not hold (None: single server)
        self.backfiller: Backfiller | None = None

    # -- tokens -------------------------------------------------------------------------

    async def boundary(self, room_id: str, token: str) -> Position:
        """The boundary a /messages, /sync or relations token stands for (400 if malformed)."""
        parsed = parse_pagination_token(token)
        if isinstance(parsed, TopologicalToken):
            return parsed.depth, parsed.stream
        return await self._boundary_of_stream(room_id, parsed)

    async def _boundary_of_stream(self, room_id: str, token: SyncToken) -> Position:
        depth, stream = await self._stores.events.topological_position(token.events, room_id)
        if depth == 0 and stream == 0:
            return START_OF_ROOM
        return depth, stream + 1

    async def end_of_room(self, room_id: str) -> Position:
        latest = await self._stores.events.latest_topological_position(room_id)
        return START_OF_ROOM if latest is None else (latest[0], latest[1] + 1)

    # -- /messages ----------------------------------------------------------------------

    async def paginate(
        self,
        user_id: str,
        room_id: str,
        *,
        backwards: bool,
        from_token: str | None,
        to_token: str | None,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> MessagesPage:
        """A page of ``GET /rooms/{roomId}/messages``."""
        access = await self._visibility.room_access(user_id, room_id)
        if from_token is not None:
            start = await self.boundary(room_id, from_token)
        elif backwards:
            start = await self.end_of_room(room_id)
        else:
            start = START_OF_ROOM
        to = await self.boundary(room_id, to_token) if to_token is not None else None
        cap = self._departure_cap(access)
        if cap is not None:
            # Nothing after a departed user's membership event is theirs to see.
            if backwards:
                start = min(start, cap)
            else:
                to = cap if to is None else min(to, cap)
        start_token = from_token if from_token is not None else position_token(start)
        if limit == 0:
            return MessagesPage([], start_token, start_token, [])
        scan = await self.scan(
            user_id, room_id, start, backwards=backwards, limit=limit, to=to, filter=event_filter
        )
        if backwards and self.backfiller is not None:
            # History missing between the start and where this page stopped (or before
            # the earliest event held, when it ran out): fetch it, then read again.
            floor = to[0] if to is not None else 0
            reached = floor if scan.exhausted else scan.position[0]
            # A gap is recorded at the depth of the event that cites the missing one:
            # the first event after the start may cite a gap the page runs into (a
            # sync's prev_batch stands just before it, at an older depth).
            following = await self._stores.events.depth_from(room_id, *start)
            top = start[0] if following is None else max(start[0], following)
            if await self.backfiller.backfill(room_id, reached, top):
                scan = await self.scan(
                    user_id,
                    room_id,
                    start,
                    backwards=backwards,
                    limit=limit,
                    to=to,
                    filter=event_filter,
                )
        state: list[StoredEvent] = []
        if event_filter is not None and event_filter.lazy_load_members and scan.events:
            state = await self.member_events_for_senders(scan.events[0], scan.events)
        # As Synapse: ``end`` comes with every page that has events, so a client pages on
        # until a page is empty and has none (the spec describes ``end`` as omitted once
        # no further events are available; the page after the last one is that answer).
        end = None if scan.exhausted and not scan.events else position_token(scan.position)
        return MessagesPage(scan.events, start_token, end, state)

    @staticmethod
    def _departure_cap(access: RoomAccess) -> Position | None:
        if access.departed and access.member_event is not None:
            return after(access.member_event)
        return None

    async def rows_from(
        self, room_id: str, start: Position, backwards: bool, limit: int, to: Position | None
    ) -> list[StoredEvent]:
        """Up to ``limit`` timeline rows read from the boundary ``start`` (toward
        ``to``), whoever may see them: a boundary stands before the event at its
        position, so reading forwards starts with that event."""
        depth, stream = start
        return await self._stores.events.paginate_room(
            room_id,
            depth=depth,
            stream=stream if backwards else stream - 1,
            backwards=backwards,
            limit=limit,
            to_depth=None if to is None else to[0],
            to_stream=None if to is None else (to[1] if backwards else to[1] - 1),
        )

    async def scan(
        self,
        user_id: str,
        room_id: str,
        start: Position,
        *,
        backwards: bool,
        limit: int,
        to: Position | None = None,
        filter: RoomEventFilter | None = None,
    ) -> Scan:
        """Up to ``limit`` events the user may see, reading from the boundary ``start``.

        The resulting position is the boundary after the last row read, so the next
        page starts exactly where this one stopped.
        """
        scan = Scan(position=start)
        if limit <= 0:
            return scan
        if filter is not None and (filter.matches_nothing or not filter.allows_room(room_id)):
            scan.exhausted = True
            return scan
        for _round in range(MAX_ROUNDS):
            wanted = limit - len(scan.events)
            fetch = min(max(wanted * 2, 20), MAX_FETCH)
            rows = await self.rows_from(room_id, scan.position, backwards, fetch, to)
            visible = {
                e.event_id: e for e in await self._visibility.filter_events_for_user(user_id, rows)
            }
            consumed = 0
            for stored in rows:
                consumed += 1
                scan.position = at(stored) if backwards else after(stored)
                if stored.event_id in visible and (
                    filter is None or filter.matches(stored.event.pdu)
                ):
                    scan.events.append(visible[stored.event_id])
                    if len(scan.events) >= limit:
                        break
            if len(rows) < fetch and consumed == len(rows):
                scan.exhausted = True
                break
            if len(scan.events) >= limit:
                break
        return scan

    async def member_events_for_senders(
        self, at_event: StoredEvent, events: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        """Lazy-loaded members: the membership events of the senders, as of ``at_event``."""
        if at_event.state_group is None:
            return []
        state = await self._stores.state.get_state(at_event.state_group)
        senders = dict.fromkeys(e.event.sender for e in events)
        ids = [state[("m.room.member", s)] for s in senders if ("m.room.member", s) in state]
        found = await self._stores.events.get_events(ids)
        return [found[i] for i in ids if i in found]

    # -- /context -----------------------------------------------------------------------

    async def context(
        self,
        user_id: str,
        room_id: str,
        event_id: str,
        *,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> EventContextResult:
        """``GET /rooms/{roomId}/context/{eventId}``: events around one, and the state."""
        access = await self._visibility.room_access(user_id, room_id)
        stored = await self.visible_event(user_id, room_id, event_id)
        before_limit = limit // 2
        after_limit = limit - before_limit
        before = await self.scan(
            user_id, room_id, at(stored), backwards=True, limit=before_limit, filter=event_filter
        )
        after_scan = await self.scan(
            user_id,
            room_id,
            after(stored),
            backwards=False,
            limit=after_limit,
            to=self._departure_cap(access),
            filter=event_filter,
        )
        last = after_scan.events[-1] if after_scan.events else stored
        state = await self._state_at(
            last, [*before.events, stored, *after_scan.events], event_filter
        )
        return EventContextResult(
            stored,
            before.events,
            after_scan.events,
            position_token(before.position),
            position_token(after_scan.position),
            state,
        )

    async def visible_event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        """A timeline event of the room the user may see; M_NOT_FOUND otherwise."""
        stored = await self._stores.events.get_event(event_id)
        if (
            stored is None
            or stored.event.room_id != room_id
            or stored.outlier
            or stored.rejected_reason is not None
            or stored.stream_ordering is None
        ):
            raise NotFound("Event not found")
        shown = await self._visibility.filter_events_for_user(user_id, [stored])
        if not shown:
            raise NotFound("Event not found")
        return shown[0]

    async def _state_at(
        self,
        last: StoredEvent,
        events: Sequence[StoredEvent],
        event_filter: RoomEventFilter | None,
    ) -> list[StoredEvent]:
        if event_filter is not None and event_filter.lazy_load_members:
            state_events = await self.member_events_for_senders(last, events)
        else:
            if last.state_group is None:
                return []
            state = await self._stores.state.get_state(last.state_group)
            found = await self._stores.events.get_events(list(state.values()))
            state_events = [found[e] for e in state.values() if e in found]
        if event_filter is not None:
            state_events = [s for s in state_events if event_filter.matches(s.event.pdu)]
        return state_events

    # -- /timestamp_to_event --------------------------------------------------------------

    async def event_at_timestamp(
        self, user_id: str, room_id: str, ts: int, *, forwards: bool
    ) -> StoredEvent:
        """The closest event the user may see at or after (``f``) / before (``b``) ``ts``."""
        await self._visibility.room_access(user_id, room_id)

        async def visible(events: list[StoredEvent]) -> list[StoredEvent]:
            return await self._visibility.filter_events_for_user(user_id, events)

        return await closest_visible_event(self._stores, room_id, ts, forwards, visible)


async def closest_visible_event(
    stores: Stores,
    room_id: str,
    ts: int,
    forwards: bool,
    visible: Callable[[list[StoredEvent]], Awaitable[list[StoredEvent]]],
) -> StoredEvent:
    """The closest event at or after (``forwards``) / before ``ts`` that ``visible``
    keeps (``/timestamp_to_event``, for a user or a server); M_NOT_FOUND if none.

    Candidates are read closest first in pages; a page with nothing visible moves the
    search on to the timestamp of its farthest event, until a visible one turns up or
    the room has no more. Events at that timestamp already read are skipped (several
    events can share a millisecond), and the next page is made big enough to get past
    them.
    """
    cursor = ts
    seen_at_cursor: set[str] = set()
    while True:
        limit = len(seen_at_cursor) + TIMESTAMP_PAGE
        candidates = await stores.events.events_by_timestamp(
            room_id, cursor, forwards=forwards, limit=limit
        )
        fresh = [c for c in candidates if c.event_id not in seen_at_cursor]
        shown = await visible(fresh)
        if shown:
            return shown[0]
        if len(candidates) < limit:
            direction = "forward" if forwards else "backward"
            raise NotFound(f"Unable to find event from {ts} in {direction} direction")
        farthest = candidates[-1].event.origin_server_ts
        if farthest != cursor:
            cursor, seen_at_cursor = farthest, set()
        seen_at_cursor.update(c.event_id for c in candidates if c.event.origin_server_ts == cursor)
