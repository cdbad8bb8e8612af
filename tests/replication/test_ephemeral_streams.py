"""The non-event streams across processes: a writer and a reader service of each
stream in one test process, over one database, wired by an in-test publisher that
delivers the encoded notices from writer to reader in order (the reader's position
source advanced by the test, as the notice receiver would have it); the federation
EDU and presence activity endpoints; the forwarders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from federation.transactions import TransactionHandler
from homeserver.account_data import AccountDataService
from homeserver.clock import FakeClock
from homeserver.config import PresenceConfig
from homeserver.e2ee import E2ee
from homeserver.e2ee.device_lists import DeviceListService
from homeserver.ephemeral import EphemeralServices
from homeserver.errors import MatrixError
from homeserver.http.middleware import make_middlewares
from homeserver.notifier import Notifier
from homeserver.presence import PresenceService
from homeserver.push.rules_service import PushRulesService
from homeserver.receipts import ReceiptService
from homeserver.replication.ephemeral import EphemeralMirror, EphemeralReplication
from homeserver.replication.ephemeral_endpoints import (
    ACCOUNT_DATA_PATH,
    FEDERATION_EDU_PATH,
    PRESENCE_ACTIVITY_PATH,
    ROOM_TAG_PATH,
    SYNC_STOP_LINGER_MS,
    AccountDataForwarder,
    EphemeralEndpoints,
    FederationEduForwarder,
    PresenceActivityForwarder,
)
from homeserver.replication.ephemeral_wiring import EphemeralWiring
from homeserver.replication.notices import (
    Notice,
    RoomEventNotice,
    RoomsStreamNotice,
    decode_notice,
    encode_notice,
)
from homeserver.rooms.persister import EventPersister
from homeserver.streams import StreamIdGenerator
from homeserver.to_device import ToDeviceService
from homeserver.typing import TypingService
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

WRITER, READER = "master", "sync1"
SECRET = "s3cret"


class Wire:
    """The in-test bus: what the writer published, encoded, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def publish(self, notice: Notice) -> None:
        self.sent.append(encode_notice(notice))


class Positions:
    """A reader's view of one stream (only ``current()``), moved by the test."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def current(self) -> int:
        return self.value


@dataclass
class Side:
    notifier: Notifier
    typing: TypingService
    receipts: ReceiptService
    presence: PresenceService
    account_data: AccountDataService
    to_device: ToDeviceService
    device_lists: DeviceListService
    push_rules: PushRulesService


@dataclass
class Pair:
    writer: Side
    reader: Side
    mirror: EphemeralMirror
    wire: Wire
    reader_wire: Wire
    positions: dict[str, Positions] = field(default_factory=dict)

    def deliver(self) -> int:
        """Every published notice to the reader, in order, once its stream's position
        there has reached the notice's; how many."""
        count = 0
        while self.wire.sent:
            notice = decode_notice(self.wire.sent.pop(0))
            stream = getattr(notice, "stream", None)
            position = getattr(notice, "position", 0)
            if isinstance(stream, str):
                tracked = self.positions.setdefault(stream, Positions())
                tracked.value = max(tracked.value, position)
            self.mirror.on_notice(notice)
            count += 1
        return count


def _side(
    hs: HomeserverHarness,
    instance: str,
    wire: Wire | None,
    streams: Callable[[str, int], Any],
) -> Side:
    stores, clock, server_name = hs.server.stores, hs.clock, "test.local"
    notifier = Notifier()
    role: dict[str, Any] = {"instance_name": instance, "writer": WRITER}
    if wire is not None:
        role["publisher"] = wire
    account_data = AccountDataService(
        stores.account_data, notifier, streams("account_data", 0), **role
    )
    return Side(
        notifier=notifier,
        typing=TypingService(server_name, stores, notifier, clock, streams("typing", 0), **role),
        receipts=ReceiptService(
            stores, notifier, streams("receipts", 0), clock, account_data, **role
        ),
        presence=PresenceService(
            PresenceConfig(),
            server_name,
            stores,
            notifier,
            clock,
            streams("presence", 0),
            **role,
        ),
        account_data=account_data,
        to_device=ToDeviceService(
            server_name, stores, notifier, streams("to_device", 0), clock, **role
        ),
        device_lists=DeviceListService(stores, notifier, streams("device_lists", 0), **role),
        push_rules=PushRulesService(
            stores.push_rules, notifier, stream=streams("push_rules", 0), **role
        ),
    )


async def _pair(hs: HomeserverHarness) -> Pair:
    wire = Wire()
    seeds = {
        "account_data": await hs.server.stores.account_data.max_stream_id(),
        "receipts": await hs.server.stores.receipts.max_stream_id(),
        "presence": await hs.server.stores.presence.max_stream_id(),
        "to_device": await hs.server.stores.to_device.max_stream_id(),
        "device_lists": await hs.server.stores.e2e_keys.max_device_list_stream(),
    }
    writer = _side(hs, WRITER, wire, lambda s, _: StreamIdGenerator(seeds.get(s, 0)))
    positions = {s: Positions(v) for s, v in seeds.items()}

    def reader_stream(stream: str, _seed: int) -> Positions:
        return positions.setdefault(stream, Positions())

    # the composition root gives every service the bus: a reader never publishes
    reader_wire = Wire()
    reader = _side(hs, READER, reader_wire, reader_stream)
    mirror = EphemeralMirror(
        typing=reader.typing,
        receipts=reader.receipts,
        presence=reader.presence,
        account_data=reader.account_data,
        to_device=reader.to_device,
        device_lists=reader.device_lists,
        push_rules=reader.push_rules,
    )
    await mirror.resync()
    return Pair(writer, reader, mirror, wire, reader_wire, positions)


