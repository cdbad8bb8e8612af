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
    RecentPosition,
    SearchRequest,
    indexed_text,
    parse_rank_batch,
    parse_recent_batch,
    rank_token,
    recent_token,
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
        ranked = request.order_by == "rank"
        # (checked before anything is read: a bad token is a bad request)
        offset = parse_rank_batch(batch) if ranked else None
        before = None if ranked else parse_recent_batch(batch)
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
        if ranked:
            page.results, page.next_batch = await self._ranked(user_id, request, scope, offset or 0)
        else:
            page.results, page.next_batch = await self._recent(user_id, request, scope, before)
        if request.event_context is not None:
            for result in page.results:
                result.context = await self._context(user_id, request, result.event)
        if request.include_state:
            for room_id in dict.fromkeys(r.event.event.room_id for r in page.results):
                page.state[room_id] = await self._members.visible_state_events(user_id, room_id)
        return page

    async def _ranked(
        self, user_id: str, request: SearchRequest, scope: SearchScope, offset: int
    ) -> tuple[list[SearchResult], str | None]:
        """Up to ``limit`` visible matches, best first, from ``offset`` into the
        ranked matches, and the token of the next page."""
        results: list[SearchResult] = []
        limit = request.limit
        for _round in range(MAX_ROUNDS if limit else 0):
            fetch = max((limit - len(results)) * 2, 20)
            hits = await self._stores.search.by_rank(scope, offset, fetch)
            shown = await self._shown(user_id, request, hits)
            for hit in hits:
                offset += 1
                if (stored := shown.get(hit.event_id)) is not None:
                    results.append(SearchResult(stored, hit.rank))
                    if len(results) >= limit:
                        return results, rank_token(offset)
            if len(hits) < fetch:
                return results, None
        return results, rank_token(offset) if limit else None

    async def _recent(
        self,
        user_id: str,
        request: SearchRequest,
        scope: SearchScope,
        before: RecentPosition | None,
    ) -> tuple[list[SearchResult], str | None]:
        """Up to ``limit`` visible matches, newest first, older than ``before``, and
        the token of the next page."""
        results: list[SearchResult] = []
        limit = request.limit
        for _round in range(MAX_ROUNDS if limit else 0):
            fetch = max((limit - len(results)) * 2, 20)
            hits = await self._stores.search.by_recency(scope, before, fetch)
            shown = await self._shown(user_id, request, hits)
            for hit in hits:
                before = (hit.origin_server_ts, hit.stream_ordering)
                if (stored := shown.get(hit.event_id)) is not None:
                    results.append(SearchResult(stored, hit.rank))
                    if len(results) >= limit:
                        return results, recent_token(before)
            if len(hits) < fetch:
                return results, None
        return results, recent_token(before) if limit and before is not None else None

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
