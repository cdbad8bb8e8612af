"""GET /sync (client-server API: "Syncing"): tokens, long-polling, extensions.

A sync reads every stream's committed position first (the events position from the
persister's stream generator, so nothing still uncommitted below it is skipped),
computes the rooms part and lets each extension add its part up to those positions.
An incremental sync with nothing to say waits on the notifier for the user and their
joined rooms; ``is_ready`` re-checks, after registering, whether anything relevant
committed while the empty response was being computed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from homeserver.errors import BadJson, InvalidParam
from homeserver.notifier import Notifier
from homeserver.rooms.serializer import EventSerializer
from homeserver.streams import StreamPositions, SyncToken
from homeserver.sync.extensions import SyncExtension, SyncHook, SyncPass, UnreadCounter
from homeserver.sync.filters import Filter, parse_filter
from homeserver.sync.memberships import MembershipCache
from homeserver.sync.result import SyncResult
from homeserver.sync.rooms import RoomSyncer
from homeserver.sync.timelines import VisibleEvents
from storage.stores import Stores

logger = logging.getLogger(__name__)

PRESENCE_STATES = ("online", "offline", "unavailable")
# A long-poll that finds its rooms "changed" at a position not yet committed
# (a later position finished before an earlier one) re-checks after this pause.
_UNCOMMITTED_PAUSE_S = 0.005
FILTER_CACHE_SIZE = 1_000


@dataclass(frozen=True)
class SyncRequest:
    user_id: str
    device_id: str | None
    since: SyncToken | None = None
    filter: Filter = field(default_factory=Filter)
    full_state: bool = False
    timeout_ms: int = 0
    set_presence: str = "online"
    use_state_after: bool = False


class SyncService:
    def __init__(
        self,
        stores: Stores,
        notifier: Notifier,
        events_stream: StreamPositions,
        serializer: EventSerializer,
        visibility: VisibleEvents,
    ) -> None:
        self._stores = stores
        self._notifier = notifier
        self._events_stream = events_stream
        self.sync_store = stores.sync
        self.memberships = MembershipCache(self.sync_store, notifier)
        self._rooms = RoomSyncer(
            stores, self.sync_store, self.memberships, notifier, serializer, visibility
        )
        # Called with (user_id, presence) on every sync: presence plugs in here.
        self.hooks: list[SyncHook] = []
        # Called with (user_id, presence) when a /sync returns (or fails): presence
        # counts its offline timeout from the end of the last long-poll.
        self.end_hooks: list[Callable[[str, str], None]] = []
        # Receipts, typing, account data, to-device, presence ... (see extensions.py)
        self.extensions: list[SyncExtension] = []
        self._filters: dict[tuple[str, str], Filter] = {}

    @property
    def unread_counter(self) -> UnreadCounter | None:
        return self._rooms.unread_counter

    @unread_counter.setter
    def unread_counter(self, counter: UnreadCounter | None) -> None:
        """Push notification counts for ``unread_notifications`` (zeros until set)."""
        self._rooms.unread_counter = counter

    # -- filters ----------------------------------------------------------------------

    async def add_filter(self, user_id: str, filter_json: dict[str, Any]) -> str:
        parse_filter(filter_json)
        return str(await self._stores.rooms.add_filter(user_id, filter_json))

    async def get_filter(self, user_id: str, filter_id: str) -> dict[str, Any] | None:
        # ASCII digits only: str.isdigit() also accepts '²' and '٣', which int() refuses
        if not (filter_id.isascii() and filter_id.isdigit()) or len(filter_id) > 18:
            return None
        return await self._stores.rooms.get_filter(user_id, int(filter_id))

    async def resolve_filter(self, user_id: str, param: str | None) -> Filter:
        """The ``filter`` parameter of /sync: inline JSON (starts with ``{``) or an ID.

        Clients send the same filter on every sync, and stored filters never change,
        so parsed filters are cached."""
        if param is None or param == "":
            return Filter()
        key = (user_id, param)
        cached = self._filters.get(key)
        if cached is not None:
            return cached
        parsed = await self._parse_filter_param(user_id, param)
        self._filters[key] = parsed
        if len(self._filters) > FILTER_CACHE_SIZE:
            self._filters.pop(next(iter(self._filters)))
        return parsed

    async def _parse_filter_param(self, user_id: str, param: str) -> Filter:
        if param.startswith("{"):
            try:
                value = json.loads(param)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                raise BadJson("The filter is not valid JSON") from exc
            return parse_filter(value)
        stored = await self.get_filter(user_id, param)
        if stored is None:
            raise InvalidParam(f"No such filter: {param}")
        return parse_filter(stored)

    # -- syncing ----------------------------------------------------------------------

    async def sync(self, request: SyncRequest) -> dict[str, Any]:
        for hook in self.hooks:
            try:
                await hook(request.user_id, request.set_presence)
            except Exception:
                logger.exception("sync hook failed for %s", request.user_id)
        try:
            return await self._long_poll(request)
        finally:
            for end_hook in self.end_hooks:
                end_hook(request.user_id, request.set_presence)

    async def _long_poll(self, request: SyncRequest) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_ms / 1000
        since = request.since
        if since is not None:
            since = self.bound_future_token(since)
        while True:
            mark = self._notifier.user_change_position(request.user_id)
            sync = await self._compute(request, since)
            remaining = deadline - loop.time()
            if not sync.result.is_empty() or since is None or request.full_state or remaining <= 0:
                return sync.result.to_json()
            since = sync.now
            rooms = sync.joined_room_ids

            def is_ready(
                mark: int = mark, rooms: list[str] = rooms, token: SyncToken = sync.now
            ) -> bool:
                return self._has_news(request.user_id, mark, rooms, token)

            if is_ready():
                await asyncio.sleep(_UNCOMMITTED_PAUSE_S)
                continue
            await self._notifier.wait(request.user_id, rooms, remaining, is_ready)

    def _has_news(self, user_id: str, mark: int, rooms: list[str], token: SyncToken) -> bool:
        if self._notifier.user_change_position(user_id) != mark:
            return True
        if self._notifier.rooms_changed_since(rooms, token.events):
            return True
        return any(
            ext.has_updates(user_id, rooms, int(getattr(token, ext.stream)))
            for ext in self.extensions
        )

    def bound_future_token(self, since: SyncToken) -> SyncToken:
        """A token ahead of the server's streams (never given out by this server: a
        crafted token, a database restored from a backup) taken back to what the
        server has, as Synapse does, so nothing is skipped when the streams move on.
        Typing restarts with the process (its own code reads a position ahead as a
        restart); a to-device position ahead acknowledges nothing (0), so no message
        waiting for the device is deleted on its word."""
        now = self.current_token(since)
        bounded: dict[str, int] = {}
        for f in fields(SyncToken):
            value, current = getattr(since, f.name), getattr(now, f.name)
            if f.name == "typing" or value <= current:
                bounded[f.name] = value
            elif f.name == "to_device":
                bounded[f.name] = 0
            else:
                bounded[f.name] = current
        return SyncToken(**bounded)

    def current_token(self, since: SyncToken | None) -> SyncToken:
        """Every stream's committed position (streams nobody serves keep ``since``'s)."""
        positions: dict[str, int] = {
            f.name: getattr(since, f.name) if since is not None else 0 for f in fields(SyncToken)
        }
        positions["events"] = self._events_stream.current()
        for ext in self.extensions:
            positions[ext.stream] = ext.current_position()
        return SyncToken(**positions)

    async def _compute(self, request: SyncRequest, since: SyncToken | None) -> SyncPass:
        now = self.current_token(since)
        result = SyncResult(next_batch=now.serialize())
        sync = SyncPass(
            user_id=request.user_id,
            device_id=request.device_id,
            since=since,
            now=now,
            filter=request.filter,
            full_state=request.full_state,
            joined_room_ids=[],
            result=result,
        )
        await self._rooms.fill(sync, use_state_after=request.use_state_after)
        for ext in self.extensions:
            await ext.contribute(sync)
        await self._rooms.fill_unread(sync)
        return sync
