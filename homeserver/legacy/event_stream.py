"""``GET /events`` and ``GET /events/{eventId}`` (client-server API r0, deprecated;
``peekEvents`` is the same stream for one room).

The stream reads forwards from a sync token: the room events after its events
position (the earliest ``limit`` of them, so a client paging with ``end`` sees every
event once, in order), then what changed in presence, typing, receipts and account
data. With nothing to say it waits on the notifier, as /sync does.

Which rooms: without ``room_id``, the rooms the user was joined to at the token or
whose membership of theirs changed since (events after a leave are cut by history
visibility), plus the user's own membership events anywhere (an invite, a kick).
With ``room_id``: that room only, joined or, when its history is world readable,
peeked into; then every event is checked against history visibility, and a
member's presence, typing and receipts come from that room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from homeserver.errors import Forbidden, MissingParam, NotFound
from homeserver.legacy.client_format import v1_client_event
from homeserver.legacy.ephemeral import LegacyEphemeral
from homeserver.notifier import Notifier
from homeserver.rooms.serializer import EventSerializer
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.streams import SyncToken
from homeserver.sync.memberships import MembershipCache
from storage.events import StoredEvent
from storage.stores import Stores
from storage.sync import MembershipRow

logger = logging.getLogger(__name__)

ONLINE = "online"
# A long-poll that finds its rooms "changed" at a position not yet committed
# re-checks after this pause (as /sync does).
_UNCOMMITTED_PAUSE_S = 0.005


class SyncPositions(Protocol):
    """What the stream needs of /sync: its positions and its membership cache."""

    memberships: MembershipCache

    def current_token(self, since: SyncToken | None) -> SyncToken: ...


@dataclass(frozen=True)
class StreamRequest:
    user_id: str
    device_id: str | None
    is_guest: bool = False
    from_token: SyncToken | None = None
    timeout_ms: int = 0
    limit: int = 10
    room_id: str | None = None


@dataclass(frozen=True)
class _Scope:
    """The rooms one read of the stream covers."""

    room_ids: list[str]  # the rooms whose events are read
    current_ids: list[str]  # typing, receipts and presence of these; woken by them
    explicit_room: str | None  # the request's room_id
    own_memberships: list[MembershipRow]  # the user's membership events in the window


@dataclass(frozen=True)
class _Read:
    events: list[dict[str, Any]]
    end: SyncToken
    room_ids: list[str]


class EventStreamService:
    def __init__(
        self,
        stores: Stores,
        notifier: Notifier,
        positions: SyncPositions,
        visibility: HistoryVisibility,
        serializer: EventSerializer,
        ephemeral: LegacyEphemeral,
    ) -> None:
        self._stores = stores
        self._notifier = notifier
        self._positions = positions
        self._visibility = visibility
        self._serializer = serializer
        self._ephemeral = ephemeral

    # -- GET /events ----------------------------------------------------------------

    async def get_stream(self, request: StreamRequest) -> dict[str, Any]:
        """``{chunk, start, end}``: the events after ``from`` (now when absent), waiting
        up to ``timeout_ms`` for some. A guest must name a room (they have no rooms of
        their own to stream); a guest's stream does not make them present."""
        if request.room_id is None and request.is_guest:
            raise MissingParam("Guest users must specify room_id param")
        if request.room_id is not None:
            await self._check_room(request.user_id, request.room_id)
        start = request.from_token or self._positions.current_token(None)
        presence = self._ephemeral.presence
        if not request.is_guest:
            try:
                await presence.sync_started(request.user_id, ONLINE)
            except Exception:
                logger.exception("presence of %s not updated", request.user_id)
        try:
            read = await self._long_poll(request, start)
        finally:
            if not request.is_guest:
                presence.sync_ended(request.user_id, ONLINE)
        return {"chunk": read.events, "start": start.serialize(), "end": read.end.serialize()}

    async def _check_room(self, user_id: str, room_id: str) -> None:
        """A room of ``room_id=``: joined, or world readable; M_FORBIDDEN otherwise."""
        access = await self._visibility.room_access(user_id, room_id)
        if not (access.joined or access.world_readable):
            raise Forbidden("You are not allowed to view this room's events")

    async def _long_poll(self, request: StreamRequest, start: SyncToken) -> _Read:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_ms / 1000
        since = start
        while True:
            mark = self._notifier.user_change_position(request.user_id)
            read = await self._read(request, since)
            remaining = deadline - loop.time()
            if read.events or remaining <= 0:
                return read
            since = read.end

            def is_ready(mark: int = mark, read: _Read = read) -> bool:
                return self._has_news(request.user_id, mark, read)

            if is_ready():
                await asyncio.sleep(_UNCOMMITTED_PAUSE_S)
                continue
            await self._notifier.wait(request.user_id, read.room_ids, remaining, is_ready)

    def _has_news(self, user_id: str, mark: int, read: _Read) -> bool:
        if self._notifier.user_change_position(user_id) != mark:
            return True
        if self._notifier.rooms_changed_since(read.room_ids, read.end.events):
            return True
        return self._ephemeral.has_updates(user_id, read.room_ids, read.end)

    async def _read(self, request: StreamRequest, since: SyncToken) -> _Read:
        """One pass: everything in (since, now], the room events cut at ``limit``."""
        now = self._positions.current_token(since)
        after = min(since.events, now.events)
        scope = await self._scope(request, after, now.events)
        stored, reached = await self._room_events(
            request.user_id, scope, after, now.events, request.limit
        )
        events = await self._serialize(request, stored)
        events += await self._ephemeral.changes(
            request.user_id, scope.current_ids, since, now, explicit_room=scope.explicit_room
        )
        events += await self._presence_of_joiners(request.user_id, stored)
        end = replace(
            since,
            events=reached,
            receipts=now.receipts,
            typing=now.typing,
            presence=now.presence,
            account_data=now.account_data,
        )
        return _Read(events, end, scope.current_ids)

    async def _scope(self, request: StreamRequest, after: int, upto: int) -> _Scope:
        if request.room_id is not None:
            return _Scope([request.room_id], [request.room_id], request.room_id, [])
        histories = await self._positions.memberships.get(request.user_id)
        rooms: list[str] = []
        joined: list[str] = []
        own: list[MembershipRow] = []
        for room_id, history in histories.items():
            at_start = history.at(after)
            changes = history.between(after, upto)
            if (at_start is not None and at_start.membership == "join") or any(
                r.membership == "join" for r in changes
            ):
                rooms.append(room_id)
            current = history.at(upto)
            if current is not None and current.membership == "join":
                joined.append(room_id)
            own += changes
        return _Scope(rooms, joined, None, own)

    async def _room_events(
        self, user_id: str, scope: _Scope, after: int, upto: int, limit: int
    ) -> tuple[list[StoredEvent], int]:
        """The events the user may see in (after, upto] (at most ``limit``), and the
        position read up to."""
        rooms = await self._rooms_with_news(scope.room_ids, after)
        if after >= upto:
            return [], upto
        rows = (
            await self._stores.events.room_events_after(rooms, after, upto, limit) if rooms else []
        )
        reached = upto
        if len(rows) >= limit:
            reached = rows[-1].stream_ordering or upto
        by_id = {e.event_id: e for e in rows}
        own_ids = {r.event_id for r in scope.own_memberships if r.stream <= reached}
        missing = [i for i in own_ids if i not in by_id]
        if missing:
            by_id.update(await self._stores.events.get_events(missing))
        merged = sorted(by_id.values(), key=lambda e: e.stream_ordering or 0)
        if len(merged) > limit:
            merged = merged[:limit]
            reached = merged[-1].stream_ordering or reached
        checked = [e for e in merged if e.event_id not in own_ids]
        visible = {
            e.event_id for e in await self._visibility.filter_events_for_user(user_id, checked)
        }
        shown = [e for e in merged if e.event_id in own_ids or e.event_id in visible]
        ignored = await self._ephemeral.account_data.ignored_users(user_id)
        if ignored:
            shown = [e for e in shown if e.event.is_state or e.event.sender not in ignored]
        return shown, reached

    async def _rooms_with_news(self, room_ids: list[str], after: int) -> list[str]:
        """The rooms with an event after ``after`` (the notifier tells, seeded on first use)."""
        unknown = [r for r in room_ids if not self._notifier.knows_room(r)]
        if unknown:
            epoch = self._notifier.changes_epoch()
            for room_id, position in (await self._stores.sync.latest_positions(unknown)).items():
                self._notifier.seed_room(room_id, position, epoch)
        return self._notifier.rooms_changed_since(room_ids, after)

    async def _serialize(
        self, request: StreamRequest, events: Sequence[StoredEvent]
    ) -> list[dict[str, Any]]:
        bodies = await self._serializer.serialize(
            events,
            user_id=request.user_id,
            device_id=request.device_id,
            bundle_aggregations=False,
        )
        return [v1_client_event(b) for b in bodies]

    async def _presence_of_joiners(
        self, user_id: str, events: Sequence[StoredEvent]
    ) -> list[dict[str, Any]]:
        """Presence to go with the joins in the chunk: of everyone in a room the user
        joined, of the newcomer in a room someone else joined."""
        users: set[str] = set()
        for stored in events:
            event = stored.event
            if event.type != "m.room.member" or event.membership != "join":
                continue
            if event.state_key == user_id:
                members = await self._stores.state.current_members(event.room_id)
                users.update(u for u, m in members.items() if m == "join")
            elif event.state_key is not None:
                users.add(event.state_key)
        return await self._ephemeral.presence_of(users) if users else []

    # -- GET /events/{eventId} ------------------------------------------------------

    async def get_event(self, user_id: str, device_id: str | None, event_id: str) -> Any:
        """One event the user may see (joined, or by the room's history visibility);
        M_NOT_FOUND for an unknown event and for one they may not see alike."""
        stored = await self._stores.events.get_event(event_id)
        if (
            stored is None
            or stored.outlier
            or stored.rejected_reason is not None
            or stored.stream_ordering is None
            or not await self._visibility.may_see_event(user_id, stored)
        ):
            raise NotFound("Event not found")
        body = await self._serializer.serialize_one(
            stored, user_id=user_id, device_id=device_id, bundle_aggregations=False
        )
        return v1_client_event(body)
