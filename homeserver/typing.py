"""Typing notifications (client-server API: Typing Notifications).

Held in memory only: room -> {user: expiry (ms)}. Every change takes the next
position of the typing stream (in memory, restarting at 0 with the process; a token
whose typing position is ahead of the current one counts as 0) and wakes the room's
long-polls. ``tick()`` expires timed-out typists (a background task calls it every
second; tests call it after moving the FakeClock).

With workers one process writes typing (``stream_writers.typing``): each change is
published with the room's typists (readers have no other source) and the other
processes mirror it (``apply_replicated``) and never write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from homeserver.clock import Clock
from homeserver.errors import Forbidden
from homeserver.notifier import Notifier
from homeserver.replication.ephemeral import StreamRole, StreamSource
from homeserver.replication.notices import TYPING, NoticePublisher, RoomsStreamNotice
from homeserver.streams import StreamIdGenerator
from homeserver.sync.extensions import SyncPass
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000


class TypingService:
    local_typing_listeners: list[Callable[[str, str, bool], Awaitable[None]]]

    def __init__(
        self,
        server_name: str,
        stores: Stores,
        notifier: Notifier,
        clock: Clock,
        stream: StreamSource | None = None,
        *,
        publisher: NoticePublisher | None = None,
        instance_name: str = "master",
        writer: str | None = None,
    ) -> None:
        self.local_typing_listeners = []
        self._suffix = ":" + server_name
        self._stores = stores
        self._notifier = notifier
        self._clock = clock
        # positions live in memory: a single process starts again at 0
        self._stream = stream if stream is not None else StreamIdGenerator(0)
        self._role = StreamRole.of(TYPING, publisher, instance_name, writer)
        self._typing: dict[str, dict[str, int]] = {}
        self._room_serial: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def current_position(self) -> int:
        return self._stream.current()

    async def set_typing(self, user_id: str, room_id: str, typing: bool, timeout_ms: int) -> None:
        """PUT /rooms/{roomId}/typing/{userId}; the user must be joined."""
        self._role.check_writes()
        rooms = await self._stores.state.rooms_for_user(user_id)
        if rooms.get(room_id) != "join":
            raise Forbidden("You are not joined to this room")
        if typing:
            self.started_typing(user_id, room_id, min(max(timeout_ms, 0), MAX_TIMEOUT_MS))
        else:
            self.stopped_typing(user_id, room_id)
        await self._tell_listeners(user_id, room_id, typing)

    async def _tell_listeners(self, user_id: str, room_id: str, typing: bool) -> None:
        """Local typing goes to the other servers in the room (federation installs one)."""
        for listener in self.local_typing_listeners:
            await listener(user_id, room_id, typing)

    def started_typing(self, user_id: str, room_id: str, timeout_ms: int) -> None:
        self._role.check_writes()
        typists = self._typing.setdefault(room_id, {})
        was_typing = user_id in typists
        typists[user_id] = self._clock.time_ms() + timeout_ms
        if not was_typing:
            self._changed([room_id])

    def stopped_typing(self, user_id: str, room_id: str) -> bool:
        """Whether the user was typing."""
        self._role.check_writes()
        typists = self._typing.get(room_id)
        if typists is None or user_id not in typists:
            return False
        del typists[user_id]
        if not typists:
            del self._typing[room_id]
        self._changed([room_id])
        return True

    def tick(self) -> None:
        """Expire every typist whose timeout has passed (the writer's job)."""
        if not self._role.writes:
            return
        now = self._clock.time_ms()
        changed: list[str] = []
        for room_id, typists in list(self._typing.items()):
            expired = [u for u, until in typists.items() if until <= now]
            for user_id in expired:
                del typists[user_id]
            if expired:
                changed.append(room_id)
            if not typists:
                del self._typing[room_id]
        if changed:
            self._changed(changed)

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        """A member who leaves the room (or is kicked, banned) stops typing there
        (persister hook); for a local user, the other servers are told so too.

        Sending a message does not stop typing: the client says when its user stops
        (client-server API, Typing Notifications), as Synapse does."""
        event = stored.event
        user_id = event.state_key
        if (
            not self._role.writes  # the writer hears of it (EphemeralMirror.on_room_event)
            or not stored.stream_ordering  # backfilled history is not a change now
            or stored.stream_ordering < 0
            or event.type != "m.room.member"
            or user_id is None
            or event.membership == "join"
            or event.room_id not in self._typing
        ):
            return
        if self.stopped_typing(user_id, event.room_id) and user_id.endswith(self._suffix):
            await self._tell_listeners(user_id, event.room_id, False)

    def _changed(self, room_ids: list[str]) -> None:
        stream = self._stream
        assert isinstance(stream, StreamIdGenerator)  # check_writes passed
        position = stream.allocate()
        try:
            for room_id in room_ids:
                self._room_serial[room_id] = position
            if self._role.publishes:
                data = {room_id: self.typing_users(room_id) for room_id in room_ids}
                self._role.rooms_changed(position, tuple(room_ids), dict(data))
        finally:
            stream.finish(position)
        self._notifier.on_rooms_change(room_ids)

    # -- replication ------------------------------------------------------------------

    def apply_replicated(self, notice: RoomsStreamNotice) -> None:
        """The typing writer changed the typists of ``notice.rooms`` (readers only)."""
        if self._role.writes:
            return
        data = notice.data or {}
        for room_id in notice.rooms:
            users = data.get(room_id)
            typists = [u for u in users if isinstance(u, str)] if isinstance(users, list) else []
            if typists:
                # a reader never expires typists: the writer says when they stop
                self._typing[room_id] = dict.fromkeys(typists, 0)
            else:
                self._typing.pop(room_id, None)
            self._room_serial[room_id] = notice.position
        self._notifier.on_rooms_change(notice.rooms)

    def member_changed(self, room_id: str, user_id: str) -> None:
        """A membership event another process persisted: on the writer, a typist whose
        membership is no longer ``join`` stops typing (checked against the state)."""
        if not self._role.writes or user_id not in self._typing.get(room_id, {}):
            return
        task = asyncio.get_running_loop().create_task(self._stop_if_left(room_id, user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_if_left(self, room_id: str, user_id: str) -> None:
        try:
            members = await self._stores.state.current_members(room_id)
            if members.get(user_id) == "join" or not self.stopped_typing(user_id, room_id):
                return
            if user_id.endswith(self._suffix):
                await self._tell_listeners(user_id, room_id, False)
        except Exception:
            logger.exception("stopping %s typing in %s failed", user_id, room_id)

    def resync_replica(self) -> None:
        """After missed notices (readers only): typing cannot be recovered (it lives in
        the writer's memory alone), so every room shown typing is shown empty from the
        current position; the writer's next change of the room brings it back."""
        if self._role.writes:
            return
        rooms = list(self._typing)
        self._typing.clear()
        position = self.current_position()
        for room_id in rooms:
            self._room_serial[room_id] = position
        self._notifier.on_rooms_change(rooms)

    def typing_users(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, {}))

    # -- /sync ----------------------------------------------------------------------

    def has_updates(self, room_ids: Collection[str], since: int) -> bool:
        if since > self.current_position():
            since = 0
        return any(self._room_serial.get(r, 0) > since for r in room_ids)

    def typing_for_sync(
        self, room_ids: Collection[str], since: int | None
    ) -> dict[str, list[dict[str, Any]]]:
        """room_id -> [``m.typing``] for rooms whose typists changed after ``since``
        (None, or a token from before a restart: every room with typing news since
        the start, an empty list included, as Synapse gives them: a client that
        saw someone typing learns that they stopped, even from an initial sync)."""
        if since is None or since > self.current_position():
            since = 0
        result: dict[str, list[dict[str, Any]]] = {}
        for room_id in room_ids:
            serial = self._room_serial.get(room_id)
            if serial is None or serial <= since:
                continue
            result[room_id] = [
                {"type": "m.typing", "content": {"user_ids": self.typing_users(room_id)}}
            ]
        return result


class TypingSyncExtension:
    """``m.typing`` in ``ephemeral`` of each joined room of /sync."""

    stream = "typing"

    def __init__(self, service: TypingService) -> None:
        self._service = service

    def current_position(self) -> int:
        return self._service.current_position()

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool:
        return self._service.has_updates(room_ids, since)

    async def contribute(self, sync: SyncPass) -> None:
        by_room = self._service.typing_for_sync(
            sync.joined_room_ids, sync.since_position(self.stream)
        )
        for room_id, events in by_room.items():
            sync.result.joined_room(room_id).ephemeral.extend(events)
