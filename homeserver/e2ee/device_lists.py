"""The device list stream: who changed their devices or cross-signing keys, and when.

Spec: client-server "Tracking the device list for a user", "Extensions to /sync"
(``device_lists``), ``GET /keys/changes``; server-server "Device Management".

Every change of a user's device keys (upload, replacement, device deletion) or
cross-signing keys is a row of ``device_lists_stream`` at a position handed out by a
``StreamIdGenerator`` seeded from the database. The position is finished when the
writing transaction commits (or is dropped after a rollback), so a reader never
skips a change that commits late. On commit the users sharing a room with the
changed user are woken through the notifier, and ``change_listeners`` (federation:
``m.device_list_update`` / ``m.signing_key_update`` EDUs) are told.

With workers one process writes the stream (``stream_writers.device_lists``): it
publishes the changed user of each change (or, for a change only one user sees,
that user) before the position is finished; the others read the changes from the
database and are told (``apply_replicated``) whom to wake.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from homeserver.notifier import Notifier
from homeserver.replication.ephemeral import StreamRole, StreamSource
from homeserver.replication.notices import DEVICE_LISTS, NoticePublisher, UserStreamNotice
from homeserver.streams import StreamIdGenerator, SyncToken
from storage.database import Transaction
from storage.stores import Stores

logger = logging.getLogger(__name__)

# Told after commit: (user_id, device_ids, stream position). ``device_ids`` is empty
# for a change of cross-signing keys. Federation registers one to send EDUs.
DeviceListListener = Callable[[str, list[str], int], Awaitable[None]]


@dataclass(frozen=True)
class DeviceListChanges:
    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return {"changed": self.changed, "left": self.left}


class _Position:
    """A stream position that is finished exactly once: on commit or when dropped."""

    def __init__(self, stream: StreamIdGenerator) -> None:
        self.stream = stream
        self.value = stream.allocate()
        self.done = False

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.stream.finish(self.value)


class DeviceListService:
    def __init__(
        self,
        stores: Stores,
        notifier: Notifier,
        stream: StreamSource,
        *,
        publisher: NoticePublisher | None = None,
        instance_name: str = "master",
        writer: str | None = None,
    ) -> None:
        self._stores = stores
        self._notifier = notifier
        self.stream = stream
        self._role = StreamRole.of(DEVICE_LISTS, publisher, instance_name, writer)
        # a reader may have missed changes at or before this position
        self._complete_from = 0
        self._replica_tasks: set[asyncio.Task[None]] = set()
        self.change_listeners: list[DeviceListListener] = []
        self._listener_tasks: set[asyncio.Task[None]] = set()
        self._announcing: dict[int, asyncio.Task[None]] = {}
        # in-memory "last change" positions so a long-poll can tell without a query
        self._room_last_change: dict[str, int] = {}
        self._user_last_change: dict[str, int] = {}

    def current_position(self) -> int:
        return self.stream.current()

    # -- recording changes ------------------------------------------------------------

    async def record_change_txn(
        self,
        txn: Transaction,
        user_id: str,
        device_ids: Collection[str],
        *,
        only_for: str | None = None,
    ) -> int:
        """Add a change of ``user_id``'s device list (or cross-signing keys when
        ``device_ids`` is empty) inside ``txn``; wake and notify after commit.

        ``only_for``: the change is visible to that user alone (their user-signing key
        signed ``user_id``'s master key); nobody else is woken or told.
        """
        self._role.check_writes()
        assert isinstance(self.stream, StreamIdGenerator)
        position = _Position(self.stream)
        # A rolled-back transaction never runs its after-commit callbacks: finish the
        # position when the transaction object goes away instead.
        weakref.finalize(txn, position.finish)
        await self._stores.e2e_keys.add_device_list_change_txn(
            txn, position.value, user_id, device_ids, only_for
        )
        rooms: list[str] = []
        if only_for is None:
            rows = await txn.fetchall(
                "SELECT room_id FROM current_state WHERE state_key = $1"
                " AND type = 'm.room.member' AND membership = 'join'",
                user_id,
            )
            rooms = [r[0] for r in rows]
        devices = list(device_ids)

        def on_commit() -> None:
            if self._role.publishes:
                self._role.users_changed(position.value, (only_for or user_id,))
            position.finish()
            if only_for is not None:
                self._user_last_change[only_for] = position.value
                self._notifier.on_user_change(only_for)
                return
            self._user_last_change[user_id] = position.value
            for room_id in rooms:
                self._room_last_change[room_id] = position.value
            self._notifier.on_user_change(user_id)
            self._notifier.on_rooms_change(rooms)
            if self.change_listeners:
                # the listeners of the moment of the commit: one added later (while
                # an earlier one awaits) must not hear of an older change
                listeners = list(self.change_listeners)
                task = asyncio.get_running_loop().create_task(
                    self._tell_listeners(listeners, user_id, devices, position.value)
                )
                self._listener_tasks.add(task)
                task.add_done_callback(self._listener_tasks.discard)
                self._announcing[position.value] = task
                task.add_done_callback(lambda _: self._announcing.pop(position.value, None))

        txn.call_after_commit(on_commit)
        return position.value

    async def record_change(self, user_id: str, device_ids: Collection[str]) -> int:
        """Record a change in a transaction of its own (e.g. a remote user's update)."""
        self._role.check_writes()
        return await self._stores.db.run_transaction(
            "record_device_list_change",
            lambda txn: self.record_change_txn(txn, user_id, device_ids),
        )

    async def on_device_added_txn(self, txn: Transaction, user_id: str, device_id: str) -> None:
        """``SessionService.device_added_hooks`` entry: a new device (a login) is a
        change of the user's device list, for their own other devices and for the
        users and servers sharing a room with them (client-server "Tracking the
        device list for a user"; s2s "Device Management": "for new ... devices")."""
        await self.record_change_txn(txn, user_id, [device_id])

    async def on_device_renamed(self, user_id: str, device_id: str) -> None:
        """``SessionService.device_renamed_hooks`` entry: a new display name is a device
        list change; returns once it is on its way to other servers."""
        await self.announced([await self.record_change(user_id, [device_id])])

    async def on_devices_removed_txn(
        self, txn: Transaction, user_id: str, device_ids: list[str]
    ) -> None:
        """``SessionService.device_removed_hooks`` entry: drop the keys, record the change."""
        if not device_ids:
            return
        await self._stores.e2e_keys.delete_device_keys_txn(txn, user_id, device_ids)
        await self.record_change_txn(txn, user_id, device_ids)

    async def announced(self, positions: Collection[int]) -> None:
        """Wait until the listeners were told of the changes at ``positions`` (their
        EDUs queued for other servers): a client's request that changed its keys
        returns once the change is on its way, as Synapse answers once it is queued."""
        tasks = [t for t in map(self._announcing.get, positions) if t is not None]
        if tasks:
            await asyncio.wait(tasks)

    async def wait_listeners(self) -> None:
        """Wait until the listeners were told of every change committed so far."""
        while self._listener_tasks:
            await asyncio.gather(*self._listener_tasks, return_exceptions=True)

    async def _tell_listeners(
        self,
        listeners: list[DeviceListListener],
        user_id: str,
        device_ids: list[str],
        position: int,
    ) -> None:
        for listener in listeners:
            try:
                await listener(user_id, device_ids, position)
            except Exception:
                logger.exception("device list listener failed for %s", user_id)

    # -- replication --------------------------------------------------------------------

    def apply_replicated(self, notice: UserStreamNotice) -> None:
        """The device-list writer recorded changes of ``notice.users`` (readers only):
        wake them, and the users sharing a room with them once their rooms are read."""
        if self._role.writes:
            return
        for user_id in notice.users:
            self._user_last_change[user_id] = max(
                notice.position, self._user_last_change.get(user_id, 0)
            )
            self._notifier.on_user_change(user_id)
        task = asyncio.get_running_loop().create_task(
            self._wake_rooms(notice.users, notice.position)
        )
        self._replica_tasks.add(task)
        task.add_done_callback(self._replica_tasks.discard)

    async def _wake_rooms(self, user_ids: Collection[str], position: int) -> None:
        """(A sync that runs before this reads the change from the database anyway.)"""
        try:
            rooms: set[str] = set()
            for user_id in user_ids:
                memberships = await self._stores.state.rooms_for_user(user_id)
                rooms.update(r for r, m in memberships.items() if m == "join")
        except Exception:
            logger.exception("reading the rooms of %s failed", list(user_ids))
            return
        for room_id in rooms:
            self._room_last_change[room_id] = max(position, self._room_last_change.get(room_id, 0))
        self._notifier.on_rooms_change(rooms)

    async def wait_replica(self) -> None:
        """Wait until the rooms of every change heard so far were woken (tests)."""
        while self._replica_tasks:
            await asyncio.gather(*self._replica_tasks, return_exceptions=True)

    def resync_replica(self) -> None:
        """After missed notices (readers only): a sync from before now reads once."""
        if not self._role.writes:
            self._complete_from = self.stream.current()

    # -- reading changes --------------------------------------------------------------

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool:
        """Whether a device list change after ``since`` concerns the user (no IO)."""
        if self._user_last_change.get(user_id, 0) > since or since < self._complete_from:
            return True
        return any(self._room_last_change.get(r, 0) > since for r in room_ids)

    async def device_lists(
        self, user_id: str, since: SyncToken, now: SyncToken
    ) -> DeviceListChanges:
        """``device_lists`` of an incremental /sync and of ``GET /keys/changes``.

        ``changed``: users sharing a room with ``user_id`` now whose device list changed
        in (since, now], plus users who started sharing a room in that window (a join
        of theirs into one of our rooms, or ours into one of theirs) and users invited
        to or knocking on one of our rooms then (as Synapse: a client sending to the
        room's members encrypts for the invited too). ``left``: users who shared a
        room with us in that window and share none now.
        """
        state = self._stores.state
        memberships = await state.rooms_for_user(user_id)
        if now.device_lists <= since.device_lists and (
            now.events <= since.events
            or self._stores.sync.recent.memberships_unchanged(memberships, since.events)
        ):
            return DeviceListChanges([], [])  # no device changed, nobody came or went
        joined = {r for r, m in memberships.items() if m == "join"}
        shared_now: set[str] = {user_id}
        all_members = await state.current_members_many(list(memberships))
        for room_id in joined:
            shared_now.update(u for u, m in all_members[room_id].items() if m == "join")

        changed, signed_by_me = await self._stores.e2e_keys.users_with_device_changes(
            since.device_lists, now.device_lists, user_id
        )
        changed &= shared_now
        newly_shared: set[str] = set()
        newly_invited: set[str] = set()
        left: set[str] = set()
        if now.events > since.events:
            rows = await self._stores.e2e_keys.membership_changes_between(
                list(memberships), since.events, now.events
            )
            for room_id, member, membership in rows:
                if member == user_id:
                    others = all_members.get(room_id) or await state.current_members(room_id)
                    others_joined = {u for u, m in others.items() if m == "join"}
                    if membership == "join" and room_id in joined:
                        newly_shared |= others_joined
                    elif membership in ("leave", "ban"):
                        left |= others_joined
                elif membership == "join" and room_id in joined:
                    newly_shared.add(member)
                elif membership in ("invite", "knock") and room_id in joined:
                    newly_invited.add(member)
                    left.discard(member)
                elif membership in ("leave", "ban"):
                    left.add(member)
                    newly_invited.discard(member)
        newly_shared.discard(user_id)
        changed |= newly_shared & shared_now
        changed |= newly_invited - {user_id}
        changed |= signed_by_me
        left -= shared_now
        return DeviceListChanges(sorted(changed), sorted(left))
