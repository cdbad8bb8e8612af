"""Read receipts and read markers (client-server API: Receipts, Read and unread markers).

A receipt is an "up to" marker per (room, receipt type, user, thread). It only moves
forward: a receipt for an event at or before the current one (in stream order) is
ignored. Each stored receipt takes the next position of the receipts stream and wakes
the room's long-polls; /sync shows them as ``m.receipt`` in each room's ``ephemeral``,
``m.read.private`` only to its owner.

With workers one process writes receipts (``stream_writers.receipts``): it publishes
each stored receipt (the room, and the receipt itself for the readers' in-memory
recent receipts); the other processes mirror it (``apply_replicated``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from homeserver.account_data import FULLY_READ, AccountDataService
from homeserver.clock import Clock
from homeserver.errors import Forbidden, InvalidParam, NotFound
from homeserver.notifier import Notifier
from homeserver.replication.ephemeral import StreamRole, StreamSource
from homeserver.replication.notices import RECEIPTS, NoticePublisher, RoomsStreamNotice
from homeserver.streams import MAX_POSITION, StreamIdGenerator
from homeserver.sync.extensions import SyncPass
from storage.events import StoredEvent
from storage.receipts import ReceiptRecord
from storage.stores import Stores

logger = logging.getLogger(__name__)

READ = "m.read"
READ_PRIVATE = "m.read.private"
RECEIPT_TYPES = frozenset({READ, READ_PRIVATE})
MAIN_THREAD = "main"
RECENT_PER_ROOM = 500

# Told of each new read receipt of a local user (push: notification counts).
ReadReceiptListener = Callable[[str, str, str, str | None], Awaitable[None]]


PublicReceiptListener = Callable[[str, str, str, str | None, int], Awaitable[None]]


class ReceiptService:
    def __init__(
        self,
        stores: Stores,
        notifier: Notifier,
        stream: StreamSource,
        clock: Clock,
        account_data: AccountDataService,
        *,
        publisher: NoticePublisher | None = None,
        instance_name: str = "master",
        writer: str | None = None,
    ) -> None:
        self._stores = stores
        self._notifier = notifier
        self._stream = stream
        self._role = StreamRole.of(RECEIPTS, publisher, instance_name, writer)
        self._clock = clock
        self._account_data = account_data
        # room -> position of its latest receipt, for receipts after start-up
        self._room_last: dict[str, int] = {}
        # room -> its latest receipts in position order (at most RECENT_PER_ROOM), and
        # the position below which that list is incomplete
        self._recent: dict[str, list[ReceiptRecord]] = {}
        self._recent_floor: dict[str, int] = {}
        # receipts after this position are all in _room_last (a reader knows of none
        # until its first resync)
        self._started_at = stream.current() if self._role.writes else MAX_POSITION
        # push rules' on_read_receipt(user_id, room_id, event_id, thread_id) is added here
        self.read_receipt_listeners: list[ReadReceiptListener] = []
        # Public receipts of local users, for other servers (federation installs one):
        # called with (user_id, room_id, event_id, thread_id, ts).
        self.public_receipt_listeners: list[PublicReceiptListener] = []

    def current_position(self) -> int:
        return self._stream.current()

    # -- writing --------------------------------------------------------------------

    async def send_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None = None,
    ) -> None:
        """POST /rooms/{roomId}/receipt/{receiptType}/{eventId} (m.read, m.read.private)."""
        if receipt_type not in RECEIPT_TYPES:
            raise InvalidParam(f"Unknown receipt type: {receipt_type}")
        self._role.check_writes()
        await self._require_joined(user_id, room_id)
        stored = await self._event_in_room(room_id, event_id)
        _check_thread(stored, thread_id)
        await self._store_receipt(user_id, room_id, receipt_type, stored, thread_id)

    async def set_read_markers(
        self,
        user_id: str,
        room_id: str,
        fully_read: str | None,
        read: str | None,
        read_private: str | None,
    ) -> None:
        """POST /rooms/{roomId}/read_markers: the fully read marker and/or read receipts."""
        self._role.check_writes()
        await self._require_joined(user_id, room_id)
        events: dict[str, StoredEvent] = {}
        for event_id in (fully_read, read, read_private):
            if event_id is not None and event_id not in events:
                events[event_id] = await self._event_in_room(room_id, event_id)
        if read is not None:
            await self._store_receipt(user_id, room_id, READ, events[read], None)
        if read_private is not None:
            await self._store_receipt(user_id, room_id, READ_PRIVATE, events[read_private], None)
        if fully_read is not None:
            await self._move_fully_read(user_id, room_id, events[fully_read])

    async def _store_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        stored: StoredEvent,
        thread_id: str | None,
        *,
        remote: bool = False,
    ) -> None:
        assert stored.stream_ordering is not None
        stream = self._stream
        assert isinstance(stream, StreamIdGenerator)  # check_writes passed
        now = self._clock.time_ms()
        position = stream.allocate()
        try:
            changed = await self._stores.receipts.upsert_if_newer(
                room_id,
                receipt_type,
                user_id,
                thread_id,
                stored.event_id,
                stored.stream_ordering,
                now,
                position,
            )
            if changed and self._role.publishes:
                receipt = [receipt_type, user_id, thread_id, stored.event_id, now]
                self._role.rooms_changed(position, (room_id,), {room_id: [receipt]})
        finally:
            stream.finish(position)
        if not changed:
            return
        self._room_last[room_id] = position
        self._remember(
            ReceiptRecord(room_id, receipt_type, user_id, thread_id, stored.event_id, now, position)
        )
        self._notifier.on_rooms_change([room_id])
        if receipt_type == READ and not remote:
            for public in self.public_receipt_listeners:
                try:
                    await public(user_id, room_id, stored.event_id, thread_id, now)
                except Exception:
                    logger.exception("public receipt listener failed for %s", stored.event_id)
        for listener in self.read_receipt_listeners:
            try:
                await listener(user_id, room_id, stored.event_id, thread_id)
            except Exception:
                logger.exception("read receipt listener failed for %s", stored.event_id)

    async def receive_remote(
        self, user_id: str, room_id: str, event_id: str, thread_id: str | None
    ) -> None:
        """A public read receipt of a remote user (an ``m.receipt`` EDU)."""
        self._role.check_writes()
        stored = await self._stores.events.get_event(event_id)
        if stored is None or stored.event.room_id != room_id or stored.stream_ordering is None:
            return  # an event we do not hold (yet): nothing to show it against
        await self._store_receipt(user_id, room_id, READ, stored, thread_id, remote=True)

    async def _move_fully_read(self, user_id: str, room_id: str, stored: StoredEvent) -> None:
        """Set m.fully_read room account data, only ever forward (as Synapse does)."""
        current = await self._stores.account_data.get(user_id, room_id, FULLY_READ)
        current_id = (current or {}).get("event_id")
        if isinstance(current_id, str):
            if current_id == stored.event_id:
                return
            before = await self._stores.events.get_event(current_id)
            if (
                before is not None
                and before.stream_ordering is not None
                and stored.stream_ordering is not None
                and before.stream_ordering > stored.stream_ordering
            ):
                return
        await self._account_data.put(user_id, room_id, FULLY_READ, {"event_id": stored.event_id})

    async def _require_joined(self, user_id: str, room_id: str) -> None:
        rooms = await self._stores.state.rooms_for_user(user_id)
        if rooms.get(room_id) != "join":
            raise Forbidden("You are not joined to this room")

    async def _event_in_room(self, room_id: str, event_id: str) -> StoredEvent:
        stored = await self._stores.events.get_event(event_id)
        if stored is None or stored.event.room_id != room_id or stored.stream_ordering is None:
            raise NotFound("Event not found in this room")
        return stored

    # -- /sync ----------------------------------------------------------------------

    def invalidate_room(self, room_id: str, position: int) -> None:
        """Another process stored a receipt in the room at ``position``: this process's
        recent receipts of the room miss it (dropped: the database answers), and /sync
        must see that the room changed."""
        self._recent.pop(room_id, None)
        self._recent_floor.pop(room_id, None)
        if position > self._room_last.get(room_id, 0):
            self._room_last[room_id] = position

    def forget_changes(self) -> None:
        """Notices from the other processes may have been missed: drop every room's
        recent receipts, and answer from the database for any position below the
        stream's current one (resynced); above it, notices tell again."""
        self._recent.clear()
        self._recent_floor.clear()
        self._room_last.clear()
        self._started_at = max(self._started_at, self._stream.current())

    def has_updates(self, room_ids: Collection[str], since: int) -> bool:
        if self._stream.current() <= since:
            return False
        if since < self._started_at:  # (before start-up or a resync: not known here)
            return True
        return any(self._room_last.get(r, 0) > since for r in room_ids)

    async def receipts_for_sync(
        self, user_id: str, room_ids: Collection[str], since: int | None, upto: int
    ) -> dict[str, list[dict[str, Any]]]:
        """room_id -> [one ``m.receipt`` event] with the receipts of ``room_ids`` that
        changed in (since, upto]; all of them when ``since`` is None (initial sync)."""
        if since is not None and since >= upto:
            return {}
        if since is not None and since >= self._started_at:
            rooms = [r for r in room_ids if self._room_last.get(r, 0) > since]
        else:
            rooms = list(room_ids)
        if not rooms:
            return {}
        records: list[ReceiptRecord] = []
        from_db: list[str] = []
        for room_id in rooms:
            recent = self._recent.get(room_id)
            if since is not None and recent is not None and since >= self._recent_floor[room_id]:
                records += [r for r in recent if since < r.stream_id <= upto]
            else:
                from_db.append(room_id)
        if from_db:
            records += await self._stores.receipts.for_rooms(from_db, since, upto)
        return receipt_events(records, user_id)

    async def rooms_with_changes(
        self, room_ids: Collection[str], since: int, upto: int
    ) -> set[str]:
        """Those of ``room_ids`` with a receipt after ``since`` (an over-estimate when
        receipts after ``upto`` exist: a caller resends, never loses)."""
        if since >= upto or not room_ids:
            return set()
        if since >= self._started_at:
            return {r for r in room_ids if self._room_last.get(r, 0) > since}
        changed = await self._stores.receipts.rooms_changed_since(since)
        return {r for r in room_ids if r in changed}

    async def receipts_initial(
        self,
        user_id: str,
        room_events: Collection[tuple[str, str]],
        rooms: Collection[str],
        upto: int,
    ) -> dict[str, list[dict[str, Any]]]:
        """room_id -> [one ``m.receipt``] with the receipts (up to ``upto``) pointing at
        the given (room, event)s plus the user's own receipts in ``rooms``."""
        records: dict[tuple[str, str, str, str | None], ReceiptRecord] = {}
        if room_events:
            for r in await self._stores.receipts.for_events(room_events, upto):
                records[(r.room_id, r.receipt_type, r.user_id, r.thread_id)] = r
        if rooms:
            for r in await self._stores.receipts.for_user_in_rooms(user_id, rooms, upto):
                records[(r.room_id, r.receipt_type, r.user_id, r.thread_id)] = r
        return receipt_events(list(records.values()), user_id)

    # -- replication ------------------------------------------------------------------

    def apply_replicated(self, notice: RoomsStreamNotice) -> None:
        """The receipts writer stored receipts in ``notice.rooms`` (readers only)."""
        if self._role.writes:
            return
        data = notice.data or {}
        for room_id in notice.rooms:
            self._room_last[room_id] = notice.position
            receipts = data.get(room_id)
            if not isinstance(receipts, list):
                # a receipt this process cannot show from memory: read the room's again
                self._recent.pop(room_id, None)
                continue
            for receipt in receipts:
                try:
                    receipt_type, user_id, thread_id, event_id, ts = receipt
                    record = ReceiptRecord(
                        room_id, receipt_type, user_id, thread_id, event_id, ts, notice.position
                    )
                except (TypeError, ValueError):
                    self._recent.pop(room_id, None)
                    continue
                self._remember(record)
        self._notifier.on_rooms_change(notice.rooms)

    def resync_replica(self) -> None:
        """After missed notices (readers only): what memory holds is complete only
        from the current position on."""
        if self._role.writes:
            return
        self._recent.clear()
        self._recent_floor.clear()
        self._started_at = self._stream.current()

    def _remember(self, record: ReceiptRecord) -> None:
        """Keep the room's latest receipts in memory, so incremental syncs skip the DB."""
        recent = self._recent.get(record.room_id)
        if recent is None:
            recent = self._recent[record.room_id] = []
            # receipts of this room before now (after start-up) are only in the database
            self._recent_floor[record.room_id] = record.stream_id - 1
        recent.append(record)
        if len(recent) > RECENT_PER_ROOM:
            dropped = recent[: len(recent) - RECENT_PER_ROOM]
            del recent[: len(dropped)]
            self._recent_floor[record.room_id] = max(r.stream_id for r in dropped)


