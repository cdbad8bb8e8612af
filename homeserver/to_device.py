"""Send-to-device messaging (client-server API: Send-to-Device messaging).

Messages for local devices are queued in the database under one position of the
to-device stream per request and delivered by /sync in order of arrival, at most
``SYNC_LIMIT`` per response; a sync whose ``since`` covers a message's position
acknowledges it and it is deleted. A request is handled once per (sender, device,
txnId). Messages for remote users go to ``remote_to_device_sender`` (federation
installs it; until then they are dropped with a warning).

With workers one process writes the stream (``stream_writers.to_device``): it
publishes the recipients of each request; the others read the inbox from the
database and are told (``apply_replicated``) whom to wake. Deleting acknowledged
messages is not a write of the stream: any process serving the device's /sync does it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from homeserver.clock import Clock
from homeserver.errors import BadJson
from homeserver.events import is_valid_user_id
from homeserver.notifier import Notifier
from homeserver.replication.ephemeral import StreamRole, StreamSource
from homeserver.replication.notices import TO_DEVICE, NoticePublisher, UserStreamNotice
from homeserver.streams import MAX_POSITION, StreamIdGenerator
from homeserver.sync.extensions import SyncPass
from storage.stores import Stores

logger = logging.getLogger(__name__)

SYNC_LIMIT = 100
ALL_DEVICES = "*"

# (sender, event_type, message_id, {server: {user: {device: content}}}) -> sent later
RemoteToDeviceSender = Callable[
    [str, str, str, dict[str, dict[str, dict[str, Any]]]], Awaitable[None]
]


class ToDeviceService:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        notifier: Notifier,
        stream: StreamSource,
        clock: Clock,
        *,
        publisher: NoticePublisher | None = None,
        instance_name: str = "master",
        writer: str | None = None,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._notifier = notifier
        self._stream = stream
        self._role = StreamRole.of(TO_DEVICE, publisher, instance_name, writer)
        self._clock = clock
        # messages after this position are all in _user_last (a reader knows of none
        # until its first resync)
        self._started_at = stream.current() if self._role.writes else MAX_POSITION
        # user -> position of their latest message queued since start-up
        self._user_last: dict[str, int] = {}
        # (user, device) -> highest position delivered and not yet acknowledged
        self._unacked: dict[tuple[str, str], int] = {}
        # devices whose inbox was cleaned once since start-up
        self._cleaned: set[tuple[str, str]] = set()
        self.remote_to_device_sender: RemoteToDeviceSender | None = None
        # told of the local users with new messages (application service delivery)
        self.inbox_listeners: list[Callable[[set[str]], None]] = []

    def current_position(self) -> int:
        return self._stream.current()

    async def send(
        self,
        sender: str,
        sender_device: str,
        event_type: str,
        txn_id: str,
        messages: dict[str, Any],
    ) -> None:
        """PUT /sendToDevice/{eventType}/{txnId}."""
        stream = self._writing()
        local: list[tuple[str, str, dict[str, Any]]] = []
        remote: dict[str, dict[str, dict[str, Any]]] = {}
        for user_id, by_device in messages.items():
            if not is_valid_user_id(user_id):
                raise BadJson(f"Invalid user ID: {user_id}")
            if not isinstance(by_device, dict):
                raise BadJson(f"messages[{user_id}] must be an object")
            for device_id, content in by_device.items():
                if not isinstance(content, dict):
                    raise BadJson(f"messages[{user_id}][{device_id}] must be an object")
            if self._is_local(user_id):
                local += await self._expand_local(user_id, by_device)
            else:
                server = user_id.split(":", 1)[1]
                remote.setdefault(server, {})[user_id] = by_device
        position = stream.allocate()
        try:
            fresh = await self._stores.to_device.add_messages(
                sender, sender_device, txn_id, event_type, local, position, self._clock.time_ms()
            )
            if fresh:
                self._published(local, position)
        finally:
            stream.finish(position)
        if not fresh:
            return
        self._announce({user_id for user_id, _, _ in local}, position)
        if remote:
            await self._send_remote(sender, event_type, remote)

    async def deliver_remote(
        self, sender: str, event_type: str, messages: dict[str, dict[str, Any]]
    ) -> None:
        """Queue messages that arrived over federation for local users."""
        stream = self._writing()
        local: list[tuple[str, str, dict[str, Any]]] = []
        for user_id, by_device in messages.items():
            if self._is_local(user_id) and isinstance(by_device, dict):
                local += await self._expand_local(user_id, by_device)
        if not local:
            return
        position = stream.allocate()
        try:
            await self._stores.to_device.add_remote_messages(sender, event_type, local, position)
            self._published(local, position)
        finally:
            stream.finish(position)
        self._announce({user_id for user_id, _, _ in local}, position)

    async def _expand_local(
        self, user_id: str, by_device: dict[str, Any]
    ) -> list[tuple[str, str, dict[str, Any]]]:
        devices = {d.device_id for d in await self._stores.devices.get_devices(user_id)}
        if ALL_DEVICES in by_device:
            content = by_device[ALL_DEVICES]
            return [(user_id, d, content) for d in sorted(devices) if isinstance(content, dict)]
        return [
            (user_id, d, c) for d, c in by_device.items() if d in devices and isinstance(c, dict)
        ]

    def _announce(self, users: set[str], position: int) -> None:
        for user_id in users:
            self._user_last[user_id] = position
            self._notifier.on_user_change(user_id)
        for listener in self.inbox_listeners:
            listener(users)

    async def _send_remote(
        self, sender: str, event_type: str, remote: dict[str, dict[str, dict[str, Any]]]
    ) -> None:
        if self.remote_to_device_sender is None:
            logger.warning("no federation sender: dropped to-device messages for %s", list(remote))
            return
        try:
            await self.remote_to_device_sender(sender, event_type, secrets.token_hex(16), remote)
        except Exception:
            logger.exception("queueing to-device messages for %s failed", list(remote))

    # -- /sync ----------------------------------------------------------------------

    async def to_device_for_sync(
        self,
        user_id: str,
        device_id: str | None,
        since: int | None,
        upto: int,
        limit: int = SYNC_LIMIT,
    ) -> tuple[list[dict[str, Any]], int]:
        """The device's messages after ``since`` (at most ``limit``) and the position the
        next token must carry: ``upto``, or the last message's when more are waiting.
        Messages at or before ``since`` were delivered: they are deleted."""
        if device_id is None:
            return [], upto
        key = (user_id, device_id)
        low = since or 0
        unacked = self._unacked.get(key)
        if key not in self._cleaned or (unacked is not None and low >= unacked):
            if low > 0:
                await self._stores.to_device.delete_acknowledged(user_id, device_id, low)
                self._unacked.pop(key, None)
            self._cleaned.add(key)
        if low >= upto:
            return [], upto
        if low >= self._started_at and self._user_last.get(user_id, 0) <= low:
            return [], upto
        pending = await self._stores.to_device.pending(user_id, device_id, low, upto, limit)
        if not pending:
            return [], upto
        position = pending[-1].stream_id if len(pending) == limit else upto
        self._unacked[key] = max(self._unacked.get(key, 0), pending[-1].stream_id)
        events = [{"sender": m.sender, "type": m.event_type, "content": m.content} for m in pending]
        return events, position

    def invalidate_user(self, user_id: str, position: int) -> None:
        """Another process queued messages for the user up to ``position``: /sync of
        their devices must read the inbox."""
        if position > self._user_last.get(user_id, 0):
            self._user_last[user_id] = position

    def forget_changes(self) -> None:
        """Notices from the other processes may have been missed: messages queued
        up to the stream's current position (resynced) may be anywhere, so /sync
        reads the inbox for any older position; above it, notices tell again."""
        self._started_at = max(self._started_at, self._stream.current())
        self._user_last.clear()

    def has_updates(self, user_id: str, since: int) -> bool:
        """False when no message was queued for the user after ``since`` (positions
        before start-up or a resync are not known here: True)."""
        return since < self._started_at or self._user_last.get(user_id, 0) > since

    def _is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self._server_name)

    # -- replication ------------------------------------------------------------------

    def _writing(self) -> StreamIdGenerator:
        """The stream's generator, or 500 when another process writes the stream."""
        self._role.check_writes()
        assert isinstance(self._stream, StreamIdGenerator)
        return self._stream

    def _published(self, local: list[tuple[str, str, dict[str, Any]]], position: int) -> None:
        if local and self._role.publishes:
            self._role.users_changed(position, tuple(sorted({u for u, _, _ in local})))

    def apply_replicated(self, notice: UserStreamNotice) -> None:
        """The to-device writer queued messages for ``notice.users`` (readers only)."""
        if self._role.writes:
            return
        users = set(notice.users)
        for user_id in users:
            if notice.position > self._user_last.get(user_id, 0):
                self._user_last[user_id] = notice.position
            self._notifier.on_user_change(user_id)

    def resync_replica(self) -> None:
        """After missed notices (readers only): inboxes are read from the database
        for tokens from before now."""
        if self._role.writes:
            return
        self._started_at = self._stream.current()


class ToDeviceSyncExtension:
    """``to_device`` of /sync; moves ``next_batch`` back when messages are left over."""

    stream = "to_device"

    def __init__(self, service: ToDeviceService) -> None:
        self._service = service

    def current_position(self) -> int:
        return self._service.current_position()

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool:
        return self._service.has_updates(user_id, since)

    async def contribute(self, sync: SyncPass) -> None:
        since = None if sync.since is None else sync.since.to_device
        upto = sync.upto_position(self.stream)
        events, position = await self._service.to_device_for_sync(
            sync.user_id, sync.device_id, since, upto
        )
        sync.result.to_device.extend(events)
        if position != upto:
            sync.now = sync.now.with_stream(self.stream, position)
            sync.result.next_batch = sync.now.serialize()
