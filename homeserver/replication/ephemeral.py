"""The non-event streams (typing, receipts, presence, account data, to-device, device
lists, push rules) across processes.

Each of these streams has exactly one writer process (``stream_writers.<stream>``).
On the writer the stream's service works as in a single process and, for every
change, publishes a notice *before* the change's position is finished (so a reader
that sees the position has the notice too):

- ``UserStreamNotice``: account data, to-device, device lists, push rules: the users
  whose /sync changed;
- ``RoomsStreamNotice``: receipts (``data``: the receipt, for the readers' in-memory
  recent receipts), typing (``data``: ``{room_id: [typing user IDs]}``, since typing
  lives only in memory) and presence (``rooms``: the joined rooms of the changed
  users, ``data``: ``{"users": {user_id: [state, status_msg, last_active_ts,
  last_user_sync_ts, currently_active, stream_id]}}``). Presence uses the rooms form
  because a reader needs both the rooms to wake and the new states: it answers /sync
  from memory, as the writer does, without reading the batch-persisted table.

Every other process builds the same services with, in place of the stream's
``StreamIdGenerator``, an object with only ``current()`` (:class:`StreamView`):
their writes are refused (:meth:`StreamRole.check_writes`) unless forwarded to the
writer (``ephemeral_endpoints``), and :class:`EphemeralMirror` applies the writer's
notices once this process's view of the stream has reached their position: it updates
the in-memory state and wakes the long-polls exactly as a local change does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypedDict

from homeserver.errors import MatrixError
from homeserver.replication.notices import (
    ACCOUNT_DATA,
    DEVICE_LISTS,
    PRESENCE,
    PUSH_RULES,
    RECEIPTS,
    TO_DEVICE,
    TYPING,
    NoPublisher,
    Notice,
    NoticePublisher,
    RoomEventNotice,
    RoomsStreamNotice,
    UserStreamNotice,
)
from homeserver.streams import StreamIdGenerator

if TYPE_CHECKING:
    from homeserver.account_data import AccountDataService
    from homeserver.e2ee.device_lists import DeviceListService
    from homeserver.presence import PresenceService
    from homeserver.push.rules_service import PushRulesService
    from homeserver.receipts import ReceiptService
    from homeserver.replication.runtime import Replication
    from homeserver.to_device import ToDeviceService
    from homeserver.typing import TypingService

logger = logging.getLogger(__name__)

# The main process's instance name (Synapse's default for every stream writer).
MASTER = "master"


class StreamView(Protocol):
    """What a process that does not write a stream knows of it: how far it may read
    (``homeserver.streams.StreamPositions`` is what a writer allocates with)."""

    def current(self) -> int: ...


# A stream's position source: its generator on the writer, its positions elsewhere.
StreamSource = StreamIdGenerator | StreamView


@dataclass(frozen=True, slots=True)
class StreamRole:
    """Where one stream is written, seen from one process."""

    stream: str
    instance: str = MASTER
    writer: str = MASTER
    publisher: NoticePublisher = field(default_factory=NoPublisher)

    @classmethod
    def of(
        cls,
        stream: str,
        publisher: NoticePublisher | None,
        instance_name: str,
        writer: str | None,
    ) -> StreamRole:
        """The role from a service's arguments (``writer`` None: this process)."""
        return cls(stream, instance_name, writer or instance_name, publisher or NoPublisher())

    @property
    def writes(self) -> bool:
        return self.instance == self.writer

    @property
    def publishes(self) -> bool:
        """Whether this process writes the stream and other processes hear of its
        changes (never in a single process)."""
        return self.writes and not isinstance(self.publisher, NoPublisher)

    def check_writes(self) -> None:
        """500 M_UNKNOWN when this process must not write the stream (its client
        endpoints are routed to the writer; internal writes are forwarded)."""
        if not self.writes:
            raise MatrixError(500, "M_UNKNOWN", f"{self.stream} is written by {self.writer}")

    def users_changed(self, position: int, users: tuple[str, ...]) -> None:
        self.publisher.publish(UserStreamNotice(self.instance, self.stream, position, users))

    def rooms_changed(
        self, position: int, rooms: tuple[str, ...], data: dict[str, object] | None = None
    ) -> None:
        self.publisher.publish(RoomsStreamNotice(self.instance, self.stream, position, rooms, data))


@dataclass(frozen=True)
class EphemeralReplication:
    """What the composition root gives the ephemeral services in a deployment with
    workers: this process's name, each stream's writer, the publisher, and each
    stream's position source (``streams(stream, seed)``: the writer's generator
    seeded with ``seed``, the database's largest position, or a reader's positions)."""

    instance_name: str
    writer_of: Callable[[str], str]
    publisher: NoticePublisher
    streams: Callable[[str, int], StreamSource]

    def writer(self, stream: str) -> str:
        return self.writer_of(stream)

    @classmethod
    def of(cls, runtime: Replication) -> EphemeralReplication:
        """The ephemeral streams of a process of a deployment with workers (each
        stream's one writer from ``stream_writers``; generators from the runtime)."""
        writers = runtime.config.worker.stream_writers

        def writer_of(stream: str) -> str:
            (writer,) = writers.writers(stream)
            return writer

        return cls(runtime.instance, writer_of, runtime.bus, runtime.single_writer_stream)


def stream_source(replication: EphemeralReplication | None, stream: str, seed: int) -> StreamSource:
    """The stream's position source: a plain generator in a single process."""
    if replication is None:
        return StreamIdGenerator(seed)
    return replication.streams(stream, seed)


