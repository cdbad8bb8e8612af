"""Server-side search: the index kept on write, and ``POST /search`` over it.

Events are indexed in the transaction that persists them (a persister txn hook) and
dropped from the index when a redaction takes effect. A search looks in the rooms
the user is joined to, as Synapse does; each match is shown only if the user may see
it (history visibility) and it passes the request's filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from homeserver.rooms.history import RoomHistory, after, at, position_token
from homeserver.rooms.member_lists import MemberListService
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.search.request import (
    SearchRequest,
    batch_token,
    indexed_text,
    parse_batch,
)
from storage.database import Transaction
from storage.events import StoredEvent
from storage.search import SearchHit, SearchScope
from storage.stores import Stores

MAX_ROUNDS = 10


@dataclass
class EventContext:
    before: list[StoredEvent]
    after: list[StoredEvent]
    start: str
    end: str
    profiles: dict[str, dict[str, str | None]]


@dataclass
class SearchResult:
    event: StoredEvent
    rank: float
    context: EventContext | None = None


@dataclass
class SearchPage:
    results: list[SearchResult] = field(default_factory=list)
    count: int = 0
    next_batch: str | None = None
    state: dict[str, list[StoredEvent]] = field(default_factory=dict)


class SearchService:
    def __init__(
        self,
        stores: Stores,
        visibility: HistoryVisibility,
        history: RoomHistory,
        members: MemberListService,
    ) -> None:
        self._stores = stores
        self._visibility = visibility
        self._history = history
        self._members = members

    # -- the index ------------------------------------------------------------------

    async def index_txn(self, txn: Transaction, stored: StoredEvent) -> None:
        """Persister txn hook: index a new timeline event that has searchable text."""
        event = stored.event
        if stored.outlier or stored.stream_ordering is None or event.state_key not in (None, ""):
            return
        found = indexed_text(event.type, event.content)
        if found is None:
            return
        key, value = found
        await self._stores.search.index_txn(
            txn,
            event_id=event.event_id,
            room_id=event.room_id,
            sender=event.sender,
            key=key,
            stream_ordering=stored.stream_ordering,
            origin_server_ts=event.origin_server_ts,
            value=value,
        )

    async def unindex_txn(self, txn: Transaction, event_id: str) -> None:
        """Persister redaction hook: a redacted event is no longer found."""
        await self._stores.search.remove_txn(txn, event_id)

    # -- POST /search ---------------------------------------------------------------

    async def search(self, user_id: str, request: SearchRequest, batch: str | None) -> SearchPage:
        position = parse_batch(request.order_by, batch)
        rooms = await self._stores.state.rooms_for_user(user_id)
        room_ids = sorted(
            room_id
            for room_id, membership in rooms.items()
            if membership == "join" and request.filter.allows_room(room_id)
        )
        page = SearchPage()
        if not room_ids or not request.words or request.filter.matches_nothing:
            return page
        scope = SearchScope(room_ids, request.keys, request.words)
        page.count = await self._stores.search.count(scope)
        hits, page.next_batch = await self._visible_hits(user_id, request, scope, position)
        page.results = hits
        if request.event_context is not None:
            for result in page.results:
                result.context = await self._context(user_id, request, result.event)
        if request.include_state:
            for room_id in dict.fromkeys(r.event.event.room_id for r in page.results):
                page.state[room_id] = await self._members.visible_state_events(user_id, room_id)
        return page

    async def _visible_hits(
        self, user_id: str, request: SearchRequest, scope: SearchScope, position: int | None
    ) -> tuple[list[SearchResult], str | None]:
        """Up to ``limit`` matches the user may see, and where the next page starts."""
        limit = request.limit
        results: list[SearchResult] = []
        if limit == 0:
            return results, None
        ranked = request.order_by == "rank"
        cursor = position if position is not None else (0 if ranked else None)
        exhausted = False
        for _round in range(MAX_ROUNDS):
            fetch = max((limit - len(results)) * 2, 20)
            hits = await self._fetch(scope, ranked, cursor, fetch)
            shown = await self._shown(user_id, request, hits)
            for hit in hits:
                cursor = (cursor or 0) + 1 if ranked else hit.stream_ordering
                stored = shown.get(hit.event_id)
                if stored is not None:
                    results.append(SearchResult(stored, hit.rank))
                    if len(results) >= limit:
                        break
            if len(results) >= limit:
                break
            if len(hits) < fetch:
                exhausted = True
                break
        if exhausted or cursor is None:
            return results, None
        return results, batch_token(request.order_by, cursor)

    async def _fetch(
        self, scope: SearchScope, ranked: bool, cursor: int | None, limit: int
    ) -> list[SearchHit]:
        if ranked:
            return await self._stores.search.by_rank(scope, cursor or 0, limit)
        return await self._stores.search.by_recency(scope, cursor, limit)

    async def _shown(
        self, user_id: str, request: SearchRequest, hits: list[SearchHit]
    ) -> dict[str, StoredEvent]:
        found = await self._stores.events.get_events([h.event_id for h in hits])
        candidates = [
            found[h.event_id]
            for h in hits
            if h.event_id in found and found[h.event_id].redacted_by is None
        ]
        visible = await self._visibility.filter_events_for_user(user_id, candidates)
        return {
            stored.event_id: stored
            for stored in visible
            if request.filter.matches(stored.event.pdu)
            and indexed_text(stored.event.type, stored.event.content) is not None
        }

    async def _context(
        self, user_id: str, request: SearchRequest, stored: StoredEvent
    ) -> EventContext:
        spec = request.event_context
        assert spec is not None
        room_id = stored.event.room_id
        before = await self._history.scan(
            user_id, room_id, at(stored), backwards=True, limit=spec.before_limit
        )
        later = await self._history.scan(
            user_id, room_id, after(stored), backwards=False, limit=spec.after_limit
        )
        profiles: dict[str, dict[str, str | None]] = {}
        if spec.include_profile:
            around = [*before.events, stored, *later.events]
            for member in await self._history.member_events_for_senders(stored, around):
                content = member.event.content
                name = content.get("displayname")
                avatar = content.get("avatar_url")
                profiles[member.event.state_key or ""] = {
                    "displayname": name if isinstance(name, str) else None,
                    "avatar_url": avatar if isinstance(avatar, str) else None,
                }
        return EventContext(
            before.events,
            later.events,
            position_token(before.position),
            position_token(later.position),
            profiles,
        )
