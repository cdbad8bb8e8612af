"""Removing room data for good: a whole room (room deletion with ``purge``) or its
history before a point (``POST /_synapse/admin/v1/purge_history/{roomId}``).

Each purge runs in the room's lane, so no event of the room is persisted halfway
through it, deletes its rows in one transaction (``storage/purge.py``), then drops
what the stores and the push evaluator cached of what it deleted. History purges
run in the background; their status is kept in memory (as Synapse does) under an
opaque ``purge_id``: ``active``, then ``complete`` or ``failed``, for a day after it
finished.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Protocol

from homeserver.admin.tasks import AdminTasks
from homeserver.clock import Clock
from homeserver.errors import MatrixError, NotFound
from homeserver.replication.invalidation import ROOMS_PURGED, UNREAD_COUNTS, CachePublisher
from homeserver.rooms.lanes import RoomLanes
from storage.purge import HistoryPurgeResult, RoomPurgeResult
from storage.stores import Stores

logger = logging.getLogger(__name__)


class UnreadCounts(Protocol):
    def forget_counts(self, user_ids: list[str]) -> None: ...


class RoomPurger:
    """Deletes every row of a room, or its history before a depth, then the caches."""

    def __init__(
        self,
        server_name: str,
        stores: Stores,
        lanes: RoomLanes,
        unread: UnreadCounts,
        *,
        cache_publisher: CachePublisher | None = None,
    ) -> None:
        self._server_name = server_name
        # tells the other processes what they cached of the room is stale
        self._cache_publisher = cache_publisher or CachePublisher()
        self._stores = stores
        self._lanes = lanes
        self._unread = unread

    async def purge_room(self, room_id: str) -> RoomPurgeResult:
        async with self._lanes.lane(room_id):
            result = await self._stores.purge.purge_room(room_id)
            self._stores.events.forget_purged(room_id, result.event_ids, whole_room=True)
            self._stores.state.forget_purged(
                room_id, result.state_groups, result.members, whole_room=True
            )
            self._stores.sync.forget_purged(room_id, result.state_groups)
            self._stores.room_summaries.forget_room(room_id)
            self._unread.forget_counts(result.members)
            self._cache_publisher.stale(ROOMS_PURGED, [room_id])
            self._cache_publisher.stale(UNREAD_COUNTS, result.members)
        logger.info("purged room %s: %d events", room_id, len(result.event_ids))
        return result

    async def purge_history(
        self, room_id: str, depth: int, *, delete_local_events: bool
    ) -> HistoryPurgeResult:
        async with self._lanes.lane(room_id):
            latest = await self._stores.room_admin.forward_extremities(room_id)
            if latest and max(e.depth for e in latest) < depth:
                # never every event: the room could get no new one (no prev_events)
                raise MatrixError(
                    400, "M_UNKNOWN", "topological_ordering is greater than forward extremities"
                )
            result = await self._stores.purge.purge_history(
                room_id, depth, self._server_name, delete_local_events=delete_local_events
            )
            self._stores.events.forget_purged(
                room_id, [*result.deleted, *result.outliered], whole_room=False
            )
            groups = [*result.state_groups, *result.rewritten_groups]
            self._stores.state.forget_purged(room_id, groups, (), whole_room=False)
            self._stores.sync.forget_purged(room_id, groups)
            members = await self._stores.state.current_members(room_id)
            self._unread.forget_counts(list(members))
            self._cache_publisher.stale(ROOMS_PURGED, [room_id])
            self._cache_publisher.stale(UNREAD_COUNTS, members)
        logger.info(
            "purged history of %s before depth %d: %d deleted, %d made outliers",
            room_id,
            depth,
            len(result.deleted),
            len(result.outliered),
        )
        return result


@dataclass
class HistoryPurgeTask:
    purge_id: str
    room_id: str
    status: str = "active"  # then "complete" or "failed"
    error: str | None = None
    task: asyncio.Task[None] | None = None
    finished_ts: int | None = None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"status": self.status}
        if self.error is not None:
            body["error"] = self.error
        return body


class HistoryPurges:
    """``purge_history``: where to cut, the background run, and its status."""

    def __init__(self, stores: Stores, purger: RoomPurger, clock: Clock) -> None:
        self._stores = stores
        self._purger = purger
        self._tasks: AdminTasks[HistoryPurgeTask] = AdminTasks(clock, "purge")

    async def depth_of_event(self, room_id: str, event_id: str) -> int:
        """Purge before this event: 404 for an unknown event, 400 for one of another room."""
        stored = await self._stores.events.get_event(event_id)
        if stored is None:
            raise NotFound(f"Event {event_id} not found")
        if stored.event.room_id != room_id:
            raise MatrixError(400, "M_UNKNOWN", "Event is for wrong room.")
        return stored.depth

    async def depth_at_timestamp(self, room_id: str, ts: int) -> int:
        """Purge before the room's last event received at or before the first event
        (of any room) received at or after ``ts`` (as Synapse); 404 if there is none."""
        depth = await self._stores.room_admin.depth_before_received_ts(room_id, ts)
        if depth is None:
            raise NotFound("there is no event to be purged")
        return depth

    def start(self, room_id: str, depth: int, *, delete_local_events: bool) -> str:
        if any(t.room_id == room_id and t.status == "active" for t in self._tasks.records()):
            raise MatrixError(400, "M_UNKNOWN", f"History purge already in progress for {room_id}")
        purge_id = secrets.token_urlsafe(12)

        async def purge() -> None:
            await self._purger.purge_history(
                room_id, depth, delete_local_events=delete_local_events
            )

        self._tasks.launch(purge_id, HistoryPurgeTask(purge_id, room_id), purge)
        return purge_id

    def status(self, purge_id: str) -> HistoryPurgeTask:
        return self._tasks.get(purge_id)

    async def wait(self, purge_id: str) -> HistoryPurgeTask:
        """The purge once it has finished (tests, and callers that must not race it)."""
        return await self._tasks.wait(purge_id)

    async def stop(self) -> None:
        await self._tasks.stop()
