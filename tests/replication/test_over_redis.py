"""Two event writers and a reader, each with its own bus (its own Redis
connections), on one PostgreSQL: what the reader dispatches is always persisted on
every writer, an idle writer holds nobody back, and a Redis restart or a writer's
crash loses nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import pytest

from homeserver.clock import FakeClock
from homeserver.config.sections import RedisConfig
from homeserver.replication.bus import RedisBus, Sleep
from homeserver.replication.notices import RoomEventNotice
from homeserver.replication.positions import MultiWriterStreamIdGenerator
from homeserver.replication.receiver import NoticeReceiver
from storage.database import Database
from storage.stream_positions import StreamPositionStore
from tests.replication.conftest import BusFactory, PrivateRedis, wait_for

WRITERS = ("w1", "w2")


@dataclass
class Truth:
    """What the writers really allocated and persisted, and what readers broke."""

    allocated: set[int] = field(default_factory=set)
    persisted: set[int] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def unpersisted_up_to(self, position: int) -> list[int]:
        return sorted(p for p in self.allocated - self.persisted if p <= position)


@dataclass
class Process:
    name: str
    bus: RedisBus
    events: MultiWriterStreamIdGenerator
    receiver: NoticeReceiver
    dispatched: list[RoomEventNotice] = field(default_factory=list)
    resyncs: list[dict[str, int]] = field(default_factory=list)

    async def write(self, truth: Truth) -> int:
        """Allocate, announce the event (before it commits, as the persister does)."""
        position = await self.events.allocate_async()
        truth.allocated.add(position)
        self.bus.publish(
            RoomEventNotice(
                self.name, "!r:t", position, f"$e{position}", "m.room.message", "@a:t", None
            )
        )
        return position

    def commit(self, truth: Truth, position: int) -> None:
        truth.persisted.add(position)
        self.events.finish(position)


StartProcess = Callable[..., Awaitable[Process]]


@pytest.fixture
async def start_process(make_bus: BusFactory, pg: Database) -> AsyncIterator[StartProcess]:
    started: list[Process] = []

    async def factory(
        name: str,
        truth: Truth,
        *,
        config: RedisConfig | None = None,
        sleep: Sleep | None = None,
    ) -> Process:
        made: list[Process] = []

        def setup(bus: RedisBus) -> None:
            events = MultiWriterStreamIdGenerator(
                "events", name, WRITERS, StreamPositionStore(pg), bus, FakeClock()
            )
            process = Process(name, bus, events, NoticeReceiver(bus, [events]))
            process.receiver.on_room_event(process.dispatched.append)
            process.receiver.on_resync(process.resyncs.append)

            def check_dispatch(notice: RoomEventNotice) -> None:
                missing = truth.unpersisted_up_to(notice.position)
                if missing:
                    truth.violations.append(f"{name} dispatched {notice.position}: {missing}")

            def check_current(current: int) -> None:
                missing = truth.unpersisted_up_to(current)
                if missing:
                    truth.violations.append(f"{name} reached {current}: {missing}")

            process.receiver.on_room_event(check_dispatch)
            events.add_advance_listener(check_current)
            made.append(process)

        await make_bus(name, config=config, sleep=sleep, setup=setup)
        started.append(made[0])
        return made[0]

    yield factory
    for process in started:
        await process.events.close()


def reached(process: Process, position: int) -> bool:
    return process.events.current() == position


async def test_readers_only_see_what_every_writer_persisted(
    start_process: StartProcess,
) -> None:
    truth = Truth()
    w1: Process = await start_process("w1", truth)
    w2: Process = await start_process("w2", truth)
    reader: Process = await start_process("reader", truth)
    writers = {"w1": w1, "w2": w2}
    in_flight: dict[str, list[int]] = {"w1": [], "w2": []}
    rng = random.Random(17)
    for _ in range(300):
        name = rng.choice(WRITERS)
        roll = rng.random()
        if roll < 0.15:  # two allocations at once, answered in any order
            in_flight[name] += await asyncio.gather(
                writers[name].write(truth), writers[name].write(truth)
            )
        elif roll < 0.4:
            in_flight[name].append(await writers[name].write(truth))
        elif roll < 0.8 and in_flight[name]:
            position = in_flight[name].pop(rng.randrange(len(in_flight[name])))
            writers[name].commit(truth, position)
        else:
            await asyncio.sleep(0)  # let Redis deliver meanwhile
    for name, positions in in_flight.items():
        for position in positions:
            writers[name].commit(truth, position)
    last = max(truth.allocated)
    for process in (w1, w2, reader):
        await wait_for(partial(reached, process, last), f"{process.name} at {last}")
    await wait_for(lambda: len(reader.dispatched) == len(truth.allocated), "every event dispatched")
    assert truth.violations == []
    positions = [n.position for n in reader.dispatched]
    assert positions == sorted(positions) and set(positions) == truth.allocated
    # each writer hears the other's events too, never its own
    assert {n.instance for n in w1.dispatched} == {"w2"}


async def test_an_idle_writer_holds_no_reader_back(start_process: StartProcess) -> None:
    truth = Truth()
    w1: Process = await start_process("w1", truth)
    w2: Process = await start_process("w2", truth)
    reader: Process = await start_process("reader", truth)
    for _ in range(10):
        w1.commit(truth, await w1.write(truth))
    last = max(truth.allocated)
    await wait_for(lambda: reader.events.current() == last, "the reader to reach w1")
    assert w2.events.positions()["w2"] == last
    await wait_for(lambda: len(reader.dispatched) == 10, "the ten events")
    assert truth.violations == []


async def test_a_redis_restart_loses_nothing(
    start_process: StartProcess, private_redis: PrivateRedis
) -> None:
    back = asyncio.Event()

    async def until_back(delay: float) -> None:
        await back.wait()

    truth = Truth()
    config = private_redis.config
    processes: list[Process] = [
        await start_process(name, truth, config=config, sleep=until_back)
        for name in ("w1", "w2", "reader")
    ]
    w1, w2, reader = processes
    for _ in range(3):
        w1.commit(truth, await w1.write(truth))
    await wait_for(lambda: reader.events.current() == max(truth.allocated), "the first events")

    await private_redis.kill()
    await wait_for(lambda: not any(p.bus.connected for p in processes), "every bus to notice")
    held = await w2.write(truth)  # in flight across the restart
    for _ in range(4):
        w1.commit(truth, await w1.write(truth))  # announced to nobody: Redis is away
    assert reader.events.current() < held

    await private_redis.start()
    back.set()
    for process in processes:
        await process.bus.wait_connected(15)
    await wait_for(lambda: reader.events.current() == held - 1, "the reader to resync")
    w2.commit(truth, held)
    last = max(truth.allocated)
    await wait_for(lambda: reader.events.current() == last, "the reader to catch up")
    assert reader.resyncs[-1]["events"] <= last
    assert len(reader.resyncs) == 2  # at the start and once Redis was back
    assert truth.violations == []


async def test_a_crashed_writer_restarts_and_readers_move_past_its_lost_allocation(
    start_process: StartProcess, make_bus: BusFactory
) -> None:
    truth = Truth()
    w1: Process = await start_process("w1", truth)
    await start_process("w2", truth)
    reader: Process = await start_process("reader", truth)
    w1.commit(truth, await w1.write(truth))
    lost = await w1.write(truth)  # the process dies before this one commits
    await w1.events.close()
    await w1.bus.stop()
    truth.allocated.discard(lost)  # never persisted: a gap, not an event
    assert reader.events.current() < lost
    again: Process = await start_process("w1", truth)
    await wait_for(lambda: reader.events.current() >= lost, "the reader past the gap")
    again.commit(truth, await again.write(truth))
    await wait_for(lambda: reader.events.current() == max(truth.allocated), "the new event")
    assert truth.violations == []
