"""One process of a deployment with workers: its Redis bus, its view of every
stream, the receiver of the other processes' notices, and the way to the room
event writers. The composition root builds one when ``config.worker.multi_process``;
a single process has none and runs exactly as before.

Start-up order matters: the streams are created first (the services need them),
then ``connect`` subscribes to Redis and resyncs every stream from PostgreSQL before
anything is allocated, so a writer never hands out a position below what it told the
others.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.config.workers import MAIN_INSTANCE, MAIN_INSTANCE_MAP_NAME
from homeserver.replication.client import ReplicationClient
from homeserver.replication.event_writers import EventWriters
from homeserver.replication.notices import EVENTS, RoomEventNotice
from homeserver.replication.positions import (
    MultiWriterStreamIdGenerator,
    ReplicatedStream,
    SingleWriterStreamIdGenerator,
)
from homeserver.replication.receiver import NoticeReceiver
from storage.database import Transaction
from storage.stream_positions import StreamPositionStore

if TYPE_CHECKING:
    from homeserver.replication.bus import RedisBus

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0
BACKFILL_SEQUENCE = "events_backfill_stream_seq"


class PositionWaiter:
    """Waits until a stream's ``current()`` reaches a position."""

    def __init__(self, stream: ReplicatedStream) -> None:
        self._stream = stream
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        stream.add_advance_listener(self._advanced)

    async def wait(self, position: int, timeout_s: float = 30.0) -> None:
        """Return once the stream has reached ``position`` (or after ``timeout_s``:
        the caller then answers with what it can read, as Synapse does)."""
        if self._stream.current() >= position:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (position, next(self._order), future))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            logger.warning(
                "stream %s did not reach %d in %.0f s", self._stream.stream, position, timeout_s
            )

    def _advanced(self, current: int) -> None:
        while self._waiting and self._waiting[0][0] <= current:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)


class BackfillPositions:
    """Positions of backfilled history (below zero, counting down) for several event
    writers: the magnitude from a PostgreSQL sequence, so writers never collide.
    Backfilled events are never announced, so nothing waits on this stream."""

    def __init__(self, store: StreamPositionStore) -> None:
        self._store = store

    async def allocate_txn(self, txn: Transaction) -> int:
        return -await self._store.next_stream_id_txn(txn, BACKFILL_SEQUENCE)

    def finish(self, position: int) -> None:
        return None

    def current(self) -> int:
        return 0


RoomEventHandler = Callable[[RoomEventNotice], None]


@dataclass
class Replication:
    config: HomeserverConfig
    clock: Clock
    store: StreamPositionStore
    bus: RedisBus
    events: MultiWriterStreamIdGenerator
    backfill: BackfillPositions
    event_writers: EventWriters
    client: ReplicationClient
    streams: dict[str, SingleWriterStreamIdGenerator] = field(default_factory=dict)
    receiver: NoticeReceiver | None = None
    events_waiter: PositionWaiter | None = None
    dropped_told: int = 0  # the bus's dropped count the others were last told of

    @classmethod
    def create(
        cls, config: HomeserverConfig, store: StreamPositionStore, clock: Clock
    ) -> Replication:
        # redis is imported only by a process that runs with workers
        from homeserver.replication.bus import RedisBus

        worker = config.worker
        bus = RedisBus(config.redis, config.server_name, worker.instance_name)
        writers = worker.stream_writers.events
        # instance name -> where it serves replication ("main" is the master's entry)
        locations = {
            (MAIN_INSTANCE if name == MAIN_INSTANCE_MAP_NAME else name): location
            for name, location in worker.instance_map.items()
        }
        replication = cls(
            config=config,
            clock=clock,
            store=store,
            bus=bus,
            events=MultiWriterStreamIdGenerator(
                EVENTS, worker.instance_name, writers, store, bus, clock
            ),
            backfill=BackfillPositions(store),
            event_writers=EventWriters(worker.instance_name, writers),
            client=ReplicationClient(locations, worker.replication_secret),
        )
        replication.events_waiter = PositionWaiter(replication.events)
        return replication

    @property
    def instance(self) -> str:
        return self.config.worker.instance_name

    def single_writer_stream(self, stream: str, current: int) -> SingleWriterStreamIdGenerator:
        """The generator of a one-writer stream (``current``: its largest stored position)."""
        (writer,) = self.config.worker.stream_writers.writers(stream)
        generator = SingleWriterStreamIdGenerator(
            stream, self.instance, writer, self.store, self.bus, self.clock, current=current
        )
        self.streams[stream] = generator
        return generator

    async def prepare_events(self, stored_max: int, stored_min: int) -> None:
        """Before the first event: move the sequences past what is stored (a
        database that one process wrote counted its positions in memory) and read
        every event writer's position."""
        if stored_min < 0:
            await self.store.advance_sequence(BACKFILL_SEQUENCE, -stored_min)
        await self.events.resync(stored_max=stored_max)

    async def connect(self) -> NoticeReceiver:
        """Subscribe to the other processes and resync every stream (the bus calls
        the receiver's resync on every (re)connect, this first one included)."""
        receiver = NoticeReceiver(self.bus, [self.events, *self.streams.values()])
        self.receiver = receiver
        await self.bus.start()
        await self.bus.wait_connected(CONNECT_TIMEOUT_S)
        return receiver

    async def wait_for_event_position(self, position: int) -> None:
        assert self.events_waiter is not None
        await self.events_waiter.wait(position)

    async def close(self) -> None:
        if self.receiver is not None:
            await self.receiver.close()
        await self.events.close()
        for stream in self.streams.values():
            await stream.close()
        await self.bus.stop()
        await self.client.close()