def receipt_events(records: list[ReceiptRecord], user_id: str) -> dict[str, list[dict[str, Any]]]:
    """Fold receipt rows into one ``m.receipt`` event per room; private receipts of
    other users are left out."""
    contents: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.receipt_type == READ_PRIVATE and r.user_id != user_id:
            continue
        data: dict[str, Any] = {"ts": r.ts}
        if r.thread_id is not None:
            data["thread_id"] = r.thread_id
        by_event = contents.setdefault(r.room_id, {}).setdefault(r.event_id, {})
        by_event.setdefault(r.receipt_type, {})[r.user_id] = data
    return {
        room_id: [{"type": "m.receipt", "content": content}]
        for room_id, content in contents.items()
    }


def _check_thread(stored: StoredEvent, thread_id: str | None) -> None:
    """400 M_INVALID_PARAM when the event is not in the thread the receipt names."""
    if thread_id is None:
        return
    relates = stored.event.content.get("m.relates_to")
    in_thread: str | None = None
    if isinstance(relates, dict) and relates.get("rel_type") == "m.thread":
        target = relates.get("event_id")
        in_thread = target if isinstance(target, str) else None
    if thread_id == MAIN_THREAD:
        if in_thread is not None:
            raise InvalidParam("The event is in a thread, not the main timeline")
    elif stored.event_id != thread_id and in_thread != thread_id:
        raise InvalidParam("The event is not related to the thread")


class ReceiptsSyncExtension:
    """``m.receipt`` in ``ephemeral`` of each joined room of /sync."""

    stream = "receipts"

    def __init__(self, service: ReceiptService) -> None:
        self._service = service

    def current_position(self) -> int:
        return self._service.current_position()

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool:
        return self._service.has_updates(room_ids, since)

    async def contribute(self, sync: SyncPass) -> None:
        by_room = await self._service.receipts_for_sync(
            sync.user_id,
            sync.joined_room_ids,
            sync.since_position(self.stream),
            sync.upto_position(self.stream),
        )
        for room_id, events in by_room.items():
            sync.result.joined_room(room_id).ephemeral.extend(events)
