"""MultiWriterStreamIdGenerator and SingleWriterStreamIdGenerator: positions of a
stream across processes, on a real PostgreSQL, the notices between the processes
delivered when each test says (``support.Network``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest

from homeserver.clock import FakeClock
from homeserver.replication.notices import Notice, StreamPosition
from homeserver.replication.positions import (
    MultiWriterStreamIdGenerator,
    SingleWriterStreamIdGenerator,
)
from storage.database import Database
from storage.stream_positions import StreamPositionStore
from tests.replication.conftest import wait_for
from tests.replication.support import GatedStore, Network, positions_of

WRITERS = ("w1", "w2")
Generators = dict[str, MultiWriterStreamIdGenerator]
MakeGenerators = Callable[..., Awaitable[Generators]]


@pytest.fixture
async def make_generators(pg: Database) -> AsyncIterator[MakeGenerators]:
    """Generators of the events stream for the named processes, joined in one
    Network; each resynced (writers before readers) unless told otherwise."""
    made: list[MultiWriterStreamIdGenerator] = []

    async def factory(
        network: Network,
        names: tuple[str, ...] = ("w1", "w2", "reader"),
        *,
        writers: tuple[str, ...] = WRITERS,
        stores: dict[str, StreamPositionStore] | None = None,
        resync: bool = True,
        clock: FakeClock | None = None,
    ) -> Generators:
        generators: Generators = {}
        for name in names:
            store = (stores or {}).get(name) or StreamPositionStore(pg)
            generator = MultiWriterStreamIdGenerator(
                "events", name, writers, store, network.publisher(name), clock or FakeClock()
            )
            network.join(name, _observer(generator))
            generators[name] = generator
            made.append(generator)
        if resync:
            for name in sorted(names, key=lambda n: n not in writers):
                await generators[name].resync()
        return generators

    yield factory
    for generator in made:
        await generator.close()


def _observer(generator: MultiWriterStreamIdGenerator) -> Callable[[Notice], None]:
    def observe(notice: Notice) -> None:
        if isinstance(notice, StreamPosition):
            generator.observe(notice)

    return observe


async def settle(network: Network, generators: Generators) -> None:
    """Deliver everything, recorded rows and their notices included, until quiet."""
    for _ in range(20):
        for generator in generators.values():
            await generator.flush()
        if not network.links_with_mail():
            return
        network.deliver_all()
    raise AssertionError("the network never went quiet")


# -- one writer's own position --------------------------------------------------------


async def test_a_writer_advances_once_every_lower_allocation_finished(
    make_generators: MakeGenerators,
) -> None:
    network = Network()
    gens = await make_generators(network, ("w1", "reader"), writers=("w1",))
    w1, reader = gens["w1"], gens["reader"]
    a, b, c = [await w1.allocate_async() for _ in range(3)]
    assert a < b < c
    w1.finish(c)
    w1.finish(a)
    assert w1.current() == a  # b is still in flight
    await settle(network, gens)
    assert reader.current() == a
    w1.finish(b)
    assert w1.current() == c
    await settle(network, gens)
    assert reader.current() == c


async def test_the_position_is_published_and_recorded(
    make_generators: MakeGenerators, pg: Database
) -> None:
    network = Network()
    gens = await make_generators(network, ("w1",), writers=("w1",))
    w1 = gens["w1"]
    position = await w1.allocate_async()
    w1.finish(position)
    await w1.flush()
    assert await StreamPositionStore(pg).positions("events") == {"w1": position}
    assert positions_of(network.publisher("w1").published)[-1] == position


async def test_a_writer_records_its_row_before_its_first_allocation(
    make_generators: MakeGenerators, pg: Database
) -> None:
    network = Network()
    gens = await make_generators(network, ("w1",), writers=WRITERS, resync=False)
    with pytest.raises(RuntimeError, match="resync"):
        await gens["w1"].allocate_async()
    await gens["w1"].resync()
    assert await StreamPositionStore(pg).positions("events") == {"w1": 0}


async def test_readers_cannot_allocate(make_generators: MakeGenerators) -> None:
    gens = await make_generators(Network(), ("reader",))
    with pytest.raises(RuntimeError, match="not a writer"):
        await gens["reader"].allocate_async()


async def test_finishing_what_was_not_allocated_changes_nothing(
    make_generators: MakeGenerators,
) -> None:
    gens = await make_generators(Network(), ("w1",), writers=("w1",))
    w1 = gens["w1"]
    position = await w1.allocate_async()
    w1.finish(position + 100)
    w1.finish(-1)
    assert w1.current() == position - 1
    w1.finish(position)
    w1.finish(position)  # twice
    assert w1.current() == position


async def test_a_stream_needs_a_writer(pg: Database) -> None:
    with pytest.raises(ValueError):
        MultiWriterStreamIdGenerator(
            "events", "w1", (), StreamPositionStore(pg), Network().publisher("w1"), FakeClock()
        )


# -- several writers ---------------------------------------------------------------------


async def test_readers_wait_for_the_slowest_writer(make_generators: MakeGenerators) -> None:
    network = Network()
    gens = await make_generators(network)
    w1, w2, reader = gens["w1"], gens["w2"], gens["reader"]
    first = await w1.allocate_async()
    second = await w2.allocate_async()
    third = await w1.allocate_async()
    w1.finish(first)
    w1.finish(third)
    await settle(network, gens)
    assert reader.current() == second - 1  # w2's allocation is in flight
    assert w1.current() == second - 1
    w2.finish(second)
    await settle(network, gens)
    assert reader.current() == w1.current() == w2.current() == third


async def test_an_idle_writer_does_not_hold_readers_back(
    make_generators: MakeGenerators,
) -> None:
    network = Network()
    gens = await make_generators(network)
    w1, reader = gens["w1"], gens["reader"]
    for _ in range(5):
        w1.finish(await w1.allocate_async())
    await settle(network, gens)
    assert reader.current() == w1.positions()["w1"]
    assert gens["w2"].positions()["w2"] == reader.current()  # claimed, never allocated
    assert reader.lagging() == {}


async def test_stale_and_foreign_notices_change_nothing(
    make_generators: MakeGenerators,
) -> None:
    network = Network()
    gens = await make_generators(network, ("reader",))
    reader = gens["reader"]
    advanced: list[int] = []
    reader.add_advance_listener(advanced.append)
    reader.observe(StreamPosition("events", "w1", 10))
    reader.observe(StreamPosition("events", "w2", 8))
    assert reader.current() == 8
    reader.observe(StreamPosition("events", "w2", 7))  # older
    reader.observe(StreamPosition("events", "w2", 8))  # again
    reader.observe(StreamPosition("events", "stranger", 50))  # not a writer
    reader.observe(StreamPosition("receipts", "w2", 50))  # another stream
    assert reader.current() == 8
    reader.observe(StreamPosition("events", "w2", 12))
    assert reader.current() == 10
    assert advanced == [8, 10]
    assert reader.positions() == {"w1": 10, "w2": 12}


async def test_a_writer_ignores_notices_in_its_own_name(
    make_generators: MakeGenerators,
) -> None:
    gens = await make_generators(Network(), ("w1",))
    gens["w1"].observe(StreamPosition("events", "w1", 1000))
    assert gens["w1"].positions()["w1"] < 1000


async def test_lagging_tells_which_writer_holds_readers_back(
    make_generators: MakeGenerators,
) -> None:
    clock = FakeClock()
    gens = await make_generators(Network(), ("reader",), clock=clock)
    reader = gens["reader"]
    clock.advance(3)
    reader.observe(StreamPosition("events", "w1", 5))
    clock.advance(2)
    assert reader.lagging() == {"w2": 5.0}


async def test_a_pending_allocation_stops_an_idle_claim(
    make_generators: MakeGenerators, pg: Database
) -> None:
    """The sequence has handed w1 a value that w1 has not heard back yet: w1 must not
    claim what w2 publishes above it, or readers would pass the value unpersisted."""
    network = Network()
    held = GatedStore(pg, hold=True)
    gens = await make_generators(network, stores={"w1": held})
    w1, w2, reader = gens["w1"], gens["w2"], gens["reader"]
    taking = asyncio.get_running_loop().create_task(w1.allocate_async())
    await wait_for(lambda: len(held.waiting) == 1, "w1's allocation to be handed out")
    w2.finish(await w2.allocate_async())
    await settle(network, gens)
    pending = held.waiting[0][0]
    assert reader.current() < pending
    held.answer()
    position = await taking
    assert position == pending
    await settle(network, gens)
    assert reader.current() == pending - 1
    w1.finish(position)
    await settle(network, gens)
    assert reader.current() == w2.positions()["w2"] > pending


async def test_resync_reads_every_writer_from_the_table(
    make_generators: MakeGenerators, pg: Database
) -> None:
    store = StreamPositionStore(pg)
    for _ in range(7):
        await store.next_stream_id("events_stream_seq")
    await store.upsert_position("events", "w1", 5)
    gens = await make_generators(Network(), ("reader",))
    # w2 has no row: it has allocated nothing up to the sequence's value
    assert gens["reader"].positions() == {"w1": 5, "w2": 7}
    assert gens["reader"].current() == 5


async def test_a_starting_writer_claims_what_the_sequence_handed_out(
    make_generators: MakeGenerators, pg: Database
) -> None:
    store = StreamPositionStore(pg)
    for _ in range(4):
        await store.next_stream_id("events_stream_seq")  # a crashed writer's
    network = Network()
    gens = await make_generators(network, ("w1",))
    assert gens["w1"].positions()["w1"] == 4
    assert positions_of(network.publisher("w1").published)[-1] == 4
    assert (await store.positions("events"))["w1"] == 4


async def test_a_writer_moves_the_sequence_past_what_one_process_stored(
    make_generators: MakeGenerators,
) -> None:
    gens = await make_generators(Network(), ("w1",), writers=("w1",), resync=False)
    await gens["w1"].resync(stored_max=500)
    assert await gens["w1"].allocate_async() == 501


# -- random interleavings ----------------------------------------------------------------


def handed_out(store: GatedStore, before: int) -> bool:
    return len(store.waiting) > before


@pytest.mark.parametrize("seed", range(6))
async def test_no_process_passes_an_unpersisted_position(
    make_generators: MakeGenerators, pg: Database, seed: int
) -> None:
    """Two writers allocating (some answers held back), finishing out of order, and
    notices delivered in any order between links: no process's ``current()`` ever
    reaches a position allocated and not finished, it never goes back, and once
    everything has finished and been told every process reaches the last one."""
    rng = random.Random(seed)
    network = Network()
    stores = {w: GatedStore(pg, hold=True) for w in WRITERS}
    gens = await make_generators(network, stores=stores)
    for store in stores.values():
        store.hold = True
    in_flight: dict[str, set[int]] = {w: set() for w in WRITERS}
    taking: dict[str, list[asyncio.Task[int]]] = {w: [] for w in WRITERS}
    seen = dict.fromkeys(gens, 0)

    def check() -> None:
        unfinished = [p for w in WRITERS for p in in_flight[w]]
        unfinished += [p for w in WRITERS for p, _ in stores[w].waiting]
        for name, generator in gens.items():
            current = generator.current()
            assert current >= seen[name], f"{name} went back"
            seen[name] = current
            assert not unfinished or current < min(unfinished), (
                f"{name} at {current} passed unfinished {sorted(unfinished)}"
            )

    async def answer(writer: str) -> None:
        index = rng.randrange(len(stores[writer].waiting))
        position = stores[writer].answer(index)
        await wait_for(
            lambda: any(t.done() and t.result() == position for t in taking[writer]),
            "the allocation to return",
        )
        in_flight[writer].add(position)

    for _ in range(150):
        writer = rng.choice(WRITERS)
        action = rng.random()
        if action < 0.25 and len(stores[writer].waiting) < 3:
            count = len(stores[writer].waiting)
            taking[writer].append(
                asyncio.get_running_loop().create_task(gens[writer].allocate_async())
            )
            store = stores[writer]
            await wait_for(partial(handed_out, store, count), "a value handed out")
        elif action < 0.45 and stores[writer].waiting:
            await answer(writer)
        elif action < 0.65 and in_flight[writer]:
            position = rng.choice(sorted(in_flight[writer]))
            in_flight[writer].discard(position)
            gens[writer].finish(position)
        elif action < 0.97 and network.links_with_mail():
            network.deliver_one(rng.choice(network.links_with_mail()))
        else:
            await gens["reader"].resync()
        await asyncio.sleep(0)  # let recorded rows republish meanwhile
        check()

    for writer in WRITERS:
        while stores[writer].waiting:
            await answer(writer)
        for position in sorted(in_flight[writer], reverse=True):
            in_flight[writer].discard(position)
            gens[writer].finish(position)
        check()
    await settle(network, gens)
    check()
    last = max(t.result() for w in WRITERS for t in taking[w]) if any(taking.values()) else 0
    for name, generator in gens.items():
        assert generator.current() >= last, name


# -- one writer, readers elsewhere ----------------------------------------------------


@pytest.fixture
async def single(pg: Database) -> AsyncIterator[Callable[..., SingleWriterStreamIdGenerator]]:
    made: list[SingleWriterStreamIdGenerator] = []

    def factory(
        instance: str, network: Network, *, current: int = 0
    ) -> SingleWriterStreamIdGenerator:
        generator = SingleWriterStreamIdGenerator(
            "receipts",
            instance,
            "master",
            StreamPositionStore(pg),
            network.publisher(instance),
            FakeClock(),
            current=current,
        )

        def observe(notice: Notice) -> None:
            if isinstance(notice, StreamPosition):
                generator.observe(notice)

        network.join(instance, observe)
        made.append(generator)
        return generator

    yield factory
    for generator in made:
        await generator.close()


async def test_a_single_writer_tells_readers_its_rises(
    single: Callable[..., SingleWriterStreamIdGenerator], pg: Database
) -> None:
    network = Network()
    writer = single("master", network, current=10)
    reader = single("sync1", network, current=10)
    await writer.resync()
    await reader.resync()
    assert reader.current() == 10
    advanced: list[int] = []
    reader.add_advance_listener(advanced.append)
    a, b = writer.allocate(), writer.allocate()
    writer.finish(b)
    network.deliver_all()
    assert reader.current() == 10  # a is in flight
    writer.finish(a)
    network.deliver_all()
    assert reader.current() == b == 12
    await writer.flush()
    assert await StreamPositionStore(pg).positions("receipts") == {"master": 12}
    network.deliver_all()
    assert advanced == [12]
    with pytest.raises(RuntimeError, match="not the writer"):
        reader.allocate()


async def test_a_single_writer_reader_resyncs_from_the_row(
    single: Callable[..., SingleWriterStreamIdGenerator], pg: Database
) -> None:
    await StreamPositionStore(pg).upsert_position("receipts", "master", 30)
    network = Network()
    reader = single("sync1", network, current=40)  # the table's max: may be ahead
    assert reader.current() == 0
    await reader.resync()
    assert reader.current() == 30  # the writer's word, not the table's max
    reader.observe(StreamPosition("receipts", "master", 20))  # stale
    reader.observe(StreamPosition("receipts", "other", 99))  # not the writer
    reader.observe(StreamPosition("typing", "master", 99))  # another stream
    assert reader.current() == 30
    reader.observe(StreamPosition("receipts", "master", 31))
    assert reader.current() == 31


async def test_a_single_writer_reader_falls_back_on_the_stored_max(
    single: Callable[..., SingleWriterStreamIdGenerator],
) -> None:
    reader = single("sync1", Network(), current=40)
    await reader.resync()  # the writer never recorded a row: nothing is in flight
    assert reader.current() == 40
