"""The delivery queues: a service that is down gets the same transaction again with
backoff and then the backlog; a restart with a backlog loses and repeats nothing; a
slow service delays neither another service nor sending."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from aiohttp.test_utils import TestServer

from tests.appservice.conftest import FakeAppService, homeserver_with
from tests.appservice.delivery_support import (
    WAIT_S,
    bridge,
    caught_up,
    eventually,
    make_ghost,
    queue,
    wait_for_events,
)
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import make_user


def txn_attempts(service: FakeAppService) -> list[str]:
    return [
        path.split("/")[-1].split("?")[0]
        for method, path in service.requests
        if method == "PUT" and "/transactions/" in path
    ]


async def test_service_down_gets_the_same_transaction_with_backoff_then_the_backlog(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await make_user(as_hs, "alice")
    ghost = await make_ghost(as_hs, "_bridge_bob")
    room_id = await alice.create_room(preset="public_chat")
    await ghost.join(room_id)
    await eventually(lambda: queue(as_hs).sent >= 1 and queue(as_hs).pending_txn_id is None)
    before = len(service.transactions)
    service.down = True
    first = await alice.send(room_id, "while the bridge restarts")
    await eventually(lambda: queue(as_hs).next_attempt_ms is not None)
    failed_txn = queue(as_hs).pending_txn_id
    assert failed_txn is not None
    assert queue(as_hs).next_attempt_ms == as_hs.clock.time_ms() + 1000
    # not due yet: waking does not retry
    attempts = len(txn_attempts(service))
    queue(as_hs).wake()
    await asyncio.sleep(0.05)
    assert len(txn_attempts(service)) == attempts
    as_hs.clock.advance(1)
    queue(as_hs).wake()
    await eventually(lambda: len(txn_attempts(service)) == attempts + 1)
    await eventually(lambda: queue(as_hs).next_attempt_ms == as_hs.clock.time_ms() + 2000)
    more = [await alice.send(room_id, f"backlog {i}") for i in range(3)]
    service.down = False
    as_hs.clock.advance(2)
    queue(as_hs).wake()
    await wait_for_events(service, [first, *more])
    # every attempt of the failed transaction used its ID; it came first, then the rest
    assert set(txn_attempts(service)[attempts - 1 : attempts + 1]) == {str(failed_txn)}
    new = service.transactions[before:]
    assert new[0][0] == str(failed_txn)
    assert [e["event_id"] for e in new[0][1]["events"]] == [first]
    ids = [e["event_id"] for _, body in new for e in body["events"]]
    assert ids == [first, *more]  # nothing lost, nothing twice
    assert [int(t) for t, _ in new] == sorted(int(t) for t, _ in new)
    assert queue(as_hs).next_attempt_ms is None


async def test_backoff_doubles_up_to_its_cap(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await make_user(as_hs, "alice")
    ghost = await make_ghost(as_hs, "_bridge_bob")
    room_id = await alice.create_room(preset="public_chat")
    await ghost.join(room_id)
    service.down = True
    await alice.send(room_id, "down")
    one = queue(as_hs)
    intervals = []
    for _ in range(12):
        await eventually(lambda: one.next_attempt_ms is not None)
        failures = one.failures
        wait_ms = (one.next_attempt_ms or 0) - as_hs.clock.time_ms()
        intervals.append(wait_ms)
        as_hs.clock.advance(wait_ms / 1000)
        one.wake()
        await eventually(lambda: one.failures == failures + 1)  # noqa: B023
    assert intervals[:4] == [1000, 2000, 4000, 8000]
    assert max(intervals) == 300_000


async def test_restart_with_a_backlog_sends_the_stored_transaction_then_the_rest(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    first = await homeserver_with(make_homeserver, tmp_path, bridge(url))
    alice = await make_user(first, "alice")
    ghost = await make_ghost(first, "_bridge_bob")
    room_id = await alice.create_room(preset="public_chat")
    await ghost.join(room_id)
    await eventually(lambda: queue(first).sent >= 1 and queue(first).pending_txn_id is None)
    service.down = True
    sent = [await alice.send(room_id, "before the restart")]
    await eventually(lambda: queue(first).pending_txn_id is not None)
    stored_txn = queue(first).pending_txn_id
    sent += [await alice.send(room_id, f"backlog {i}") for i in range(4)]
    await first.client.close()  # the first process stops (its queues with it)

    service.down = False
    second = await homeserver_with(make_homeserver, tmp_path, bridge(url))
    alice.hs = second
    sent.append(await alice.send(room_id, "after the restart"))
    await wait_for_events(service, sent)
    delivered = Counter(e["event_id"] for e in service.events())
    assert all(delivered[event_id] == 1 for event_id in sent)
    messages = [e["event_id"] for e in service.events() if e["type"] == "m.room.message"]
    assert messages == sent
    txn_ids = [int(t) for t, _ in service.transactions]
    assert str(stored_txn) in {t for t, _ in service.transactions}
    assert txn_ids == sorted(txn_ids)
    await caught_up(second)
    stored = await second.server.stores.appservice.oldest_transaction("bridge")
    assert stored is None  # accepted transactions are not kept


async def test_slow_service_delays_neither_another_service_nor_sending(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    slow, slow_url = appservice
    slow.transaction_gate = asyncio.Event()
    fast = FakeAppService(hs_token="hs_token_of_the_other")
    fast_server = TestServer(fast.app)
    await fast_server.start_server(access_log=None)
    try:
        other = bridge(
            str(fast_server.make_url("")).rstrip("/"),
            id="other",
            as_token="as_token_of_the_other",
            hs_token="hs_token_of_the_other",
            sender_localpart="otherbot",
        )
        other["namespaces"] = {
            "users": [{"regex": "@_other_.*:test.local", "exclusive": True}],
            "aliases": [],
            "rooms": [{"regex": "!.*", "exclusive": False}],
        }
        slow_raw = bridge(slow_url)
        slow_raw["namespaces"]["rooms"] = [{"regex": "!.*", "exclusive": False}]
        hs = await homeserver_with(make_homeserver, tmp_path, slow_raw, other)
        alice = await make_user(hs, "alice")
        room_id = await alice.create_room(preset="public_chat")
        async with asyncio.timeout(WAIT_S):
            sent = [await alice.send(room_id, f"message {i}") for i in range(5)]
        await wait_for_events(fast, sent)
        assert slow.transactions == []  # still holding the first one
        slow.transaction_gate.set()
        await wait_for_events(slow, sent)
    finally:
        slow.transaction_gate.set()
        await fast_server.close()


async def test_a_ping_answered_makes_a_backing_off_queue_retry_at_once(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await make_user(as_hs, "alice")
    ghost = await make_ghost(as_hs, "_bridge_bob")
    room_id = await alice.create_room(preset="public_chat")
    await ghost.join(room_id)
    service.down = True
    event_id = await alice.send(room_id, "while the bridge is away")
    await eventually(lambda: queue(as_hs).next_attempt_ms is not None)
    service.down = False
    # the bridge is back and pings: no clock moves, the queue retries now
    resp = await as_hs.client.post(
        "/_matrix/client/v1/appservice/bridge/ping",
        json={"transaction_id": "back"},
        headers={"Authorization": "Bearer as_token_of_the_bridge"},
    )
    assert resp.status == 200, await resp.text()
    await wait_for_events(service, [event_id])
    assert queue(as_hs).next_attempt_ms is None
