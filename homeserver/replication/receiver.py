"""The other processes' notices, applied in this one.

``NoticeReceiver`` subscribes to the bus and feeds every ``StreamPosition`` to the
stream it moves. A stream notice (a room event, a change of a per-user or per-room
stream) is held until this process's view of its stream has reached its position,
so that whoever it wakes finds the change readable; then the held notices of that
stream are dispatched in position order. Cache notices are dispatched at once.

After every Redis (re)connect every stream is resynced from the database and the
``on_resync`` handlers are told the new positions: notices may have been missed
while Redis was away, so the lead's handler wakes every long-poll (which re-reads
its streams) and drops what caches may have gone stale.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from homeserver.replication.notices import (
    EVENTS,
    CacheNotice,
    Notice,
    NoticeHandler,
    RoomEventNotice,
    RoomsStreamNotice,
    StreamPosition,
    UserStreamNotice,
)
from homeserver.replication.positions import ReplicatedStream

logger = logging.getLogger(__name__)

N = TypeVar("N")
StreamNotice = RoomEventNotice | UserStreamNotice | RoomsStreamNotice
ResyncHandler = Callable[[dict[str, int]], Awaitable[None] | None]


class NoticeSource(Protocol):
    """What the receiver needs of the bus."""

    def subscribe(self, handler: NoticeHandler) -> None: ...

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None: ...


def _stream_of(notice: StreamNotice) -> str:
    return EVENTS if isinstance(notice, RoomEventNotice) else notice.stream


class NoticeReceiver:
    def __init__(self, bus: NoticeSource, streams: Iterable[ReplicatedStream]) -> None:
        self._streams: dict[str, ReplicatedStream] = {}
        for stream in streams:
            if stream.stream in self._streams:
                raise ValueError(f"stream {stream.stream} given twice")
            self._streams[stream.stream] = stream
            stream.add_advance_listener(self._releaser(stream.stream))
        # per stream: held notices by (position, arrival)
        self._held: dict[str, list[tuple[int, int, StreamNotice]]] = {
            name: [] for name in self._streams
        }
        self._arrivals = itertools.count()
        self._tasks: set[asyncio.Future[Any]] = set()  # async handlers still running
        self._room_event_handlers: list[Callable[[RoomEventNotice], None]] = []
        self._user_stream_handlers: list[Callable[[UserStreamNotice], None]] = []
        self._rooms_stream_handlers: list[Callable[[RoomsStreamNotice], None]] = []
        self._cache_handlers: list[Callable[[CacheNotice], Awaitable[None] | None]] = []
        self._resync_handlers: list[ResyncHandler] = []
        bus.subscribe(self.on_notice)
        bus.on_reconnect(self.resync)

    # -- registering ------------------------------------------------------------------

    def on_room_event(self, handler: Callable[[RoomEventNotice], None]) -> None:
        self._room_event_handlers.append(handler)

    def on_user_stream(self, handler: Callable[[UserStreamNotice], None]) -> None:
        self._user_stream_handlers.append(handler)

    def on_rooms_stream(self, handler: Callable[[RoomsStreamNotice], None]) -> None:
        self._rooms_stream_handlers.append(handler)

    def on_cache(self, handler: Callable[[CacheNotice], Awaitable[None] | None]) -> None:
        self._cache_handlers.append(handler)

    def on_resync(self, handler: ResyncHandler) -> None:
        """Told ``{stream: current()}`` after every resync (awaited if async)."""
        self._resync_handlers.append(handler)

    # -- receiving --------------------------------------------------------------------

    def held(self, stream: str) -> int:
        """How many notices of ``stream`` wait for its position."""
        return len(self._held.get(stream, ()))

    def on_notice(self, notice: Notice) -> None:
        if isinstance(notice, StreamPosition):
            tracked = self._streams.get(notice.stream)
            if tracked is not None:
                tracked.observe(notice)  # its advance listener releases what it can
            return
        if isinstance(notice, CacheNotice):
            self._tell(self._cache_handlers, notice)
            return
        if not isinstance(notice, RoomEventNotice | UserStreamNotice | RoomsStreamNotice):
            return  # another kind (roles: federation, pushers), handled by its subscriber
        name = _stream_of(notice)
        tracked = self._streams.get(name)
        if tracked is None or notice.position <= tracked.current():
            # (a stream nobody tracks here has no position to wait for)
            self._dispatch(notice)
            return
        heapq.heappush(self._held[name], (notice.position, next(self._arrivals), notice))

    async def resync(self) -> None:
        """Re-read every stream's position (raises if the database fails, so that
        the bus tries again after its backoff)."""
        for stream in self._streams.values():
            await stream.resync()
        positions = {name: stream.current() for name, stream in self._streams.items()}
        for handler in self._resync_handlers:
            try:
                result = handler(positions)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("replication: a resync handler failed")

    def _releaser(self, name: str) -> Callable[[int], None]:
        def release(current: int) -> None:
            self._release(name)

        return release

    def _release(self, name: str) -> None:
        held = self._held[name]
        current = self._streams[name].current()
        while held and held[0][0] <= current:
            self._dispatch(heapq.heappop(held)[2])

    def _dispatch(self, notice: StreamNotice) -> None:
        if isinstance(notice, RoomEventNotice):
            self._tell(self._room_event_handlers, notice)
        elif isinstance(notice, UserStreamNotice):
            self._tell(self._user_stream_handlers, notice)
        else:
            self._tell(self._rooms_stream_handlers, notice)

    def _tell(self, handlers: list[Callable[[N], Any]], notice: N) -> None:
        for handler in handlers:
            try:
                result = handler(notice)
            except Exception:
                logger.exception("replication: a handler failed on %r", notice)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._finished)

    async def close(self) -> None:
        """Wait for the async handlers still running."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("replication: a handler failed", exc_info=task.exception())
