"""Relations between events: child events, thread listing, bundled aggregations.

Client-server API "Forming relationships between events" ("Relationships API",
"Aggregations of child events"), and the server behaviour of the modules "Event
replacements" (``m.replace``: the most recent valid edit, by ``origin_server_ts``
then ``event_id``; none for a redacted original), "Threading" (``m.thread``:
``latest_event``, ``count``, ``current_user_participated``; ``GET /threads``) and
"Reference relations" (``m.reference``: a ``chunk`` of event IDs). Annotations are
not aggregated. State events get no bundled aggregations. Redacted children do not
count (redaction breaks the relationship); children the user may not see are left
out of the edit, the latest thread event and the references. Users banned from a
room may list neither its threads nor its relations: 403, as threads_list.yaml says
for /threads, and the same for /relations, which would otherwise be a way round it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from homeserver.errors import InvalidParam, MatrixError
from homeserver.rooms.history import Position, RoomHistory, position_token
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.streams import SyncToken, TopologicalToken, parse_pagination_token
from storage.events import StoredEvent
from storage.relations import ChildRow
from storage.stores import Stores

MAX_RECURSION_DEPTH = 3


@dataclass(frozen=True)
class ThreadSummary:
    latest_event: StoredEvent
    count: int
    current_user_participated: bool


@dataclass
class Aggregation:
    """The bundled aggregations of one parent event (``unsigned.m.relations``)."""

    replace: StoredEvent | None = None
    thread: ThreadSummary | None = None
    references: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.replace is not None or self.thread is not None or bool(self.references)


@dataclass(frozen=True)
class RelationsPage:
    chunk: list[StoredEvent]
    next_batch: str | None
    prev_batch: str | None
    recursion_depth: int | None


@dataclass(frozen=True)
class ThreadsPage:
    chunk: list[StoredEvent]
    next_batch: str | None


def _relation_of(stored: StoredEvent) -> str | None:
    relates = stored.event.content.get("m.relates_to")
    if isinstance(relates, dict) and isinstance(relates.get("rel_type"), str):
        return str(relates["rel_type"])
    return None


class RelationsService:
    def __init__(self, stores: Stores, visibility: HistoryVisibility, history: RoomHistory) -> None:
        self._stores = stores
        self._visibility = visibility
        self._history = history

    # -- GET /relations ----------------------------------------------------------------

    async def relations(
        self,
        user_id: str,
        room_id: str,
        event_id: str,
        *,
        rel_type: str | None,
        event_type: str | None,
        from_token: str | None,
        to_token: str | None,
        limit: int,
        backwards: bool,
        recurse: bool,
    ) -> RelationsPage:
        """The children of a parent the user may see, topologically most recent first."""
        await self._visibility.room_access(user_id, room_id, allow_banned=False)
        await self._history.visible_event(user_id, room_id, event_id)
        start = await self._boundary(room_id, from_token)
        end = await self._boundary(room_id, to_token)
        if recurse:
            rows = await self._descendants(room_id, event_id, rel_type, event_type)
            rows = [r for r in rows if _within(r, start, end, backwards)]
            rows.sort(key=lambda r: (r.depth, r.stream_ordering), reverse=backwards)
            more = len(rows) > limit
            rows = rows[:limit]
        else:
            rows = await self._stores.relations.children(
                room_id,
                [event_id],
                rel_type=rel_type,
                event_type=event_type,
                backwards=backwards,
                start=start,
                end=end,
                limit=limit + 1,
            )
            more = len(rows) > limit
            rows = rows[:limit]
        events = await self._stores.events.get_events([r.event_id for r in rows])
        ordered = [events[r.event_id] for r in rows if r.event_id in events]
        chunk = await self._visibility.filter_events_for_user(user_id, ordered)
        next_batch = None
        if more and rows:
            last = rows[-1]
            position = (
                (last.depth, last.stream_ordering)
                if backwards
                else (last.depth, last.stream_ordering + 1)
            )
            next_batch = position_token(position)
        return RelationsPage(
            chunk, next_batch, from_token, MAX_RECURSION_DEPTH if recurse else None
        )

    async def _boundary(self, room_id: str, token: str | None) -> Position | None:
        if token is None:
            return None
        try:
            return await self._history.boundary(room_id, token)
        except MatrixError as exc:
            raise InvalidParam("Unknown pagination token") from exc

    async def _descendants(
        self, room_id: str, event_id: str, rel_type: str | None, event_type: str | None
    ) -> list[ChildRow]:
        """Children up to MAX_RECURSION_DEPTH levels down, each level matching the filters."""
        seen = {event_id}
        found: list[ChildRow] = []
        parents = [event_id]
        for _level in range(MAX_RECURSION_DEPTH):
            rows = await self._stores.relations.children(
                room_id, parents, rel_type=rel_type, event_type=event_type
            )
            parents = []
            for row in rows:
                if row.event_id not in seen:
                    seen.add(row.event_id)
                    found.append(row)
                    parents.append(row.event_id)
            if not parents:
                break
        return found

    # -- GET /threads ------------------------------------------------------------------

    async def threads(
        self,
        user_id: str,
        room_id: str,
        *,
        participated_only: bool,
        from_token: str | None,
        limit: int,
    ) -> ThreadsPage:
        """Thread roots of the room the user may see, latest reply first."""
        await self._visibility.room_access(user_id, room_id, allow_banned=False)
        before_stream: int | None = None
        if from_token is not None:
            try:
                parsed = parse_pagination_token(from_token)
            except MatrixError as exc:
                raise InvalidParam("Unknown pagination token") from exc
            if isinstance(parsed, TopologicalToken):
                before_stream = parsed.stream - 1
            else:
                before_stream = parsed.events
        rows = await self._stores.relations.thread_roots(
            room_id,
            before_stream=before_stream,
            participant=user_id if participated_only else None,
            limit=limit,
        )
        roots = await self._stores.events.get_events([r for r, _ in rows])
        ordered = [roots[r] for r, _ in rows if r in roots]
        chunk = await self._visibility.filter_events_for_user(user_id, ordered)
        next_batch = None
        if len(rows) == limit:
            next_batch = SyncToken(events=rows[-1][1] - 1).serialize()
        return ThreadsPage(chunk, next_batch)

    # -- bundled aggregations ----------------------------------------------------------

    async def bundle(self, events: Sequence[StoredEvent], user_id: str) -> dict[str, Aggregation]:
        """The bundled aggregations of ``events`` for ``user_id``, by parent event ID.

        Three queries however many events: edits and references, thread summaries,
        and the latest thread events; then one visibility pass over the children.
        """
        parents = {
            e.event_id: e
            for e in events
            if not e.event.is_state and not e.outlier and e.rejected_reason is None
        }
        if not parents:
            return {}
        relations = self._stores.relations
        edits: dict[str, list[ChildRow]] = {}
        references: dict[str, list[ChildRow]] = {}
        for row in await relations.edits_and_references(list(parents)):
            parent = parents.get(row.parent_id)
            if parent is None or row.room_id != parent.event.room_id:
                continue
            if row.rel_type == "m.replace":
                if _valid_edit_candidate(parent, row):
                    edits.setdefault(parent.event_id, []).append(row)
            else:
                references.setdefault(parent.event_id, []).append(row)
        summaries = [
            s
            for s in await relations.thread_summaries(list(parents), user_id)
            if s.room_id == parents[s.root_id].event.room_id
        ]
        latest_ids = await relations.event_ids_at_streams([s.latest_stream for s in summaries])

        wanted = {r.event_id for rows in edits.values() for r in rows}
        wanted |= {r.event_id for rows in references.values() for r in rows}
        wanted |= set(latest_ids.values())
        loaded = await self._stores.events.get_events(wanted) if wanted else {}
        visible = {
            e.event_id
            for e in await self._visibility.filter_events_for_user(user_id, list(loaded.values()))
        }

        result: dict[str, Aggregation] = {}
        for parent_id, rows in edits.items():
            rows.sort(key=lambda r: (r.origin_server_ts, r.event_id), reverse=True)
            for row in rows:
                edit = loaded.get(row.event_id)
                if edit is not None and row.event_id in visible and _has_new_content(edit):
                    result.setdefault(parent_id, Aggregation()).replace = edit
                    break
        for parent_id, rows in references.items():
            rows.sort(key=lambda r: (r.depth, r.stream_ordering))
            chunk = [r.event_id for r in rows if r.event_id in visible]
            if chunk:
                result.setdefault(parent_id, Aggregation()).references = chunk
        for summary in summaries:
            root = parents[summary.root_id]
            latest = loaded.get(latest_ids.get(summary.latest_stream, ""))
            if latest is None or latest.event_id not in visible:
                latest = await self._latest_visible_in_thread(user_id, root)
            if latest is None:
                continue
            result.setdefault(root.event_id, Aggregation()).thread = ThreadSummary(
                latest,
                summary.count,
                summary.user_participated or root.event.sender == user_id,
            )
        return result

    async def _latest_visible_in_thread(
        self, user_id: str, root: StoredEvent
    ) -> StoredEvent | None:
        rows = await self._stores.relations.children(
            root.event.room_id, [root.event_id], rel_type="m.thread", limit=50
        )
        loaded = await self._stores.events.get_events([r.event_id for r in rows])
        ordered = [loaded[r.event_id] for r in rows if r.event_id in loaded]
        visible = await self._visibility.filter_events_for_user(user_id, ordered)
        return visible[0] if visible else None


def _within(row: ChildRow, start: Position | None, end: Position | None, backwards: bool) -> bool:
    position = (row.depth, row.stream_ordering)
    before, at_or_after = (start, end) if backwards else (end, start)
    if before is not None and not position < before:
        return False
    return at_or_after is None or position >= at_or_after


def _valid_edit_candidate(original: StoredEvent, row: ChildRow) -> bool:
    """Event replacements: "Validity of replacement events" (what the row can tell)."""
    return (
        original.redacted_by is None
        and row.sender == original.event.sender
        and row.type == original.event.type
        and not row.is_state
        and not original.event.is_state
        and _relation_of(original) != "m.replace"
    )


def _has_new_content(edit: StoredEvent) -> bool:
    if edit.event.type == "m.room.encrypted":
        return True  # m.new_content is inside the encrypted payload
    return isinstance(edit.event.content.get("m.new_content"), dict)
