"""RedisBus against a real Redis: order, own notices, bad payloads, reconnecting."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from homeserver.config.sections import RedisConfig
from homeserver.replication.bus import CHANNEL_PREFIX, RedisBus
from homeserver.replication.notices import (
    CacheNotice,
    Notice,
    RoomEventNotice,
    RoomsStreamNotice,
    StreamPosition,
    UserStreamNotice,
    encode_notice,
)
from tests.replication.conftest import (
    REDIS_HOST,
    REDIS_PORT,
    BusFactory,
    PrivateRedis,
    Received,
    free_port,
    wait_for,
)


async def raw_publish(server_name: str, *payloads: bytes) -> None:
    """Publish from a plain client of our own, in order on one connection."""
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        for payload in payloads:
            await client.publish(CHANNEL_PREFIX + server_name, payload)
    finally:
        await client.aclose()


async def test_notices_arrive_in_the_order_they_were_published(make_bus: BusFactory) -> None:
    received = Received()
    await make_bus("reader", setup=lambda bus: bus.subscribe(received))
    writer = await make_bus("writer")
    for position in range(1, 501):
        writer.publish(StreamPosition("events", "writer", position))
    await wait_for(lambda: len(received.notices) == 500, "500 notices")
    assert [n.position for n in received.notices] == list(range(1, 501))  # type: ignore[union-attr]
    assert writer.dropped == 0


async def test_every_kind_of_notice_crosses(make_bus: BusFactory) -> None:
    received = Received()
    await make_bus("reader", setup=lambda bus: bus.subscribe(received))
    writer = await make_bus("writer")
    sent: list[Notice] = [
        StreamPosition("events", "writer", 3),
        RoomEventNotice("writer", "!r:t", 3, "$e", "m.room.member", "@a:t", "@b:t", ("@b:t",)),
        UserStreamNotice("writer", "to_device", 4, ("@a:t", "@b:t")),
        RoomsStreamNotice("writer", "typing", 5, ("!r:t",), {"!r:t": ["@a:t"]}),
        CacheNotice("writer", "profiles", ("@a:t",)),
        CacheNotice("writer", "push_rules"),
    ]
    for notice in sent:
        writer.publish(notice)
    await wait_for(lambda: len(received.notices) == len(sent), "every notice")
    assert received.notices == sent


async def test_a_process_ignores_its_own_notices(make_bus: BusFactory, server_name: str) -> None:
    received = Received()
    await make_bus("me", setup=lambda bus: bus.subscribe(received))
    other = StreamPosition("events", "other", 2)
    await raw_publish(
        server_name,
        encode_notice(StreamPosition("events", "me", 1)),
        encode_notice(other),
    )
    await wait_for(lambda: len(received.notices) == 1, "the other's notice")
    assert received.notices == [other]


async def test_other_homeservers_are_not_heard(make_bus: BusFactory) -> None:
    received = Received()
    await make_bus("reader", setup=lambda bus: bus.subscribe(received))
    config = RedisConfig(enabled=True, host=REDIS_HOST, port=REDIS_PORT)
    stranger = RedisBus(config, "elsewhere.test", "writer")
    await stranger.start()
    try:
        await stranger.wait_connected(15)
        stranger.publish(StreamPosition("events", "writer", 1))
        ours = await make_bus("writer")
        ours.publish(StreamPosition("events", "writer", 2))
        await wait_for(lambda: len(received.notices) == 1, "our writer's notice")
        assert received.notices == [StreamPosition("events", "writer", 2)]
    finally:
        await stranger.stop()


BAD_PAYLOADS = [
    b"",
    b"not json",
    b"\xff\xfe\x00",
    b"[]",
    b"42",
    b'"pos"',
    b"{}",
    b'{"k": "nope"}',
    b'{"k": ["pos"]}',
    b'{"k": "pos"}',
    b'{"k": "pos", "stream": "events", "instance": "w"}',
    b'{"k": "pos", "stream": "events", "instance": "w", "position": 1, "extra": 1}',
    b'{"k": "pos", "stream": "events", "instance": "w", "position": "12"}',
    b'{"k": "pos", "stream": "events", "instance": "w", "position": 1.5}',
    b'{"k": "pos", "stream": "events", "instance": "w", "position": true}',
    b'{"k": "pos", "stream": 7, "instance": "w", "position": 1}',
    b'{"k": "pos", "stream": "events", "instance": null, "position": 1}',
    b'{"k": "user", "instance": "w", "stream": "to_device", "position": 1, "users": "@a:t"}',
    b'{"k": "user", "instance": "w", "stream": "to_device", "position": 1, "users": [1]}',
    b'{"k": "rooms", "instance": "w", "stream": "typing", "position": 1, "rooms": [], "data": [1]}',
    b'{"k": "ev", "instance": "w", "room_id": "!r:t", "position": 1, "event_id": "$e",'
    b' "type": "m.x", "sender": "@a:t", "state_key": 5}',
    b'{"k": "cache", "instance": "w", "cache": "c", "keys": {"a": 1}}',
]


async def test_bad_payloads_are_skipped_and_the_reader_goes_on(
    make_bus: BusFactory, server_name: str
) -> None:
    received = Received()
    bus = await make_bus("reader", setup=lambda bus: bus.subscribe(received))
    good = StreamPosition("events", "w", 1)
    await raw_publish(server_name, *BAD_PAYLOADS, encode_notice(good))
    await wait_for(lambda: len(received.notices) == 1, "the good notice")
    assert received.notices == [good]
    assert bus.connected and bus.connections == 1


async def test_a_failing_handler_does_not_stop_the_others(make_bus: BusFactory) -> None:
    received = Received()

    def broken(notice: object) -> None:
        raise RuntimeError("boom")

    async def also_received(notice: object) -> None:
        received.notices.append(notice)  # type: ignore[arg-type]

    def setup(bus: RedisBus) -> None:
        bus.subscribe(broken)
        bus.subscribe(also_received)

    bus = await make_bus("reader", setup=setup)
    writer = await make_bus("writer")
    writer.publish(StreamPosition("events", "writer", 1))
    writer.publish(StreamPosition("events", "writer", 2))
    await wait_for(lambda: len(received.notices) == 2, "both notices")
    assert bus.connections == 1


async def test_reconnect_callbacks_run_before_notices_flow(make_bus: BusFactory) -> None:
    order: list[str] = []

    async def resync() -> None:
        order.append("resync")

    def setup(bus: RedisBus) -> None:
        bus.on_reconnect(resync)
        bus.subscribe(lambda notice: order.append("notice"))

    bus = await make_bus("reader", setup=setup)
    writer = await make_bus("writer")
    writer.publish(StreamPosition("events", "writer", 1))
    await wait_for(lambda: "notice" in order, "the notice")
    assert order == ["resync", "notice"]
    assert bus.connected


async def test_a_failing_reconnect_callback_means_connecting_again(
    make_bus: BusFactory,
) -> None:
    calls: list[int] = []
    waits: list[float] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the database is away")

    async def no_wait(delay: float) -> None:
        waits.append(delay)

    bus = await make_bus("reader", sleep=no_wait, setup=lambda bus: bus.on_reconnect(flaky))
    assert bus.connected and bus.connections == 1
    assert len(calls) == 2 and waits == [0.1]


async def test_publishing_while_disconnected_drops_and_never_raises(
    make_bus: BusFactory,
) -> None:
    waits: list[float] = []
    stopped = asyncio.Event()

    async def counted_wait(delay: float) -> None:
        waits.append(delay)
        if len(waits) >= 9:
            await stopped.wait()  # hold the reconnect loop still until the test ends

    nowhere = RedisConfig(enabled=True, host="127.0.0.1", port=free_port())
    bus = await make_bus("lonely", config=nowhere, sleep=counted_wait, wait=False)
    bus.publish(StreamPosition("events", "lonely", 1))
    await wait_for(lambda: len(waits) >= 9, "nine reconnect attempts")
    assert not bus.connected
    bus.publish(StreamPosition("events", "lonely", 2))
    assert bus.dropped == 2
    # the backoff doubles from 0.1 s up to its cap of 5 s
    assert waits[:9] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    with pytest.raises(TimeoutError):
        await bus.wait_connected(0.01)
    stopped.set()


async def test_the_bus_reconnects_when_redis_restarts(
    make_bus: BusFactory, private_redis: PrivateRedis
) -> None:
    back = asyncio.Event()
    waits: list[float] = []

    async def until_back(delay: float) -> None:
        waits.append(delay)
        await back.wait()

    received = Received()
    reconnects: list[int] = []

    async def on_reconnect() -> None:
        reconnects.append(1)

    def setup(bus: RedisBus) -> None:
        bus.subscribe(received)
        bus.on_reconnect(on_reconnect)

    config = private_redis.config
    reader = await make_bus("reader", config=config, sleep=until_back, setup=setup)
    writer = await make_bus("writer", config=config, sleep=until_back)
    writer.publish(StreamPosition("events", "writer", 1))
    await wait_for(lambda: len(received.notices) == 1, "the first notice")

    await private_redis.kill()
    await wait_for(lambda: not reader.connected and not writer.connected, "both to notice")
    writer.publish(StreamPosition("events", "writer", 2))  # dropped: Redis is away
    assert writer.dropped >= 1

    await private_redis.start()
    back.set()
    await reader.wait_connected(15)
    await writer.wait_connected(15)
    assert len(reconnects) == 2
    writer.publish(StreamPosition("events", "writer", 3))
    await wait_for(lambda: len(received.notices) == 2, "the notice after the restart")
    assert [n.position for n in received.notices] == [1, 3]  # type: ignore[union-attr]
    assert waits and waits[0] == 0.1


async def test_stop_ends_every_task(make_bus: BusFactory) -> None:
    bus = await make_bus("reader")
    await bus.stop()
    assert not bus.connected
    bus.publish(StreamPosition("events", "reader", 1))  # after stop: dropped quietly
    await bus.stop()  # twice is fine


async def test_a_refused_publish_is_dropped_and_the_bus_goes_on(
    make_bus: BusFactory, private_redis: PrivateRedis
) -> None:
    received = Received()
    config = private_redis.config
    reader = await make_bus("reader", config=config, setup=lambda bus: bus.subscribe(received))
    writer = await make_bus("writer", config=config)
    admin = aioredis.Redis(host="127.0.0.1", port=private_redis.port)
    try:
        await admin.execute_command("ACL", "SETUSER", "default", "-publish")
        writer.publish(StreamPosition("events", "writer", 1))
        await wait_for(lambda: writer.dropped == 1, "the refused notice to be dropped")
        await admin.execute_command("ACL", "SETUSER", "default", "+publish")
    finally:
        await admin.aclose()
    writer.publish(StreamPosition("events", "writer", 2))
    await wait_for(lambda: len(received.notices) == 1, "the next notice")
    assert received.notices == [StreamPosition("events", "writer", 2)]
    assert writer.connections == reader.connections == 1
