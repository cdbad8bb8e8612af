"""Simplified sliding sync (MSC4186): ``POST
/_matrix/client/unstable/org.matrix.simplified_msc3575/sync``.

One request: parse the body; find the connection's state at ``pos`` (none: a new
connection); compute the user's room lists and windows; build the rooms the
connection does not hold as they are now, and the extensions; record the new state
and answer with its ``pos``. On a later request with nothing new, wait (up to
``timeout``) for the notifier to report a change in the user's rooms or streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.clock import Clock
from homeserver.notifier import Notifier
from homeserver.rooms.serializer import EventSerializer
from homeserver.sliding_sync.connections import (
    ConnectionState,
    SlidingSyncConnections,
    format_pos,
    parse_pos,
)
from homeserver.sliding_sync.extensions import SlidingSyncExtensions, has_news
from homeserver.sliding_sync.request import SlidingSyncRequest, parse_request
from homeserver.sliding_sync.required_state import RequiredState
from homeserver.sliding_sync.room_list import ListResult, RoomLists, UserRooms
from homeserver.sliding_sync.rooms import RoomResults, RoomWant
from homeserver.streams import SyncToken
from homeserver.sync.extensions import UnreadCounter
from homeserver.sync.service import SyncService
from homeserver.sync.timelines import TimelineReader, VisibleEvents
from storage.database import Transaction
from storage.stores import Stores

# A change committed but not yet readable (a later position finished first): look
# again after this pause instead of waiting for the next wake-up.
_UNCOMMITTED_PAUSE_S = 0.005


@dataclass
class _Pass:
    body: dict[str, Any]
    state: ConnectionState
    rooms: UserRooms
    news: bool
    ahead: bool  # a room's bump stamp is beyond the token: look again shortly
    scope: list[str]  # the rooms of the windows and subscriptions


class SlidingSyncService:
    def __init__(
        self,
        stores: Stores,
        notifier: Notifier,
        sync: SyncService,
        serializer: EventSerializer,
        visibility: VisibleEvents,
        clock: Clock,
    ) -> None:
        self._stores = stores
        self._notifier = notifier
        self._sync = sync
        self._clock = clock
        self.connections = SlidingSyncConnections()
        self._lists = RoomLists(stores)
        self._unread: dict[str, UnreadCounter | None] = {"counter": None}
        self._rooms = RoomResults(
            stores,
            notifier,
            serializer,
            TimelineReader(stores, stores.sync, visibility),
            self._unread,
        )
        self.extensions: SlidingSyncExtensions | None = None

    async def on_devices_removed_txn(
        self, txn: Transaction, user_id: str, device_ids: list[str]
    ) -> None:
        """``SessionService.device_removed_hooks`` entry: a deleted device's (or a
        logged-out session's) connections go once the deletion commits."""

        def forget() -> None:
            for device_id in device_ids:
                self.connections.forget_device(user_id, device_id)

        txn.call_after_commit(forget)

    def use_unread_counter(self, counter: UnreadCounter) -> None:
        self._unread["counter"] = counter

    async def sync(
        self,
        user_id: str,
        device_id: str,
        body: object,
        pos: str | None,
        timeout_ms: int,
    ) -> dict[str, Any]:
        request = parse_request(body)
        ext_request = (
            self.extensions.parse(request.extensions) if self.extensions is not None else None
        )
        conn_id = request.conn_id or ""
        now_ms = self._clock.time_ms()
        previous_position: int | None = None
        from_token: SyncToken | None = None
        if pos is None:
            previous = self.connections.start(user_id, device_id, conn_id, now_ms)
        else:
            previous_position, from_token = parse_pos(pos)
            previous = self.connections.get(user_id, device_id, conn_id, previous_position, now_ms)
            from_token = self._sync.bound_future_token(from_token)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            mark = self._notifier.user_change_position(user_id)
            to_token = self._sync.current_token(from_token)
            result = await self._compute(
                user_id, device_id, request, ext_request, previous, from_token, to_token
            )
            remaining = deadline - loop.time()
            if from_token is not None and remaining > 0 and result.ahead:
                # an event is committed (its room moved up the list) but not readable
                # yet: answer once it is, so the room comes with its event
                await asyncio.sleep(_UNCOMMITTED_PAUSE_S)
                continue
            if result.news or from_token is None or remaining <= 0:
                break
            joined = result.rooms.joined()

            scope = result.scope

            def is_ready(
                mark: int = mark,
                rooms: list[str] = joined,
                token: SyncToken = to_token,
                scope: list[str] = scope,
            ) -> bool:
                if self._notifier.user_change_position(user_id) != mark:
                    return True
                if self._notifier.rooms_changed_since(rooms, token.events):
                    return True
                return (
                    self.extensions is not None
                    and ext_request is not None
                    and self.extensions.has_updates(user_id, ext_request, scope, token)
                )

            if is_ready():
                await asyncio.sleep(_UNCOMMITTED_PAUSE_S)
                continue
            await self._notifier.wait(user_id, joined, remaining, is_ready)
        position = self.connections.record(
            user_id, device_id, conn_id, result.state, self._clock.time_ms(), previous_position
        )
        return {"pos": format_pos(position, to_token), **result.body}

    async def _compute(
        self,
        user_id: str,
        device_id: str,
        request: SlidingSyncRequest,
        ext_request: Any,
        previous: ConnectionState,
        from_token: SyncToken | None,
        to_token: SyncToken,
    ) -> _Pass:
        histories = await self._sync.memberships.get(user_id)
        since = from_token.events if from_token is not None else None
        rooms = await self._lists.user_rooms(user_id, histories, since, to_token.events)
        dm_rooms = await self._lists.dm_rooms(user_id) if rooms else set()
        lists = await self._lists.compute(user_id, request.lists, rooms, dm_rooms)
        wants = self._wants(user_id, request, lists, rooms, dm_rooms)
        room_bodies, statuses = await self._rooms.build(
            user_id,
            device_id,
            list(wants.values()),
            previous.rooms,
            from_token,
            to_token,
            histories,
        )
        body: dict[str, Any] = {}
        list_bodies = {
            name: {"count": result.count, "ops": result.ops} for name, result in lists.items()
        }
        if list_bodies:
            body["lists"] = list_bodies
        body["rooms"] = room_bodies
        extensions: dict[str, Any] = {}
        ext_state = previous.extensions
        if self.extensions is not None and ext_request is not None and ext_request.any_enabled:
            extensions, ext_state = await self.extensions.compute_with_state(
                user_id,
                device_id,
                ext_request,
                from_token,
                to_token,
                {name: result.room_ids for name, result in lists.items()},
                [r for r in request.room_subscriptions if r in rooms],
                # extensions look up only rooms of their scope: the windows and subscriptions
                {room_id: want.room.membership for room_id, want in wants.items()},
                state=previous.extensions if from_token is not None else None,
                initial_rooms=[r for r, b in room_bodies.items() if b.get("initial")],
                timelines={
                    r: [e["event_id"] for e in b.get("timeline", [])]
                    for r, b in room_bodies.items()
                },
            )
        body["extensions"] = extensions
        list_state = {name: (tuple(r.room_ids), r.count) for name, r in lists.items()}
        lists_changed = any(previous.lists.get(name) != value for name, value in list_state.items())
        state = ConnectionState(to_token, {**previous.rooms, **statuses}, list_state, ext_state)
        news = bool(room_bodies) or has_news(extensions) or lists_changed
        ahead = bool(lists) and rooms.newest_bump > to_token.events
        return _Pass(body, state, rooms, news, ahead, list(wants))

    def _wants(
        self,
        user_id: str,
        request: SlidingSyncRequest,
        lists: Mapping[str, ListResult],
        rooms: UserRooms,
        dm_rooms: set[str],
    ) -> dict[str, RoomWant]:
        """Every room in a window or subscribed to, with the union of what asks for it
        (each list's and subscription's ``required_state`` parsed once)."""
        asked: dict[str, list[tuple[RequiredState, int]]] = {}
        for name, result in lists.items():
            params = request.lists[name].params
            wanted = (RequiredState.parse(params.required_state, user_id), params.timeline_limit)
            for room_id in result.room_ids:
                asked.setdefault(room_id, []).append(wanted)
        for room_id, params in request.room_subscriptions.items():
            if room_id in rooms:
                asked.setdefault(room_id, []).append(
                    (RequiredState.parse(params.required_state, user_id), params.timeline_limit)
                )
        wants: dict[str, RoomWant] = {}
        for room_id, all_asked in asked.items():
            required = RequiredState()
            for one, _limit in all_asked:
                required = required.union(one)
            wants[room_id] = RoomWant(
                rooms.get(room_id),
                required,
                max(limit for _one, limit in all_asked),
                room_id in dm_rooms,
            )
        return wants
