"""Stream positions shared by several processes.

A stream's position is what a sync token carries. In one process a
``homeserver.streams.StreamIdGenerator`` hands positions out and knows when every
lower one has finished. With workers, each stream has writer processes
(``stream_writers``) and every other process reads; this module tells each process
how far it may read:

- ``MultiWriterStreamIdGenerator``: a stream with several writers (room events).
  Positions come from a PostgreSQL sequence, so writers interleave. Each writer
  tracks its own *persisted position*: every position it allocated up to it has
  finished (committed or abandoned), and it will never allocate one at or below it.
  A process may read up to ``current()``, the lowest persisted position of all the
  writers: every lower position is then persisted on every writer.
- ``SingleWriterStreamIdGenerator``: a stream with one writer (receipts, to-device
  ...): the writer's in-process ``StreamIdGenerator``, whose rises the other
  processes learn.

How a writer's position reaches the others: every rise is published at once as a
``StreamPosition`` notice (readers wake with no delay) and recorded in
``stream_positions`` (coalesced: one write in flight, the latest wins). After a
write, the written position is published again unless a newer one is on its way.
So a reader that subscribes and *then* reads ``stream_positions`` (what ``resync``
does after every Redis (re)connect) never misses a writer's last rise: a publication
of it came after the reader subscribed, or its row was written before the reader
read. A writer records its row before its first allocation, so a writer without a
row has allocated nothing below the sequence's value read before the rows.

An idle writer (nothing in flight) claims the highest position it knows to be handed
out (another writer's, or the sequence's): its next allocation is above it, so it
holds back nothing it could still write. Without this a writer with no traffic would
hold every reader at its last own position. An allocation asked of the sequence and
not answered yet is only known to be above what was known handed out when it was
asked (concurrent ``nextval`` answers arrive in any order), so until it is answered
the writer's position stays at or below that.

Positions never go backwards: a stale notice changes nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from homeserver.clock import Clock
from homeserver.replication.notices import NoticePublisher, StreamPosition
from homeserver.streams import StreamIdGenerator
from storage.database import Transaction
from storage.stream_positions import StreamPositionStore

logger = logging.getLogger(__name__)

# Told the new ``current()`` of a stream each time it rises.
AdvanceListener = Callable[[int], None]


class ReplicatedStream(Protocol):
    """What the notice receiver drives: a stream whose position other processes move."""

    @property
    def stream(self) -> str: ...

    def current(self) -> int: ...

    def observe(self, notice: StreamPosition) -> None: ...

    async def resync(self) -> None: ...

    def add_advance_listener(self, listener: AdvanceListener) -> None: ...


class _PositionRecorder:
    """Publishes one writer's rises of one stream and records them in
    ``stream_positions`` (see the module docstring for the order of the two)."""

    def __init__(
        self, stream: str, instance: str, store: StreamPositionStore, publisher: NoticePublisher
    ) -> None:
        self._stream = stream
        self._instance = instance
        self._store = store
        self._publisher = publisher
        # the latest position to record, and the latest recorded (-1: none yet; a
        # writer records its row before its first allocation, even at position 0)
        self._wanted = -1
        self._recorded = -1
        self._task: asyncio.Task[None] | None = None

    def rose(self, position: int) -> None:
        """Publish ``position`` now and record it soon."""
        self._publish(position)
        self.want(position)

    def want(self, position: int) -> None:
        """Record ``position`` soon (then publish it, as after every write)."""
        if position > self._wanted:
            self._wanted = position
        if self._task is None and self._recorded < self._wanted:
            self._task = asyncio.get_running_loop().create_task(self._record())

    def republish(self) -> None:
        if self._wanted >= 0:
            self._publish(self._wanted)

    async def flush(self) -> None:
        """Return once the latest position is recorded (raises if the write fails)."""
        while True:
            task = self._task
            if task is not None:
                await asyncio.wait([task])
                continue
            if self._recorded >= self._wanted:
                return
            await self._write(self._wanted)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    def _publish(self, position: int) -> None:
        self._publisher.publish(StreamPosition(self._stream, self._instance, position))

    async def _record(self) -> None:
        try:
            while self._recorded < self._wanted:
                target = self._wanted
                try:
                    await self._write(target)
                except Exception:
                    # The next rise (or a resync's flush) tries again.
                    logger.exception(
                        "recording position %d of stream %s failed", target, self._stream
                    )
                    return
                if self._wanted == target:
                    self._publish(target)  # after the write: see the module docstring
        finally:
            self._task = None

    async def _write(self, position: int) -> None:
        await self._store.upsert_position(self._stream, self._instance, position)
        if position > self._recorded:
            self._recorded = position


class _Listeners:
    def __init__(self, stream: str) -> None:
        self._stream = stream
        self._listeners: list[AdvanceListener] = []

    def add(self, listener: AdvanceListener) -> None:
        self._listeners.append(listener)

    def tell(self, current: int) -> None:
        for listener in self._listeners:
            try:
                listener(current)
            except Exception:
                logger.exception("advance listener of stream %s failed", self._stream)


class MultiWriterStreamIdGenerator:
    """A stream written by several processes, its positions from a PostgreSQL
    sequence (``<stream>_stream_seq`` unless ``sequence`` names another).

    On a writer (``instance`` in ``writers``): ``allocate_async``/``allocate_txn`` and
    ``finish``, as ``StreamIdGenerator``'s ``allocate``/``finish``; ``resync`` must
    have run once before the first allocation. On any process: ``current()``,
    ``observe`` and ``resync``.
    """

    def __init__(
        self,
        stream: str,
        instance: str,
        writers: Sequence[str],
        store: StreamPositionStore,
        publisher: NoticePublisher,
        clock: Clock,
        *,
        sequence: str | None = None,
    ) -> None:
        if not writers:
            raise ValueError(f"stream {stream} needs at least one writer")
        self._stream = stream
        self.instance = instance
        self.writers = tuple(dict.fromkeys(writers))
        self.is_writer = instance in self.writers
        self._store = store
        self._clock = clock
        self._sequence = sequence or f"{stream}_stream_seq"
        self._positions = dict.fromkeys(self.writers, 0)
        self._risen_at = dict.fromkeys(self.writers, clock.monotonic())
        self._current = 0
        self._listeners = _Listeners(stream)
        # this writer's allocations not finished yet (a set, and a heap of the same
        # positions whose finished entries are dropped lazily from the top)
        self._in_flight: set[int] = set()
        self._in_flight_heap: list[int] = []
        # per allocation asked of the sequence and not answered yet, the highest
        # position known handed out when it was asked: its answer is above that
        self._fetch_floors: list[int] = []
        # the highest position known to be handed out by anyone
        self._max_seen = 0
        self._synced = False
        self._recorder = (
            _PositionRecorder(stream, instance, store, publisher) if self.is_writer else None
        )

    @property
    def stream(self) -> str:
        return self._stream

    # -- allocating (writers) ---------------------------------------------------------

    async def allocate_async(self) -> int:
        """A new position (the sequence's next value) in its own short transaction."""
        return await self._allocate(lambda: self._store.next_stream_id(self._sequence))

    async def allocate_txn(self, txn: Transaction) -> int:
        """A new position taken inside ``txn`` (``finish`` it once ``txn`` has ended)."""
        return await self._allocate(lambda: self._store.next_stream_id_txn(txn, self._sequence))

    async def _allocate(self, take: Callable[[], Awaitable[int]]) -> int:
        if not self.is_writer:
            raise RuntimeError(f"{self.instance} is not a writer of stream {self._stream}")
        if not self._synced:
            raise RuntimeError(f"stream {self._stream}: resync() before the first allocation")
        # What the sequence hands out now is above everything known handed out.
        floor = self._max_seen
        self._fetch_floors.append(floor)
        try:
            position = await take()
        except BaseException:
            self._fetch_floors.remove(floor)
            self._advance_own()
            raise
        self._fetch_floors.remove(floor)
        if position <= self._positions[self.instance]:
            # Only a sequence moved back by hand gets here: readers were told this
            # writer is past it, so persisting it could hide it from them.
            raise RuntimeError(
                f"stream {self._stream}: sequence {self._sequence} gave {position}, at or"
                f" below this writer's persisted position {self._positions[self.instance]}"
            )
        self._in_flight.add(position)
        heapq.heappush(self._in_flight_heap, position)
        self._max_seen = max(self._max_seen, position)
        self._advance_own()
        return position

    def finish(self, position: int) -> None:
        """``position`` (allocated here) committed or was abandoned."""
        if position not in self._in_flight:
            logger.warning("stream %s: finish(%d) of no allocation", self._stream, position)
            return
        self._in_flight.discard(position)
        heap = self._in_flight_heap
        while heap and heap[0] not in self._in_flight:
            heapq.heappop(heap)
        self._advance_own()

    def _advance_own(self) -> None:
        if self._recorder is None or not self._synced:
            return
        if self._in_flight_heap:
            candidate = self._in_flight_heap[0] - 1
        else:
            candidate = self._max_seen  # idle: the next allocation is above it
        if self._fetch_floors:
            # answers come in any order: one still awaited may be below the others
            candidate = min(candidate, min(self._fetch_floors))
        if candidate > self._positions[self.instance]:
            self._set_position(self.instance, candidate)
            self._recorder.rose(candidate)
            self._recompute()

    # -- reading (every process) ------------------------------------------------------

    def current(self) -> int:
        """The highest position such that every position up to it is persisted on
        every writer."""
        return self._current

    def positions(self) -> dict[str, int]:
        """Each writer's persisted position as known here."""
        return dict(self._positions)

    def lagging(self) -> dict[str, float]:
        """The writers behind the most advanced one, with the seconds since their
        position last rose (a writer that is down holds readers back)."""
        top = max(self._positions.values())
        now = self._clock.monotonic()
        return {
            writer: now - self._risen_at[writer]
            for writer, position in self._positions.items()
            if position < top
        }

    def add_advance_listener(self, listener: AdvanceListener) -> None:
        self._listeners.add(listener)

    def observe(self, notice: StreamPosition) -> None:
        """Another process's writer has got to ``notice.position``."""
        if notice.stream != self._stream:
            return
        known = self._positions.get(notice.instance)
        if known is None or (self.is_writer and notice.instance == self.instance):
            logger.debug("stream %s: ignoring position of %s", self._stream, notice.instance)
            return
        if notice.position <= known:
            return  # stale or repeated
        self._set_position(notice.instance, notice.position)
        self._max_seen = max(self._max_seen, notice.position)
        self._advance_own()
        self._recompute()

    async def resync(self, *, stored_max: int | None = None) -> None:
        """Read every writer's position from ``stream_positions`` (after a Redis
        (re)connect, and at start-up before anything else). A writer also claims
        what the sequence has handed out if it is idle, records its row and
        publishes its position. ``stored_max``: the stream's largest stored
        position; a writer first moves the sequence past it (a single process
        counts positions in memory and may have written beyond the sequence)."""
        if self.is_writer and stored_max is not None:
            await self._store.advance_sequence(self._sequence, stored_max)
        snapshot = await self._store.snapshot(self._stream, self._sequence)
        self._max_seen = max(self._max_seen, snapshot.last_allocated)
        for writer in self.writers:
            if self.is_writer and writer == self.instance:
                continue
            # no row: the writer has allocated nothing up to last_allocated
            position = snapshot.positions.get(writer, snapshot.last_allocated)
            if position > self._positions[writer]:
                self._set_position(writer, position)
        if self._recorder is not None:
            self._synced = True
            self._advance_own()
            self._recorder.want(self._positions[self.instance])
            await self._recorder.flush()
            self._recorder.republish()
        self._recompute()

    async def close(self) -> None:
        """Stop recording (the task of a write in flight is cancelled)."""
        if self._recorder is not None:
            await self._recorder.close()

    async def flush(self) -> None:
        """Return once this writer's latest position is recorded."""
        if self._recorder is not None:
            await self._recorder.flush()

    def _set_position(self, writer: str, position: int) -> None:
        self._positions[writer] = position
        self._risen_at[writer] = self._clock.monotonic()

    def _recompute(self) -> None:
        current = min(self._positions.values())
        if current > self._current:
            self._current = current
            self._listeners.tell(current)


class SingleWriterStreamIdGenerator(StreamIdGenerator):
    """A stream with one writer process, readable in the others.

    On the writer it is the stream's ``StreamIdGenerator`` (seeded with ``current``,
    the stream's largest stored position, as in one process) that also publishes and
    records each rise of ``current()``. Elsewhere ``allocate`` is refused and
    ``current()`` is the writer's last position heard of (notices, or
    ``stream_positions`` on ``resync``); until the writer has ever recorded one,
    ``current`` given here stands in for it (read before ``resync`` reads the row,
    it is safe: the writer records its row before it allocates).
    """

    def __init__(
        self,
        stream: str,
        instance: str,
        writer: str,
        store: StreamPositionStore,
        publisher: NoticePublisher,
        clock: Clock,
        *,
        current: int = 0,
    ) -> None:
        super().__init__(current)
        self._stream = stream
        self.instance = instance
        self.writer = writer
        self.is_writer = instance == writer
        self._store = store
        self._clock = clock
        self._listeners = _Listeners(stream)
        self._fallback = current
        self._heard = current if self.is_writer else 0
        self._synced = False
        self._recorder = (
            _PositionRecorder(stream, instance, store, publisher) if self.is_writer else None
        )

    @property
    def stream(self) -> str:
        return self._stream

    def allocate(self) -> int:
        if not self.is_writer:
            raise RuntimeError(f"{self.instance} is not the writer of stream {self._stream}")
        return super().allocate()

    def finish(self, position: int) -> None:
        before = super().current()
        super().finish(position)
        after = super().current()
        if after > before:
            self._heard = after
            if self._recorder is not None and self._synced:
                self._recorder.rose(after)
            self._listeners.tell(after)

    def current(self) -> int:
        return super().current() if self.is_writer else self._heard

    def add_advance_listener(self, listener: AdvanceListener) -> None:
        self._listeners.add(listener)

    def observe(self, notice: StreamPosition) -> None:
        if self.is_writer or notice.stream != self._stream or notice.instance != self.writer:
            return
        self._advance_to(notice.position)

    async def resync(self) -> None:
        """Readers: read the writer's row. The writer: record its position (before
        anything is published the first time) and publish it again."""
        if self._recorder is not None:
            self._synced = True
            self._recorder.want(super().current())
            await self._recorder.flush()
            self._recorder.republish()
            return
        row = (await self._store.positions(self._stream)).get(self.writer)
        self._advance_to(self._fallback if row is None else row)

    async def close(self) -> None:
        if self._recorder is not None:
            await self._recorder.close()

    async def flush(self) -> None:
        if self._recorder is not None:
            await self._recorder.flush()

    def _advance_to(self, position: int) -> None:
        if position > self._heard:
            self._heard = position
            self._listeners.tell(position)
