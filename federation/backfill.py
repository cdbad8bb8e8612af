"""Filling in a room's history from other servers (s2s "Backfilling and retrieving
missing events", ``GET /backfill``).

A server that joins a room holds its state but not the messages before its join;
after a partition it may hold a gap. Both show up as *backward extremities*: events
the timeline cites as prev events but that we do not hold (``backward_extremities``).
When ``/messages`` pages back to one (:class:`homeserver.rooms.history.RoomHistory`
calls :meth:`FederationBackfiller.backfill`), we ask a server in the room for the
events before it. Servers are asked in turn (the room creator's first, then those
with most members): the first whose answer adds events wins. The answer goes
through the inbound pipeline (signatures, hashes, auth against the state before each
event) and is stored as backfilled history.

One backfill per room runs at a time; an extremity nobody could fill is not asked
for again for ``RETRY_AFTER_MS`` (so paging a room with an unreachable past stays fast).
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict

from federation.event_fetch import RemoteEventFetcher
from federation.event_pipeline import FederationEventPipeline
from federation.server_acl import ServerAclChecker
from homeserver.clock import Clock
from homeserver.events import server_name_of
from homeserver.rooms.lanes import RoomLanes
from storage.stores import Stores

logger = logging.getLogger(__name__)

BACKFILL_LIMIT = 100  # events asked for per request
MAX_POINTS = 5  # backward extremities named per request
MAX_SERVERS = 5  # servers tried per backfill
RETRY_AFTER_MS = 60_000
MAX_REMEMBERED_FAILURES = 10_000


def _server(user_id: str) -> str | None:
    try:
        return server_name_of(user_id)
    except ValueError:
        return None


class FederationBackfiller:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        pipeline: FederationEventPipeline,
        fetcher: RemoteEventFetcher,
        acl: ServerAclChecker,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._pipeline = pipeline
        self._fetcher = fetcher
        self._acl = acl
        self._clock = clock
        self._lanes = RoomLanes()  # one backfill per room at a time
        # (room, extremity) -> when it may be asked for again
        self._failed: OrderedDict[tuple[str, str], int] = OrderedDict()

    async def _points(self, room_id: str, min_depth: int, max_depth: int) -> list[str]:
        now = self._clock.time_ms()
        found = await self._stores.events.backward_extremities(
            room_id, min_depth, max_depth, MAX_POINTS * 4
        )
        due = [e for e, _d in found if self._failed.get((room_id, e), 0) <= now]
        return due[:MAX_POINTS]

    async def backfill(self, room_id: str, min_depth: int, max_depth: int) -> bool:
        """Fetch history before the backward extremities cited at depths in
        ``[min_depth, max_depth]``; True when events were added to the timeline."""
        if not await self._points(room_id, min_depth, max_depth):
            return False
        async with self._lanes.lane(room_id):
            # Another request may have filled them while we waited.
            points = await self._points(room_id, min_depth, max_depth)
            if not points:
                return True
            for server in await self._servers(room_id):
                pdus = await self._fetcher.backfill(server, room_id, points, BACKFILL_LIMIT)
                if not pdus:
                    continue
                added = await self._pipeline.receive_backfill(server, room_id, pdus)
                logger.info("backfilled %d events of %s from %s", added, room_id, server)
                if added:
                    return True
            self._remember_failure(room_id, points)
            return False

    def _remember_failure(self, room_id: str, points: list[str]) -> None:
        retry_at = self._clock.time_ms() + RETRY_AFTER_MS
        for event_id in points:
            self._failed[(room_id, event_id)] = retry_at
            self._failed.move_to_end((room_id, event_id))
        while len(self._failed) > MAX_REMEMBERED_FAILURES:
            self._failed.popitem(last=False)

    async def _servers(self, room_id: str) -> list[str]:
        """Servers with joined members, the creator's first, then by member count."""
        members = await self._stores.state.current_members(room_id)
        counts = Counter(
            _server(user) for user, membership in members.items() if membership == "join"
        )
        creator = await self._creator_server(room_id)
        candidates = [s for s in counts if s is not None and s != self._server_name]
        candidates.sort(key=lambda s: (s != creator, -counts[s], s))
        allowed = [s for s in candidates if await self._acl.allowed(s, room_id)]
        return allowed[:MAX_SERVERS]

    async def _creator_server(self, room_id: str) -> str | None:
        state = await self._stores.state.get_current_state(room_id)
        create_id = state.get(("m.room.create", ""))
        if create_id is None:
            return None
        create = await self._stores.events.get_event(create_id)
        return None if create is None else _server(create.event.sender)