class RoleArguments(TypedDict, total=False):
    publisher: NoticePublisher
    instance_name: str
    writer: str


def role_arguments(replication: EphemeralReplication | None, stream: str) -> RoleArguments:
    """The ``publisher``, ``instance_name`` and ``writer`` arguments of a service
    (none in a single process)."""
    if replication is None:
        return RoleArguments()
    return RoleArguments(
        publisher=replication.publisher,
        instance_name=replication.instance_name,
        writer=replication.writer(stream),
    )


class EphemeralSink(Protocol):
    """Told of the changes the mirror applies, as the services' own listeners are of
    local ones (``homeserver.appservice.delivery.AppServiceDelivery``, on the process
    that feeds the application services). The services' listener lists are not
    called for replicated changes: they also hold what only the writer may do (send
    EDUs to other servers, update unread counts)."""

    async def on_typing(self, user_id: str, room_id: str, typing: bool) -> None: ...

    async def on_receipt(
        self, user_id: str, room_id: str, event_id: str, thread_id: str | None
    ) -> None: ...

    def on_presence(self, user_id: str) -> None: ...

    def on_to_device(self, user_ids: set[str]) -> None: ...

    async def on_device_list_change(
        self, user_id: str, device_ids: list[str], position: int
    ) -> None: ...


class EphemeralMirror:
    """Applies the writers' notices of the non-event streams to this process's
    services (registered by the composition root with the notice receiver, which calls
    these once the stream's position has reached the notice's). Notices of a stream
    this process writes itself are its own and are ignored."""

    def __init__(
        self,
        *,
        typing: TypingService,
        receipts: ReceiptService,
        presence: PresenceService,
        account_data: AccountDataService,
        to_device: ToDeviceService,
        device_lists: DeviceListService | None = None,
        push_rules: PushRulesService | None = None,
    ) -> None:
        self.typing = typing
        self.receipts = receipts
        self.presence = presence
        self.account_data = account_data
        self.to_device = to_device
        self.device_lists = device_lists
        self.push_rules = push_rules
        self.sinks: list[EphemeralSink] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def on_notice(self, notice: Notice) -> None:
        """Any notice: the stream notices of these streams are applied, others ignored."""
        if isinstance(notice, UserStreamNotice):
            self.on_user_stream(notice)
        elif isinstance(notice, RoomsStreamNotice):
            self.on_rooms_stream(notice)
        elif isinstance(notice, RoomEventNotice):
            self.on_room_event(notice)

    def on_user_stream(self, notice: UserStreamNotice) -> None:
        if notice.stream == ACCOUNT_DATA:
            self.account_data.apply_replicated(notice)
        elif notice.stream == TO_DEVICE:
            self.to_device.apply_replicated(notice)
            for sink in self.sinks:
                sink.on_to_device(set(notice.users))
        elif notice.stream == DEVICE_LISTS and self.device_lists is not None:
            self.device_lists.apply_replicated(notice)
            for sink in self.sinks:
                for user_id in notice.users:
                    self._spawn(sink.on_device_list_change(user_id, [], notice.position))
        elif notice.stream == PUSH_RULES and self.push_rules is not None:
            self.push_rules.apply_replicated(notice)

    def on_rooms_stream(self, notice: RoomsStreamNotice) -> None:
        data = notice.data or {}
        if notice.stream == TYPING:
            self.typing.apply_replicated(notice)
            for sink in self.sinks:
                for room_id in notice.rooms:
                    typists = data.get(room_id)
                    typing = bool(typists)
                    first = typists[0] if isinstance(typists, list) and typists else ""
                    self._spawn(sink.on_typing(str(first), room_id, typing))
        elif notice.stream == RECEIPTS:
            self.receipts.apply_replicated(notice)
            for sink in self.sinks:
                for room_id in notice.rooms:
                    for receipt in _list(data.get(room_id)):
                        if isinstance(receipt, list) and len(receipt) == 5:
                            _type, user_id, thread_id, event_id, _ts = receipt
                            self._spawn(sink.on_receipt(user_id, room_id, event_id, thread_id))
        elif notice.stream == PRESENCE:
            self.presence.apply_replicated(notice)
            users = data.get("users")
            for sink in self.sinks:
                for user_id in users if isinstance(users, dict) else ():
                    sink.on_presence(user_id)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("replication: an ephemeral sink failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_sinks(self) -> None:
        """Wait until the sinks were told of every change applied so far."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def on_room_event(self, notice: RoomEventNotice) -> None:
        """A room event another process persisted: a member who leaves stops typing
        (on the typing writer), and presence forgets the member's cached rooms."""
        if notice.type != "m.room.member" or notice.state_key is None:
            return
        self.presence.membership_changed(notice.state_key)
        self.typing.member_changed(notice.room_id, notice.state_key)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def resync(self) -> None:
        """After a (re)connect to Redis (the first one included): notices may have been
        missed, so what is held in memory is rebuilt or marked incomplete below the
        streams' current positions. Presence is read again from its table; typing
        cannot be recovered (it lives only in the writer's memory) and is cleared: the
        writer's next change of a room says it again, and typing times out anyway."""
        self.typing.resync_replica()
        self.receipts.resync_replica()
        self.account_data.resync_replica()
        self.to_device.resync_replica()
        if self.device_lists is not None:
            self.device_lists.resync_replica()
        await self.presence.resync_replica()


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
