"""NoticeReceiver: stream notices wait for their stream's position, then go out in
position order; cache notices go out at once; a reconnect resyncs every stream."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from homeserver.clock import FakeClock
from homeserver.replication.notices import (
    CacheNotice,
    NoPublisher,
    Notice,
    NoticeHandler,
    RoomEventNotice,
    RoomsStreamNotice,
    StreamPosition,
    UserStreamNotice,
)
from homeserver.replication.positions import (
    MultiWriterStreamIdGenerator,
    SingleWriterStreamIdGenerator,
)
from homeserver.replication.receiver import NoticeReceiver
from storage.database import Database
from storage.stream_positions import StreamPositionStore


class FakeBus:
    """The bus as the receiver sees it, driven by the test."""

    def __init__(self) -> None:
        self.handlers: list[NoticeHandler] = []
        self.callbacks: list[Callable[[], Awaitable[None]]] = []

    def subscribe(self, handler: NoticeHandler) -> None:
        self.handlers.append(handler)

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        self.callbacks.append(callback)

    async def deliver(self, *notices: Notice) -> None:
        for notice in notices:
            for handler in self.handlers:
                result = handler(notice)
                if inspect.isawaitable(result):
                    await result

    async def reconnect(self) -> None:
        for callback in self.callbacks:
            await callback()


def event(position: int, room: str = "!r:t", instance: str = "w1") -> RoomEventNotice:
    return RoomEventNotice(
        instance, room, position, f"$e{position}", "m.room.message", "@a:t", None
    )


class Harness:
    def __init__(self, db: Database) -> None:
        self.bus = FakeBus()
        store = StreamPositionStore(db)
        self.events = MultiWriterStreamIdGenerator(
            "events", "sync1", ("w1", "w2"), store, NoPublisher(), FakeClock()
        )
        self.to_device = SingleWriterStreamIdGenerator(
            "to_device", "sync1", "master", store, NoPublisher(), FakeClock()
        )
        self.receiver = NoticeReceiver(self.bus, [self.events, self.to_device])
        self.out: list[Notice] = []
        self.receiver.on_room_event(self.out.append)
        self.receiver.on_user_stream(self.out.append)
        self.receiver.on_rooms_stream(self.out.append)
        self.receiver.on_cache(self.out.append)


@pytest.fixture
async def harness(pg: Database) -> AsyncIterator[Harness]:
    harness = Harness(pg)
    await harness.bus.reconnect()
    yield harness


async def test_a_room_event_waits_for_every_writer(harness: Harness) -> None:
    bus, out = harness.bus, harness.out
    await bus.deliver(event(3), event(1), StreamPosition("events", "w1", 3))
    assert out == []  # w2 has not got there
    assert harness.receiver.held("events") == 2
    await bus.deliver(StreamPosition("events", "w2", 1))
    assert out == [event(1)]
    await bus.deliver(StreamPosition("events", "w2", 5))
    assert out == [event(1), event(3)]
    assert harness.receiver.held("events") == 0
    await bus.deliver(event(2))  # already readable: at once
    assert out[-1] == event(2)


async def test_held_notices_go_out_in_position_order(harness: Harness) -> None:
    bus, out = harness.bus, harness.out
    arrivals = [event(5), event(2, "!other:t"), event(4), event(2), event(3)]
    await bus.deliver(*arrivals)
    await bus.deliver(StreamPosition("events", "w1", 9), StreamPosition("events", "w2", 9))
    assert [n.position for n in out] == [2, 2, 3, 4, 5]  # type: ignore[union-attr]
    assert out[:2] == [event(2, "!other:t"), event(2)]  # equal positions: as they came


async def test_user_and_rooms_stream_notices_wait_for_their_own_stream(
    harness: Harness,
) -> None:
    bus, out = harness.bus, harness.out
    to_device = UserStreamNotice("master", "to_device", 4, ("@a:t",))
    await bus.deliver(to_device)
    assert out == []
    await bus.deliver(StreamPosition("to_device", "master", 4))
    assert out == [to_device]
    # a stream nobody tracks here has nothing to wait for
    typing = RoomsStreamNotice("master", "typing", 7, ("!r:t",), {"!r:t": ["@a:t"]})
    await bus.deliver(typing)
    assert out == [to_device, typing]


async def test_cache_notices_go_out_at_once(harness: Harness) -> None:
    notice = CacheNotice("w1", "profiles", ("@a:t",))
    await harness.bus.deliver(event(8), notice)
    assert harness.out == [notice]


async def test_a_failing_handler_does_not_stop_the_others(harness: Harness) -> None:
    seen: list[Notice] = []

    def broken(notice: Notice) -> None:
        raise RuntimeError("boom")

    receiver = harness.receiver
    receiver.on_room_event(broken)
    receiver.on_room_event(seen.append)
    receiver.on_cache(broken)
    await harness.bus.deliver(StreamPosition("events", "w1", 1), StreamPosition("events", "w2", 1))
    await harness.bus.deliver(event(1), CacheNotice("w1", "c"))
    assert seen == [event(1)]
    assert harness.out == [event(1), CacheNotice("w1", "c")]


async def test_a_reconnect_resyncs_every_stream_and_tells_the_new_positions(
    harness: Harness, pg: Database
) -> None:
    told: list[dict[str, int]] = []

    async def on_resync(positions: dict[str, int]) -> None:
        told.append(positions)

    harness.receiver.on_resync(on_resync)
    await harness.bus.deliver(event(6), UserStreamNotice("master", "to_device", 2, ("@a:t",)))
    store = StreamPositionStore(pg)
    await store.upsert_position("events", "w1", 6)
    await store.upsert_position("events", "w2", 7)
    await store.upsert_position("to_device", "master", 3)
    await harness.bus.reconnect()
    assert told == [{"events": 6, "to_device": 3}]
    assert [n.position for n in harness.out] == [6, 2]  # type: ignore[union-attr]


async def test_a_stream_given_twice_is_refused(pg: Database) -> None:
    store = StreamPositionStore(pg)
    streams = [
        SingleWriterStreamIdGenerator("receipts", "s", "m", store, NoPublisher(), FakeClock())
        for _ in range(2)
    ]
    with pytest.raises(ValueError):
        NoticeReceiver(FakeBus(), streams)