async def _room(hs: HomeserverHarness) -> tuple[User, User, str]:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    return alice, bob, room_id


async def _woken(
    notifier: Notifier, user_id: str, rooms: list[str], act: Callable[[], Any]
) -> None:
    """``act`` wakes a long-poll of ``user_id`` on ``notifier`` (within 5 s)."""
    waiter = asyncio.ensure_future(notifier.wait(user_id, rooms, 5.0))
    try:
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiter.done()
        act()
        await asyncio.wait_for(asyncio.shield(waiter), 5)
    finally:
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)


def _refused(error: MatrixError, stream: str) -> None:
    assert error.status == 500
    assert error.errcode == "M_UNKNOWN"
    assert error.message == f"{stream} is written by {WRITER}"


# -- typing ---------------------------------------------------------------------------


async def test_typing_on_the_writer_shows_on_the_reader(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room(hs)
    pair = await _pair(hs)
    await pair.writer.typing.set_typing(alice.user_id, room_id, True, 10_000)
    assert pair.reader.typing.typing_for_sync([room_id], None) == {}
    await _woken(pair.reader.notifier, bob.user_id, [room_id], pair.deliver)
    reader = pair.reader.typing
    assert reader.current_position() == pair.writer.typing.current_position() == 1
    assert reader.has_updates([room_id], 0)
    assert reader.typing_for_sync([room_id], 0) == {
        room_id: [{"type": "m.typing", "content": {"user_ids": [alice.user_id]}}]
    }
    # the reader never expires typists itself: the writer says when they stop
    hs.clock.advance(20)
    reader.tick()
    assert reader.typing_users(room_id) == [alice.user_id]
    pair.writer.typing.tick()
    pair.deliver()
    assert reader.typing_for_sync([room_id], 1) == {
        room_id: [{"type": "m.typing", "content": {"user_ids": []}}]
    }
    assert not reader.has_updates([room_id], 2)


async def test_typing_writes_on_the_reader_are_refused(hs: HomeserverHarness) -> None:
    alice, _bob, room_id = await _room(hs)
    pair = await _pair(hs)
    with pytest.raises(MatrixError) as caught:
        await pair.reader.typing.set_typing(alice.user_id, room_id, True, 10_000)
    _refused(caught.value, "typing")
    with pytest.raises(MatrixError):
        pair.reader.typing.started_typing(alice.user_id, room_id, 10_000)
    assert pair.wire.sent == []


async def test_typing_resync_clears_what_the_reader_mirrored(hs: HomeserverHarness) -> None:
    alice, _bob, room_id = await _room(hs)
    pair = await _pair(hs)
    await pair.writer.typing.set_typing(alice.user_id, room_id, True, 10_000)
    pair.deliver()
    await pair.mirror.resync()
    assert pair.reader.typing.typing_for_sync([room_id], 0) == {
        room_id: [{"type": "m.typing", "content": {"user_ids": []}}]
    }


async def test_a_typist_who_leaves_through_another_writer_stops(hs: HomeserverHarness) -> None:
    _alice, bob, room_id = await _room(hs)
    pair = await _pair(hs)
    await pair.writer.typing.set_typing(bob.user_id, room_id, True, 10_000)
    await bob.request("POST", f"/rooms/{room_id}/leave", {})
    writer_mirror = EphemeralMirror(
        typing=pair.writer.typing,
        receipts=pair.writer.receipts,
        presence=pair.writer.presence,
        account_data=pair.writer.account_data,
        to_device=pair.writer.to_device,
    )
    notice = RoomEventNotice(
        "events1", room_id, 99, "$leave", "m.room.member", bob.user_id, bob.user_id
    )
    writer_mirror.on_notice(notice)
    for _ in range(100):
        if not pair.writer.typing.typing_users(room_id):
            break
        await asyncio.sleep(0.01)
    assert pair.writer.typing.typing_users(room_id) == []
    assert pair.reader.typing.typing_users(room_id) == []


# -- receipts -------------------------------------------------------------------------


async def test_receipts_on_the_writer_show_on_the_reader(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room(hs)
    pair = await _pair(hs)
    first = await alice.send(room_id, "1")
    start = pair.reader.receipts.current_position()
    await pair.writer.receipts.send_receipt(bob.user_id, room_id, "m.read", first)
    assert pair.reader.receipts.current_position() == start
    await _woken(pair.reader.notifier, alice.user_id, [room_id], pair.deliver)
    reader = pair.reader.receipts
    upto = reader.current_position()
    assert upto == pair.writer.receipts.current_position() == start + 1
    assert reader.has_updates([room_id], start)
    got = await reader.receipts_for_sync(alice.user_id, [room_id], start, upto)
    [event] = got[room_id]
    assert list(event["content"]) == [first]
    assert bob.user_id in event["content"][first]["m.read"]
    # the next one is answered from the reader's memory: the same as from the database
    second = await alice.send(room_id, "2")
    await pair.writer.receipts.send_receipt(bob.user_id, room_id, "m.read", second)
    pair.deliver()
    memory = await reader.receipts_for_sync(alice.user_id, [room_id], upto, upto + 1)
    database = await hs.server.stores.receipts.for_rooms([room_id], upto, upto + 1)
    assert [r.event_id for r in database] == [second]
    assert list(memory[room_id][0]["content"]) == [second]
    # private receipts stay private on the reader too
    await pair.writer.receipts.send_receipt(bob.user_id, room_id, "m.read.private", second)
    pair.deliver()
    assert await reader.receipts_for_sync(alice.user_id, [room_id], upto + 1, upto + 2) == {}


async def test_receipt_writes_on_the_reader_are_refused(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room(hs)
    pair = await _pair(hs)
    event_id = await alice.send(room_id, "x")
    with pytest.raises(MatrixError) as caught:
        await pair.reader.receipts.send_receipt(bob.user_id, room_id, "m.read", event_id)
    _refused(caught.value, "receipts")
    with pytest.raises(MatrixError):
        await pair.reader.receipts.set_read_markers(bob.user_id, room_id, None, event_id, None)
    with pytest.raises(MatrixError):
        await pair.reader.receipts.receive_remote("@c:remote.example", room_id, event_id, None)


# -- account data ---------------------------------------------------------------------


async def test_account_data_on_the_writer_shows_on_the_reader(hs: HomeserverHarness) -> None:
    alice, _bob, room_id = await _room(hs)
    pair = await _pair(hs)
    reader = pair.reader.account_data
    since = reader.current_position()
    ignored: dict[str, Any] = {"ignored_users": {"@x:test.local": {}}}
    assert await reader.ignored_users(alice.user_id) == frozenset()
    await pair.writer.account_data.put(alice.user_id, None, "m.ignored_user_list", ignored)
    await pair.writer.account_data.set_tag(alice.user_id, room_id, "u.work", {})
    assert not reader.has_updates(alice.user_id, since)
    await _woken(pair.reader.notifier, alice.user_id, [], pair.deliver)
    upto = reader.current_position()
    assert upto == since + 2
    assert reader.has_updates(alice.user_id, since)
    data = await reader.for_sync(alice.user_id, since, upto)
    assert data.global_events == [{"type": "m.ignored_user_list", "content": ignored}]
    assert data.room_events[room_id][0]["type"] == "m.tag"
    # the cached ignored users were dropped
    assert await reader.ignored_users(alice.user_id) == frozenset({"@x:test.local"})


async def test_account_data_writes_on_the_reader_are_refused(hs: HomeserverHarness) -> None:
    alice, _bob, room_id = await _room(hs)
    pair = await _pair(hs)
    with pytest.raises(MatrixError) as caught:
        await pair.reader.account_data.set_by_client(alice.user_id, None, "a.b", {})
    _refused(caught.value, "account_data")
    with pytest.raises(MatrixError):
        await pair.reader.account_data.set_tag(alice.user_id, room_id, "u.x", {})
    assert pair.wire.sent == []


# -- to-device ------------------------------------------------------------------------


async def test_to_device_on_the_writer_shows_on_the_reader(hs: HomeserverHarness) -> None:
    alice, bob, _room_id = await _room(hs)
    pair = await _pair(hs)
    reader = pair.reader.to_device
    since = reader.current_position()
    inboxes: list[set[str]] = []
    reader.inbox_listeners.append(inboxes.append)  # the writer's listeners: not called
    content = {"algorithm": "m.olm.v1", "body": "hi"}
    await pair.writer.to_device.send(
        alice.user_id, alice.device_id, "m.room.encrypted", "t1", {bob.user_id: {"*": content}}
    )
    await _woken(pair.reader.notifier, bob.user_id, [], pair.deliver)
    assert inboxes == []
    upto = reader.current_position()
    assert reader.has_updates(bob.user_id, since)
    events, position = await reader.to_device_for_sync(bob.user_id, bob.device_id, since, upto)
    assert events == [{"sender": alice.user_id, "type": "m.room.encrypted", "content": content}]
    assert position == upto
    with pytest.raises(MatrixError) as caught:
        await reader.send(alice.user_id, alice.device_id, "m.x", "t2", {bob.user_id: {"*": {}}})
    _refused(caught.value, "to_device")
    with pytest.raises(MatrixError):
        await reader.deliver_remote("@c:remote.example", "m.x", {bob.user_id: {"*": {}}})


# -- device lists ---------------------------------------------------------------------


async def test_device_lists_on_the_writer_show_on_the_reader(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room(hs)
    pair = await _pair(hs)
    reader = pair.reader.device_lists
    since = reader.current_position()
    await pair.writer.device_lists.record_change(alice.user_id, [alice.device_id])
    assert not reader.has_updates(bob.user_id, [room_id], since)
    waiter = asyncio.ensure_future(pair.reader.notifier.wait(bob.user_id, [room_id], 5.0))
    try:
        for _ in range(5):
            await asyncio.sleep(0)
        pair.deliver()
        await asyncio.wait_for(asyncio.shield(waiter), 5)  # bob shares the room
    finally:
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    await reader.wait_replica()
    assert reader.current_position() == since + 1
    assert reader.has_updates(alice.user_id, [], since)
    assert reader.has_updates(bob.user_id, [room_id], since)
    with pytest.raises(MatrixError) as caught:
        await reader.record_change(alice.user_id, [alice.device_id])
    _refused(caught.value, "device_lists")


# -- push rules -----------------------------------------------------------------------


async def test_push_rules_on_the_writer_show_on_the_reader(hs: HomeserverHarness) -> None:
    alice, _bob, _room_id = await _room(hs)
    pair = await _pair(hs)
    reader = pair.reader.push_rules
    before = (await reader.compiled_for_users([alice.user_id]))[alice.user_id]
    rule = {"actions": ["notify"], "pattern": "cake"}
    await pair.writer.push_rules.set_rule(alice.user_id, "content", "cake", rule)
    # still the cached ruleset until the notice arrives
    assert (await reader.compiled_for_users([alice.user_id]))[alice.user_id] is before
    await _woken(pair.reader.notifier, alice.user_id, [], pair.deliver)
    after = (await reader.compiled_for_users([alice.user_id]))[alice.user_id]
    assert after is not before
    assert any(r["rule_id"] == "cake" for r in await reader.rules_of_kind(alice.user_id, "content"))
    with pytest.raises(MatrixError) as caught:
        await reader.set_rule(alice.user_id, "content", "pie", rule)
    _refused(caught.value, "push_rules")
    with pytest.raises(MatrixError):
        await reader.delete_rule(alice.user_id, "content", "cake")


# -- presence -------------------------------------------------------------------------


async def test_presence_on_the_writer_shows_on_the_reader(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room(hs)
    pair = await _pair(hs)
    writer, reader = pair.writer.presence, pair.reader.presence
    since = reader.current_position()
    await writer.set_state(alice.user_id, "online", "baking")
    assert writer.current_position() == since + 1
    await _woken(pair.reader.notifier, bob.user_id, [room_id], pair.deliver)
    upto = reader.current_position()
    assert upto == since + 1
    assert reader.has_updates(bob.user_id, [room_id], since)
    events = await reader.presence_for_sync(bob.user_id, [room_id], since, upto)
    [event] = [e for e in events if e["sender"] == alice.user_id]
    assert event["content"]["presence"] == "online"
    assert event["content"]["status_msg"] == "baking"
    # what the writer published is in the table too: a resync reads it from there
    await pair.mirror.resync()
    assert (await reader.get(alice.user_id)).status_msg == "baking"
    assert (await reader.get(alice.user_id)).state == "online"


async def test_presence_positions_wait_for_the_batch(hs: HomeserverHarness) -> None:
    """A change that others read is finished only once persisted and published."""
    alice, _bob, _room_id = await _room(hs)
    pair = await _pair(hs)
    writer = pair.writer.presence
    start = writer.current_position()
    await writer.bump_active(alice.user_id)
    assert writer.current_position() == start  # held until the batch is written
    await writer.flush()
    assert writer.current_position() == start + 1
    [raw] = pair.wire.sent
    notice = decode_notice(raw)
    assert getattr(notice, "position", None) == start + 1
    stored = await hs.server.stores.presence.get_presence([alice.user_id])
    assert stored[alice.user_id].state == "online"


async def test_presence_writes_on_the_reader_are_refused(hs: HomeserverHarness) -> None:
    alice, _bob, _room_id = await _room(hs)
    pair = await _pair(hs)
    with pytest.raises(MatrixError) as caught:
        await pair.reader.presence.set_state(alice.user_id, "online", None)
    _refused(caught.value, "presence")
    with pytest.raises(MatrixError):
        await pair.reader.presence.receive_remote("@c:remote.example", "online", None, 0, True)
    # activity without a forwarder is dropped, never written here
    await pair.reader.presence.sync_started(alice.user_id, "online")
    pair.reader.presence.sync_ended(alice.user_id, "online")
    await pair.reader.presence.bump_active(alice.user_id)
    await pair.reader.presence.tick()
    await pair.reader.presence.flush()
    assert pair.wire.sent == pair.reader_wire.sent == []


# -- presence activity from a reader ---------------------------------------------------


class DirectClient:
    """A ReplicationClient stand-in that calls the writer's service directly."""

    def __init__(self, presence: PresenceService, gate: asyncio.Event | None = None) -> None:
        self.presence = presence
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.gate = gate

    async def call(self, instance: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((instance, path, dict(body)))
        if self.gate is not None:
            await self.gate.wait()
        assert path == PRESENCE_ACTIVITY_PATH
        await self.presence.remote_activity(
            body["instance"],
            body["user_id"],
            body["set_presence"],
            body["active"],
            reset=body["reset"],
        )
        return {}


async def test_sync_activity_is_forwarded_coalesced(hs: HomeserverHarness) -> None:
    alice, _bob, _room_id = await _room(hs)
    pair = await _pair(hs)
    gate = asyncio.Event()
    client = DirectClient(pair.writer.presence, gate)
    clock = hs.clock
    assert isinstance(clock, FakeClock)
    forwarder = PresenceActivityForwarder(client, READER, WRITER, clock)
    pair.reader.presence.activity_forwarder = forwarder
    try:
        # the sync is not delayed by the writer (the call waits on the gate)
        await asyncio.wait_for(pair.reader.presence.sync_started(alice.user_id, "online"), 1)
        pair.reader.presence.sync_ended(alice.user_id, "online")
        await pair.reader.presence.sync_started(alice.user_id, "online")
        await pair.reader.presence.bump_active(alice.user_id)
        assert forwarder.in_flight() == 1
        assert len(client.calls) == 1
        gate.set()
        await forwarder.wait_idle()
        # the first call, then the activity that came while it was in flight
        assert [c[2]["active"] for c in client.calls] == [False, True]
        assert client.calls[0][2]["reset"] is True
        assert client.calls[1][2]["reset"] is False
        state = await pair.writer.presence.get(alice.user_id)
        assert state.state == "online"
        # back-to-back syncs cost nothing; a stop is told after the linger
        pair.reader.presence.sync_ended(alice.user_id, "online")
        await pair.reader.presence.sync_started(alice.user_id, "online")
        pair.reader.presence.sync_ended(alice.user_id, "online")
        await pair.reader.presence.tick()
        await forwarder.wait_idle()
        assert len(client.calls) == 2
        clock.advance(SYNC_STOP_LINGER_MS / 1000 + 1)
        await pair.reader.presence.tick()
        await forwarder.wait_idle()
        assert len(client.calls) == 3
        assert client.calls[2][2]["set_presence"] is None
        # the writer no longer counts a sync running: its offline timeout applies
        clock.advance(600)
        await pair.writer.presence.tick()
        assert (await pair.writer.presence.get(alice.user_id)).state == "offline"
    finally:
        await forwarder.stop()


async def test_a_restarted_reader_ends_its_earlier_syncs(hs: HomeserverHarness) -> None:
    alice, _bob, _room_id = await _room(hs)
    pair = await _pair(hs)
    writer = pair.writer.presence
    await writer.remote_activity(READER, alice.user_id, "online", False)
    assert (await writer.get(alice.user_id)).state == "online"
    await writer.remote_activity(READER, "@other:test.local", "online", False, reset=True)
    hs.clock.advance(600)
    await writer.tick()
    assert (await writer.get(alice.user_id)).state == "offline"
    assert (await writer.get("@other:test.local")).state != "offline"


# -- the endpoints --------------------------------------------------------------------


@pytest.fixture
async def endpoint_client(hs: HomeserverHarness) -> AsyncIterator[TestClient[Any, Any]]:
    transactions = hs.server.federation_events
    assert transactions is not None
    assert hs.server.ephemeral is not None
    endpoints = EphemeralEndpoints(
        SECRET, transactions.transactions, _presence(hs), hs.server.ephemeral.account_data
    )
    app = web.Application(middlewares=make_middlewares(1 << 20))
    for method, path, handler in endpoints.routes():
        app.router.add_route(method, path, handler)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


def _presence(hs: HomeserverHarness) -> PresenceService:
    assert hs.server.ephemeral is not None
    return hs.server.ephemeral.presence


def _auth(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


EDU_URL = f"/_synapse/replication/{FEDERATION_EDU_PATH}"
ACTIVITY_URL = f"/_synapse/replication/{PRESENCE_ACTIVITY_PATH}"
ACCOUNT_DATA_URL = f"/_synapse/replication/{ACCOUNT_DATA_PATH}"
ROOM_TAG_URL = f"/_synapse/replication/{ROOM_TAG_PATH}"
URLS = [EDU_URL, ACTIVITY_URL, ACCOUNT_DATA_URL, ROOM_TAG_URL]


async def test_federation_edu_reaches_the_writers_handler(
    hs: HomeserverHarness, endpoint_client: TestClient[Any, Any]
) -> None:
    carol = "@carol:remote.example"
    edu = {"push": [{"user_id": carol, "presence": "online", "currently_active": True}]}
    body = {"origin": "remote.example", "edu_type": "m.presence", "content": edu}
    response = await endpoint_client.post(EDU_URL, json=body, headers=_auth())
    assert response.status == 200, await response.text()
    assert await response.json() == {}
    presence = _presence(hs)
    assert (await presence.get(carol)).state == "online"
    # what the origin may not speak for is dropped as in a transaction
    dave = "@dave:elsewhere.example"
    edu = {"push": [{"user_id": dave, "presence": "online"}]}
    body = {"origin": "remote.example", "edu_type": "m.presence", "content": edu}
    response = await endpoint_client.post(EDU_URL, json=body, headers=_auth())
    assert response.status == 200
    assert (await presence.get(dave)).state == "offline"


async def test_federation_edu_of_unknown_type_is_ignored(
    endpoint_client: TestClient[Any, Any],
) -> None:
    body = {"origin": "remote.example", "edu_type": "org.example.nothing", "content": {"a": 1}}
    response = await endpoint_client.post(EDU_URL, json=body, headers=_auth())
    assert response.status == 200
    assert await response.json() == {}


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("headers", [{}, _auth("wrong"), {"Authorization": SECRET}])
async def test_a_bad_secret_is_forbidden(
    endpoint_client: TestClient[Any, Any], url: str, headers: dict[str, str]
) -> None:
    response = await endpoint_client.post(url, json={}, headers=headers)
    assert response.status == 403
    assert (await response.json())["errcode"] == "M_FORBIDDEN"


@pytest.mark.parametrize("url", URLS)
async def test_bad_json_is_refused(endpoint_client: TestClient[Any, Any], url: str) -> None:
    response = await endpoint_client.post(url, data=b"{not json", headers=_auth())
    assert response.status == 400
    assert (await response.json())["errcode"] == "M_NOT_JSON"
    response = await endpoint_client.post(url, json=[1, 2], headers=_auth())
    assert response.status == 400
    assert (await response.json())["errcode"] == "M_BAD_JSON"


@pytest.mark.parametrize(
    "body",
    [
        {"edu_type": "m.typing", "content": {}},
        {"origin": "r.example", "content": {}},
        {"origin": 3, "edu_type": "m.typing", "content": {}},
        {"origin": "r.example", "edu_type": "m.typing"},
        {"origin": "r.example", "edu_type": "m.typing", "content": [1]},
    ],
)
async def test_bad_federation_edu_bodies(
    endpoint_client: TestClient[Any, Any], body: dict[str, Any]
) -> None:
    response = await endpoint_client.post(EDU_URL, json=body, headers=_auth())
    assert response.status == 400
    assert (await response.json())["errcode"] == "M_BAD_JSON"


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "@a:test.local", "set_presence": "online"},
        {"instance": READER, "set_presence": "online"},
        {"instance": READER, "user_id": "@a:test.local", "set_presence": 1},
        {"instance": READER, "user_id": "@a:test.local", "active": "yes"},
        {"instance": READER, "user_id": "@a:test.local", "reset": 1},
    ],
)
async def test_bad_presence_activity_bodies(
    endpoint_client: TestClient[Any, Any], body: dict[str, Any]
) -> None:
    response = await endpoint_client.post(ACTIVITY_URL, json=body, headers=_auth())
    assert response.status == 400
    assert (await response.json())["errcode"] == "M_BAD_JSON"


async def test_presence_activity_endpoint(
    hs: HomeserverHarness, endpoint_client: TestClient[Any, Any]
) -> None:
    alice = await make_user(hs, "alice")
    body = {"instance": READER, "user_id": alice.user_id, "set_presence": "online"}
    response = await endpoint_client.post(ACTIVITY_URL, json=body, headers=_auth())
    assert response.status == 200, await response.text()
    presence = _presence(hs)
    assert (await presence.get(alice.user_id)).state == "online"


# -- inbound EDUs on a process that does not write their stream --------------------------


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def call(self, instance: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((instance, path, dict(body)))
        return {}


async def test_inbound_edus_of_other_writers_streams_are_forwarded(
    hs: HomeserverHarness,
) -> None:
    events = hs.server.federation_events
    assert events is not None
    transactions: TransactionHandler = events.transactions
    client = RecordingClient()
    writers = {"presence": "presence1", "typing": "master"}
    transactions.edu_forwarder = FederationEduForwarder(
        client,
        "master",
        lambda stream: writers.get(stream, "master"),
    )
    carol = "@carol:remote.example"
    edus = [
        {"edu_type": "m.presence", "content": {"push": [{"user_id": carol, "presence": "online"}]}},
        # not the origin's user: dropped here, before any forwarding
        {
            "edu_type": "m.presence",
            "content": {"push": [{"user_id": "@d:x.example", "presence": "online"}]},
        },
        {"edu_type": "org.example.unknown", "content": {}},
    ]
    answer = await transactions.process_transaction("remote.example", "txn1", [], edus)
    assert answer == {"pdus": {}}
    assert client.calls == [
        (
            "presence1",
            FEDERATION_EDU_PATH,
            {
                "origin": "remote.example",
                "edu_type": "m.presence",
                "content": {"push": [{"user_id": carol, "presence": "online"}]},
            },
        )
    ]
    presence = _presence(hs)
    assert (await presence.get(carol)).state == "offline"  # not handled here


# -- the builders ---------------------------------------------------------------------


async def test_the_builders_make_writers_and_readers(hs: HomeserverHarness) -> None:
    """``replication`` given to the builders: each stream is written where its
    writer is, read elsewhere."""
    alice, _bob, room_id = await _room(hs)
    wire = Wire()
    positions = Positions(0)

    def streams(stream: str, seed: int) -> StreamIdGenerator | Positions:
        return StreamIdGenerator(seed) if stream == "typing" else positions

    replication = EphemeralReplication(
        instance_name=WRITER,
        writer_of=lambda stream: WRITER if stream == "typing" else "elsewhere",
        publisher=wire,
        streams=streams,
    )
    persister = cast(EventPersister, SimpleNamespace(persisted_hooks=[]))
    services = await EphemeralServices.build(
        hs.server.config,
        hs.server.stores,
        Notifier(),
        persister,
        hs.clock,
        replication=replication,
    )
    await services.typing.set_typing(alice.user_id, room_id, True, 1000)
    [raw] = wire.sent
    notice = decode_notice(raw)
    assert isinstance(notice, RoomsStreamNotice)
    assert (notice.stream, notice.rooms, notice.data) == (
        "typing",
        (room_id,),
        {room_id: [alice.user_id]},
    )
    with pytest.raises(MatrixError) as caught:
        await services.account_data.set_by_client(alice.user_id, None, "a.b", {})
    assert caught.value.message == "account_data is written by elsewhere"
    e2ee = await E2ee.build(
        "test.local",
        hs.server.stores,
        Notifier(),
        hs.server.client.sessions,
        hs.clock,
        replication=replication,
    )
    with pytest.raises(MatrixError):
        await e2ee.device_lists.record_change(alice.user_id, [])
    assert services.mirror(e2ee.device_lists).device_lists is e2ee.device_lists


# -- account data written on a process that does not write it ---------------------------


class HttpCaller:
    """A ReplicationClient stand-in that posts to the test server of the endpoints."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def call(self, instance: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = await self.client.post(
            f"/_synapse/replication/{path}", json=dict(body), headers=_auth()
        )
        answer = await response.json()
        if response.status != 200:
            raise MatrixError(response.status, answer["errcode"], answer["error"])
        return dict(answer)


async def test_account_data_writes_are_forwarded_to_the_writer(
    hs: HomeserverHarness, endpoint_client: TestClient[Any, Any]
) -> None:
    alice, _bob, room_id = await _room(hs)
    pair = await _pair(hs)
    reader = pair.reader.account_data
    reader.forwarder = AccountDataForwarder(HttpCaller(endpoint_client), WRITER)
    assert hs.server.ephemeral is not None
    writer = hs.server.ephemeral.account_data
    before = writer.current_position()
    position = await reader.put(alice.user_id, room_id, "m.fully_read", {"event_id": "$e"})
    assert position == before + 1 == writer.current_position()
    assert await writer.get(alice.user_id, room_id, "m.fully_read") == {"event_id": "$e"}
    await reader.set_tag(alice.user_id, room_id, "u.work", {"order": 0.5})
    assert await writer.get_tags(alice.user_id, room_id) == {"u.work": {"order": 0.5}}
    await reader.remove_tag(alice.user_id, room_id, "u.work")
    assert await writer.get_tags(alice.user_id, room_id) == {}
    # checked before it leaves
    with pytest.raises(MatrixError):
        await reader.set_tag(alice.user_id, room_id, "u.x", {"order": "high"})
    # what cannot be sent is still refused
    with pytest.raises(MatrixError) as caught:
        await reader.update(alice.user_id, None, "m.direct", lambda current: current)
    _refused(caught.value, "account_data")


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (ACCOUNT_DATA_URL, {"room_id": None, "data_type": "a.b", "content": {}}),
        (ACCOUNT_DATA_URL, {"user_id": "@a:test.local", "content": {}}),
        (ACCOUNT_DATA_URL, {"user_id": "@a:test.local", "data_type": "a.b", "content": 1}),
        (
            ACCOUNT_DATA_URL,
            {"user_id": "@a:test.local", "room_id": 1, "data_type": "a.b", "content": {}},
        ),
        (ROOM_TAG_URL, {"room_id": "!r:test.local", "tag": "u.a", "info": {}}),
        (ROOM_TAG_URL, {"user_id": "@a:test.local", "tag": "u.a", "info": {}}),
        (ROOM_TAG_URL, {"user_id": "@a:test.local", "room_id": "!r:test.local", "info": {}}),
        (
            ROOM_TAG_URL,
            {"user_id": "@a:test.local", "room_id": "!r:test.local", "tag": "u.a", "info": 1},
        ),
    ],
)
async def test_bad_account_data_bodies(
    endpoint_client: TestClient[Any, Any], url: str, body: dict[str, Any]
) -> None:
    response = await endpoint_client.post(url, json=body, headers=_auth())
    assert response.status == 400
    assert (await response.json())["errcode"] == "M_BAD_JSON"


# -- what feeds the application services ------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    async def on_typing(self, user_id: str, room_id: str, typing: bool) -> None:
        self.seen.append(("typing", user_id, room_id, typing))

    async def on_receipt(
        self, user_id: str, room_id: str, event_id: str, thread_id: str | None
    ) -> None:
        self.seen.append(("receipt", user_id, room_id, event_id, thread_id))

    def on_presence(self, user_id: str) -> None:
        self.seen.append(("presence", user_id))

    def on_to_device(self, user_ids: set[str]) -> None:
        self.seen.append(("to_device", sorted(user_ids)))

    async def on_device_list_change(
        self, user_id: str, device_ids: list[str], position: int
    ) -> None:
        self.seen.append(("device_lists", user_id))


async def test_the_mirror_tells_its_sinks(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room(hs)
    pair = await _pair(hs)
    sink = RecordingSink()
    pair.mirror.sinks.append(sink)
    event_id = await alice.send(room_id, "hi")
    await pair.writer.typing.set_typing(alice.user_id, room_id, True, 10_000)
    await pair.writer.receipts.send_receipt(bob.user_id, room_id, "m.read", event_id)
    await pair.writer.presence.set_state(alice.user_id, "online", "sinking")
    await pair.writer.to_device.send(
        alice.user_id, alice.device_id, "m.x", "t1", {bob.user_id: {"*": {"a": 1}}}
    )
    await pair.writer.device_lists.record_change(alice.user_id, [alice.device_id])
    pair.deliver()
    await pair.mirror.wait_sinks()
    await pair.reader.device_lists.wait_replica()
    assert sorted(sink.seen, key=repr) == sorted(
        [
            ("typing", alice.user_id, room_id, True),
            ("receipt", bob.user_id, room_id, event_id, None),
            ("presence", alice.user_id),
            ("to_device", [bob.user_id]),
            ("device_lists", alice.user_id),
        ],
        key=repr,
    )
    await pair.mirror.stop()


class FailingClient:
    async def call(self, instance: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        raise MatrixError(503, "M_UNKNOWN", f"{instance} is unavailable, try again")


async def test_an_unreachable_writer_loses_the_edu_not_the_transaction(
    hs: HomeserverHarness,
) -> None:
    events = hs.server.federation_events
    assert events is not None
    transactions = events.transactions
    transactions.edu_forwarder = FederationEduForwarder(
        FailingClient(), "master", lambda stream: "presence1"
    )
    edu = {"push": [{"user_id": "@carol:remote.example", "presence": "online"}]}
    answer = await transactions.process_transaction(
        "remote.example", "txn2", [], [{"edu_type": "m.presence", "content": edu}]
    )
    assert answer == {"pdus": {}}


# -- the wiring -----------------------------------------------------------------------


class FakeReceiver:
    def __init__(self) -> None:
        self.handlers: dict[str, list[Callable[..., Any]]] = {}

    def _add(self, kind: str, handler: Callable[..., Any]) -> None:
        self.handlers.setdefault(kind, []).append(handler)

    def on_room_event(self, handler: Callable[[RoomEventNotice], None]) -> None:
        self._add("room_event", handler)

    def on_user_stream(self, handler: Callable[..., None]) -> None:
        self._add("user_stream", handler)

    def on_rooms_stream(self, handler: Callable[..., None]) -> None:
        self._add("rooms_stream", handler)

    def on_resync(self, handler: Callable[..., Any]) -> None:
        self._add("resync", handler)


async def test_the_wiring_forwards_what_this_process_does_not_write(
    hs: HomeserverHarness,
) -> None:
    alice = await make_user(hs, "alice")
    assert hs.server.ephemeral is not None and hs.server.federation_events is not None
    ephemeral = hs.server.ephemeral
    transactions = hs.server.federation_events.transactions
    client = RecordingClient()
    writers = {"presence": "presence1", "account_data": "account1"}
    streams = EphemeralReplication(
        instance_name="sync1",
        writer_of=lambda stream: writers.get(stream, "master"),
        publisher=Wire(),
        streams=lambda stream, seed: Positions(seed),
    )
    wiring = EphemeralWiring.build(
        streams,
        client,
        SECRET,
        ephemeral,
        hs.server.client.e2ee.device_lists,
        hs.server.client.push.rules,
        transactions,
        hs.clock,
    )
    try:
        forwarder = transactions.edu_forwarder
        assert isinstance(forwarder, FederationEduForwarder)
        assert forwarder.writer("m.presence") == "presence1"
        assert forwarder.writer("m.typing") == "master"
        assert ephemeral.presence.activity_forwarder is wiring.presence_forwarder
        assert ephemeral.account_data.forwarder is not None
        paths = {path for _method, path, _handler in wiring.endpoints.routes()}
        assert "/_synapse/replication/federation_edu" in paths
        receiver = FakeReceiver()
        wiring.subscribe(receiver)
        assert sorted(receiver.handlers) == ["resync", "room_event", "rooms_stream", "user_stream"]
        # (hs's own services write here: the forwarders only hold what was installed)
        assert wiring.presence_forwarder is not None
        wiring.presence_forwarder.active(alice.user_id)
        await wiring.presence_forwarder.wait_idle()
        assert client.calls[-1][0:2] == ("presence1", PRESENCE_ACTIVITY_PATH)
    finally:
        await wiring.stop()
        transactions.edu_forwarder = None
