"""Presence (client-server API: Presence; "Last active ago", "Idle timeout").

Local users' presence is held in memory (loaded from the database on first use) and
persisted in batches. A change visible to others (state, status message,
``currently_active``) takes the next position of the presence stream; the batch then
wakes the long-polls of the user and of every room they are joined to, so only users
who share a room are woken, by room, never by scanning user pairs.

Transitions: a /sync with ``set_presence=online`` brings an offline user online; any
activity (sending, receipts, ``PUT /presence`` online) bumps ``last_active`` and makes
the user online; ``tick()`` (a background task every second; tests call it with a
FakeClock) makes an online user ``unavailable`` after ``idle_timeout`` without activity
and ``offline`` when no /sync is running and none ended within ``offline_timeout``.

With workers one process writes presence (``stream_writers.presence``). It finishes
a change's position only once the batch holding it is persisted and published (the
notice carries the new states and the rooms to wake), so a reader that reached the
position has both in memory and in the table. The readers mirror the states
(``apply_replicated``) and send what their users do (/sync running, activity) to the
writer through ``activity_forwarder``, without waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from homeserver.clock import Clock
from homeserver.config import PresenceConfig
from homeserver.errors import Forbidden, NotFound
from homeserver.notifier import Notifier
from homeserver.replication.ephemeral import StreamRole, StreamSource
from homeserver.replication.notices import PRESENCE, NoticePublisher, RoomsStreamNotice
from homeserver.streams import MAX_POSITION, StreamIdGenerator
from homeserver.sync.extensions import SyncPass
from storage.presence import PresenceRecord
from storage.stores import Stores

logger = logging.getLogger(__name__)

ONLINE, UNAVAILABLE, OFFLINE = "online", "unavailable", "offline"
PRESENCE_STATES = (ONLINE, UNAVAILABLE, OFFLINE)
# currently_active stays true this long after the last activity
LAST_ACTIVE_GRANULARITY_MS = 60_000
# above this many changed users, sharing is checked against the syncing user's rooms
_PER_USER_CHECK_LIMIT = 50
_ROOMS_CACHE_SIZE = 100_000
REMOTE_OFFLINE_MS = 30 * 60 * 1000


@dataclass
class UserPresence:
    user_id: str
    state: str = OFFLINE
    status_msg: str | None = None
    last_active_ts: int = 0
    last_user_sync_ts: int = 0
    currently_active: bool = False
    stream_id: int = 0

    def record(self) -> PresenceRecord:
        return PresenceRecord(
            self.user_id,
            self.state,
            self.status_msg,
            self.last_active_ts,
            self.last_user_sync_ts,
            self.currently_active,
            self.stream_id,
        )

    @classmethod
    def of(cls, record: PresenceRecord) -> UserPresence:
        return cls(
            record.user_id,
            record.state,
            record.status_msg,
            record.last_active_ts,
            record.last_user_sync_ts,
            record.currently_active,
            record.stream_id,
        )

    def content(self, now_ms: int) -> dict[str, Any]:
        """The ``m.presence`` content (and the body of GET /presence/{userId}/status)."""
        content: dict[str, Any] = {"presence": self.state}
        if self.last_active_ts:
            content["last_active_ago"] = max(0, now_ms - self.last_active_ts)
        if self.status_msg:
            content["status_msg"] = self.status_msg
        if self.state == ONLINE:
            content["currently_active"] = self.currently_active
        return content


class PresenceService:
    def __init__(
        self,
        config: PresenceConfig,
        server_name: str,
        stores: Stores,
        notifier: Notifier,
        clock: Clock,
        stream: StreamSource,
        *,
        publisher: NoticePublisher | None = None,
        instance_name: str = "master",
        writer: str | None = None,
    ) -> None:
        self.enabled = config.enabled
        self._idle_ms = config.idle_timeout
        self._offline_ms = config.offline_timeout
        self._server_name = server_name
        self._stores = stores
        self._notifier = notifier
        self._clock = clock
        self._stream = stream
        self._role = StreamRole.of(PRESENCE, publisher, instance_name, writer)
        # positions allocated but held until their batch is persisted and published
        # (only when other processes read the stream)
        self._held: list[int] = []
        # instance -> user -> the set_presence of a /sync running there (the writer)
        self._remote_syncing: dict[str, dict[str, str]] = {}
        # where a reader sends its users' activity (set by the composition root)
        self.activity_forwarder: PresenceActivitySink | None = None
        self._states: dict[str, UserPresence] = {}
        # user -> position of their latest visible change, in position order
        self._changes: dict[str, int] = {}
        # changes at or before this position are only known to the database
        self._log_start = stream.current() if self._role.writes else MAX_POSITION
        self._syncing: dict[str, int] = {}
        self._not_offline: set[str] = set()
        self._dirty: set[str] = set()
        self._to_wake: set[str] = set()
        # user -> joined rooms, dropped when one of their memberships changes
        self._rooms_of: dict[str, frozenset[str]] = {}
        # room -> position of the latest announced change of one of its members
        self._room_changed: dict[str, int] = {}
        self._flush_lock = asyncio.Lock()
        self._flush_task: asyncio.Task[None] | None = None
        # visible changes of local users, for other servers (federation installs one)
        self.local_change_listeners: list[Callable[[UserPresence], None]] = []

    async def load(self) -> None:
        """At start-up: watch the users the database says are not offline."""
        for record in await self._stores.presence.not_offline():
            self._states[record.user_id] = UserPresence.of(record)
            self._not_offline.add(record.user_id)

    def current_position(self) -> int:
        return self._stream.current()

    async def get(self, user_id: str) -> UserPresence:
        state = self._states.get(user_id)
        if state is not None:
            return state
        found = await self._stores.presence.get_presence([user_id])
        loaded = UserPresence.of(found[user_id]) if user_id in found else UserPresence(user_id)
        return self._states.setdefault(user_id, loaded)

    async def states_of(self, user_ids: Iterable[str]) -> list[UserPresence]:
        """The current presence of each of ``user_ids`` (offline when never seen)."""
        return list((await self._get_many(user_ids)).values())

    async def _get_many(self, user_ids: Iterable[str]) -> dict[str, UserPresence]:
        result: dict[str, UserPresence] = {}
        missing = []
        for user_id in user_ids:
            state = self._states.get(user_id)
            if state is not None:
                result[user_id] = state
            else:
                missing.append(user_id)
        if missing:
            found = await self._stores.presence.get_presence(missing)
            for user_id in missing:
                loaded = (
                    UserPresence.of(found[user_id]) if user_id in found else UserPresence(user_id)
                )
                result[user_id] = self._states.setdefault(user_id, loaded)
        return result

    # -- changes --------------------------------------------------------------------

    async def set_state(self, user_id: str, state: str, status_msg: str | None) -> None:
        """PUT /presence/{userId}/status: durable before it returns."""
        if not self.enabled:
            return
        self._role.check_writes()
        now = self._clock.time_ms()
        old = await self.get(user_id)
        new = replace(old, state=state, status_msg=status_msg, last_user_sync_ts=now)
        if state == ONLINE:
            new.last_active_ts = now
            new.currently_active = True
        elif state == OFFLINE:
            new.currently_active = False
        self._apply(old, new)
        await self.flush()

    async def bump_active(self, user_id: str) -> None:
        """The user did something (sent an event, a receipt): online and active now."""
        if not self.enabled or not self._is_local(user_id):
            return
        if not self._role.writes:
            self._forward_active(user_id)
            return
        now = self._clock.time_ms()
        old = await self.get(user_id)
        new = replace(old, state=ONLINE, last_active_ts=now, currently_active=True)
        new.last_user_sync_ts = now
        self._apply(old, new)

    async def sync_started(self, user_id: str, set_presence: str) -> None:
        """Sync hook: a /sync began with ``set_presence``."""
        if not self.enabled or set_presence == OFFLINE:
            return
        if not self._role.writes:
            if self.activity_forwarder is not None:
                self.activity_forwarder.sync_started(user_id, set_presence)
            return
        now = self._clock.time_ms()
        self._syncing[user_id] = self._syncing.get(user_id, 0) + 1
        old = await self.get(user_id)
        new = replace(old, last_user_sync_ts=now)
        if set_presence == ONLINE and old.state == OFFLINE:
            new.state, new.last_active_ts, new.currently_active = ONLINE, now, True
        elif set_presence == UNAVAILABLE and old.state != UNAVAILABLE:
            new.state, new.currently_active = UNAVAILABLE, False
        self._apply(old, new)

    def sync_ended(self, user_id: str, set_presence: str = ONLINE) -> None:
        """Sync hook: a /sync returned; offline_timeout counts from now."""
        if not self.enabled or set_presence == OFFLINE:
            return
        if not self._role.writes:
            if self.activity_forwarder is not None:
                self.activity_forwarder.sync_ended(user_id, set_presence)
            return
        count = self._syncing.get(user_id, 0) - 1
        if count > 0:
            self._syncing[user_id] = count
        else:
            self._syncing.pop(user_id, None)
        state = self._states.get(user_id)
        if state is not None:
            state.last_user_sync_ts = self._clock.time_ms()
            self._dirty.add(user_id)  # persisted with the next batch

    async def tick(self) -> None:
        """Apply the idle and offline timeouts to every user who is not offline (the
        writer); a reader reports the users who stopped syncing there."""
        if not self.enabled:
            return
        if not self._role.writes:
            if self.activity_forwarder is not None:
                self.activity_forwarder.tick()
            return
        now = self._clock.time_ms()
        for user_id in list(self._not_offline):
            old = self._states.get(user_id)
            if old is None:
                continue
            new = replace(old)
            if not self._is_local(user_id):
                # Remote users' servers send their changes; without news for a long
                # while they are taken to be offline.
                if now - old.last_user_sync_ts > REMOTE_OFFLINE_MS:
                    new.state, new.currently_active = OFFLINE, False
                    self._apply(old, new)
                continue
            inactive_ms = now - old.last_active_ts
            if new.state == ONLINE and inactive_ms > self._idle_ms:
                new.state = UNAVAILABLE
            if new.currently_active and inactive_ms > LAST_ACTIVE_GRANULARITY_MS:
                new.currently_active = False
            if user_id not in self._syncing and now - old.last_user_sync_ts > self._offline_ms:
                new.state, new.currently_active = OFFLINE, False
            self._apply(old, new)
        await self.flush()

    async def receive_remote(
        self,
        user_id: str,
        state: str,
        status_msg: str | None,
        last_active_ago: int | None,
        currently_active: bool,
    ) -> None:
        """A remote user's presence from their server (an ``m.presence`` EDU)."""
        self._role.check_writes()
        if (
            not self.enabled
            or self._is_local(user_id)
            or state not in (ONLINE, UNAVAILABLE, OFFLINE)
        ):
            return
        old = await self.get(user_id)
        now = self._clock.time_ms()
        new = replace(
            old,
            state=state,
            status_msg=status_msg,
            currently_active=currently_active and state == ONLINE,
            last_active_ts=now - max(0, last_active_ago)
            if last_active_ago is not None
            else old.last_active_ts,
            last_user_sync_ts=now,
        )
        self._apply(old, new)

    def _apply(self, old: UserPresence, new: UserPresence) -> None:
        """Replace a user's presence; a visible change takes a stream position."""
        visible = (old.state, old.status_msg, old.currently_active) != (
            new.state,
            new.status_msg,
            new.currently_active,
        )
        if new == old:
            return
        user_id = new.user_id
        if visible and self._is_local(user_id):
            for listener in self.local_change_listeners:
                listener(new)
        if visible:
            stream = self._stream
            assert isinstance(stream, StreamIdGenerator)  # only the writer applies
            position = stream.allocate()
            if self._role.publishes:
                self._held.append(position)  # finished by flush, once published
            else:
                stream.finish(position)
            new.stream_id = position
            self._changes.pop(user_id, None)
            self._changes[user_id] = position
            self._to_wake.add(user_id)
        self._states[user_id] = new
        if new.state == OFFLINE:
            self._not_offline.discard(user_id)
        else:
            self._not_offline.add(user_id)
        # invisible changes (sync and activity times) wait for the next batch
        self._dirty.add(user_id)
        if visible and (self._flush_task is None or self._flush_task.done()):
            self._flush_task = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        """Wake the long-polls of changed users' rooms; persist the batch of changes."""
        async with self._flush_lock:
            if self._role.publishes:
                await self._flush_published()
                return
            to_wake, self._to_wake = self._to_wake, set()
            dirty, self._dirty = self._dirty, set()
            if to_wake:
                rooms: set[str] = set()
                for user_id in to_wake:
                    rooms |= await self._joined_rooms(user_id)
                position = max(self._changes.get(u, 0) for u in to_wake)
                for room_id in rooms:
                    self._room_changed[room_id] = position
                for user_id in to_wake:
                    self._notifier.on_user_change(user_id)
                self._notifier.on_rooms_change(rooms)
            records = [self._states[u].record() for u in dirty if u in self._states]
            try:
                await self._stores.presence.upsert_many(records)
            except Exception:
                logger.exception("persisting presence failed; will retry")
                self._dirty |= dirty
                raise

    async def _flush_published(self) -> None:
        """``flush`` of a writer that others read: persist, publish (states and rooms
        to wake), then finish the batch's positions and wake here."""
        to_wake, self._to_wake = self._to_wake, set()
        dirty, self._dirty = self._dirty, set()
        held, self._held = self._held, []
        records = [self._states[u].record() for u in dirty if u in self._states]
        # what this batch announces, as it is now (a change made while it is written
        # goes with the next batch)
        states = {u: _state_json(self._states[u]) for u in sorted(to_wake)}
        position = max((self._changes.get(u, 0) for u in to_wake), default=0)
        try:
            rooms: set[str] = set()
            for user_id in to_wake:
                rooms |= await self._joined_rooms(user_id)
            await self._stores.presence.upsert_many(records)
        except Exception:
            logger.exception("persisting presence failed; will retry")
            self._to_wake |= to_wake
            self._dirty |= dirty
            self._held = held + self._held
            raise
        stream = self._stream
        assert isinstance(stream, StreamIdGenerator)
        if to_wake:
            self._role.rooms_changed(position, tuple(sorted(rooms)), {"users": states})
            for room_id in rooms:
                self._room_changed[room_id] = position
        for position in held:
            stream.finish(position)
        for user_id in to_wake:
            self._notifier.on_user_change(user_id)
        self._notifier.on_rooms_change(rooms)

    # -- replication ------------------------------------------------------------------

    def apply_replicated(self, notice: RoomsStreamNotice) -> None:
        """The presence writer changed the presence of some users (readers only)."""
        if self._role.writes:
            return
        users = (notice.data or {}).get("users")
        if not isinstance(users, dict):
            return
        for user_id, fields in users.items():
            state = _state_of(user_id, fields)
            if state is None:
                self._states.pop(user_id, None)  # read again from the table
                continue
            self._states[user_id] = state
            self._changes.pop(user_id, None)
            self._changes[user_id] = notice.position
            if state.state == OFFLINE:
                self._not_offline.discard(user_id)
            else:
                self._not_offline.add(user_id)
        for room_id in notice.rooms:
            self._room_changed[room_id] = notice.position
        for user_id in users:
            self._notifier.on_user_change(user_id)
        self._notifier.on_rooms_change(notice.rooms)

    async def resync_replica(self) -> None:
        """After missed notices (readers only): presence is read again from its table
        (complete up to the current position, which the writer reaches only once a
        change is persisted); changes before now are read from the table."""
        if self._role.writes:
            return
        position = self._stream.current()
        records = await self._stores.presence.not_offline()
        self._states.clear()
        self._changes.clear()
        self._not_offline.clear()
        for record in records:
            self._states[record.user_id] = UserPresence.of(record)
            self._not_offline.add(record.user_id)
        self._log_start = position
        rooms = set(self._room_changed)
        for room_id in rooms:
            self._room_changed[room_id] = position
        self._notifier.on_rooms_change(rooms)

    def _forward_active(self, user_id: str) -> None:
        if self.activity_forwarder is not None:
            self.activity_forwarder.active(user_id)

    async def remote_activity(
        self,
        instance: str,
        user_id: str,
        set_presence: str | None,
        active: bool,
        *,
        reset: bool = False,
    ) -> None:
        """What a user did on another process (the writer; see ``activity_forwarder``):
        ``set_presence`` of the /sync running there (None: none is), ``active`` (they
        sent something); ``reset``: that process (re)started, its earlier syncs ended."""
        self._role.check_writes()
        if not self.enabled:
            return
        syncing = self._remote_syncing.setdefault(instance, {})
        if reset:
            for other, ended in list(syncing.items()):
                del syncing[other]
                self.sync_ended(other, ended)
        previous = syncing.get(user_id)
        if previous != set_presence:
            if previous is not None:
                del syncing[user_id]
                self.sync_ended(user_id, previous)
            if set_presence is not None and set_presence in PRESENCE_STATES:
                syncing[user_id] = set_presence
                await self.sync_started(user_id, set_presence)
        if active:
            await self.bump_active(user_id)

    # -- reading --------------------------------------------------------------------

    async def get_visible(self, requester: str, target: str) -> dict[str, Any]:
        """GET /presence/{userId}/status: own presence, or of a user sharing a room."""
        if target != requester:
            if self._is_local(target) and await self._stores.accounts.get_user(target) is None:
                raise NotFound("No such user")
            if not (await self._joined_rooms(requester)) & (await self._joined_rooms(target)):
                raise Forbidden("You are not allowed to see their presence")
        state = await self.get(target)
        return state.content(self._clock.time_ms())

    async def presence_for_sync(
        self,
        user_id: str,
        room_ids: Collection[str],
        since: int | None,
        upto: int,
        newly_joined_room_ids: Collection[str] = (),
        arrived_users: Collection[str] = (),
    ) -> list[dict[str, Any]]:
        """``m.presence`` events for the user and users sharing a joined room with them:
        every non-offline one on an initial sync, else those changed in (since, upto]
        plus, offline or not (as Synapse gives them), the members of rooms joined since
        the last sync and the users who joined the user's rooms since then."""
        if not self.enabled:
            return []
        rooms = set(room_ids)
        if since is None:
            everyone = await self._members_of(rooms) | {user_id}
            states = await self._get_many(everyone)
            shown = [
                s
                for s in states.values()
                if s.state != OFFLINE or s.status_msg or s.user_id == user_id
            ]
        else:
            shown = list((await self._changed_between(since, upto)).values())
            if len(shown) > _PER_USER_CHECK_LIMIT:
                members = await self._members_of(rooms)
                shown = [s for s in shown if s.user_id == user_id or s.user_id in members]
            else:
                kept = []
                for s in shown:
                    if s.user_id == user_id or (await self._joined_rooms(s.user_id)) & rooms:
                        kept.append(s)
                shown = kept
            if newly_joined_room_ids or arrived_users:
                seen = {s.user_id for s in shown} | {user_id}
                new_members = (
                    await self._members_of(newly_joined_room_ids)
                    if newly_joined_room_ids
                    else set()
                )
                new_members = (new_members | set(arrived_users)) - seen
                shown += list((await self._get_many(new_members)).values())
        now = self._clock.time_ms()
        return [
            {"type": "m.presence", "sender": s.user_id, "content": s.content(now)}
            for s in sorted(shown, key=lambda s: s.user_id)
        ]

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool:
        """Whether the user or someone in ``room_ids`` changed presence after ``since``
        (only changes already announced by ``flush``; without awaiting)."""
        if not self.enabled or self._stream.current() <= since:
            return False
        if self._changes.get(user_id, 0) > since:
            return True
        return any(self._room_changed.get(r, 0) > since for r in room_ids)

    async def _changed_between(self, since: int, upto: int) -> dict[str, UserPresence]:
        changed: dict[str, UserPresence] = {}
        if since < self._log_start:
            for record in await self._stores.presence.changed_since(since, self._log_start):
                changed[record.user_id] = await self.get(record.user_id)
        for user_id in reversed(self._changes):
            position = self._changes[user_id]
            if position <= since:
                break
            if position <= upto:
                changed[user_id] = self._states[user_id]
        return changed

    async def _joined_rooms(self, user_id: str) -> frozenset[str]:
        cached = self._rooms_of.get(user_id)
        if cached is not None:
            return cached
        rooms = await self._stores.state.rooms_for_user(user_id)
        joined = frozenset(r for r, m in rooms.items() if m == "join")
        if len(self._rooms_of) >= _ROOMS_CACHE_SIZE:
            self._rooms_of.pop(next(iter(self._rooms_of)))
        self._rooms_of[user_id] = joined
        return joined

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: forget every
        user's cached rooms."""
        self._rooms_of.clear()

    def membership_changed(self, user_id: str) -> None:
        """A membership of the user changed: forget their cached rooms."""
        self._rooms_of.pop(user_id, None)

    async def _members_of(self, room_ids: Iterable[str]) -> set[str]:
        members: set[str] = set()
        for current in (await self._stores.state.current_members_many(list(room_ids))).values():
            members.update(u for u, m in current.items() if m == "join")
        return members

    def _is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self._server_name)


class PresenceActivitySink(Protocol):
    """Where a process that does not write presence sends what its users do
    (``ephemeral_endpoints.PresenceActivityForwarder``); never waits for the writer."""

    def sync_started(self, user_id: str, set_presence: str) -> None: ...

    def sync_ended(self, user_id: str, set_presence: str) -> None: ...

    def active(self, user_id: str) -> None: ...

    def tick(self) -> None: ...


def _state_json(state: UserPresence) -> list[Any]:
    return [
        state.state,
        state.status_msg,
        state.last_active_ts,
        state.last_user_sync_ts,
        state.currently_active,
        state.stream_id,
    ]


def _state_of(user_id: str, fields: Any) -> UserPresence | None:
    """The presence ``_state_json`` wrote, or None when it is not that."""
    if not isinstance(fields, list) or len(fields) != 6:
        return None
    state, status_msg, last_active, last_sync, active, stream_id = fields
    if (
        state not in PRESENCE_STATES
        or not (status_msg is None or isinstance(status_msg, str))
        or not all(isinstance(n, int) for n in (last_active, last_sync, stream_id))
        or not isinstance(active, bool)
    ):
        return None
    return UserPresence(user_id, state, status_msg, last_active, last_sync, active, stream_id)


class PresenceSyncExtension:
    """``presence`` of /sync: the user's and their room-mates' presence changes."""

    stream = "presence"

    def __init__(self, service: PresenceService) -> None:
        self._service = service

    def current_position(self) -> int:
        return self._service.current_position()

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool:
        return self._service.has_updates(user_id, room_ids, since)

    async def contribute(self, sync: SyncPass) -> None:
        presence_filter = sync.filter.presence
        if presence_filter.matches_nothing:
            return
        since = sync.since_position(self.stream)
        newly_joined = [
            r for r, room in sync.result.join.items() if since is not None and room.always_send
        ]
        events = await self._service.presence_for_sync(
            sync.user_id,
            sync.joined_room_ids,
            since,
            sync.upto_position(self.stream),
            newly_joined,
            sync.arrived_users if since is not None else (),
        )
        sync.result.presence.extend(e for e in events if presence_filter.matches(e))
