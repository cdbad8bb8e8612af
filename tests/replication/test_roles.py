"""Which process runs which background work (issue 17, "Roles"), and how work
produced on one process reaches the process that runs it.

Two real ``Homeserver``s share one migrated PostgreSQL schema, as processes "A" and
"B" of one homeserver (tests/replication/two_processes.py). Both are built with the default (single-process) options,
so that no Redis is needed, and given their roles explicitly: ``ProcessRoles`` of a
deployment in which B sends federation, runs the pushers and the background tasks,
and A does none of it. An in-memory bus stands for Redis: it carries what each
server publishes (through the wire form) to the other's cache invalidator and role
notices when the test says so. A remote server is a recorder of the transactions
it is sent; a push gateway is a real one on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from federation.errors import FederationError
from federation.sender import FederationSender
from homeserver.clock import FakeClock
from homeserver.config.workers import WorkerConfig
from homeserver.events import Event
from homeserver.replication.notices import (
    CacheNotice,
    FederationQueued,
    Notice,
    PushersWake,
    RemoteServerUp,
    RoomEventNotice,
    decode_notice,
    encode_notice,
)
from homeserver.replication.roles import FederationShard, ProcessRoles, RoleNotices
from homeserver.rooms.expiry import SELF_DESTRUCT_AFTER
from homeserver.server import Homeserver
from tests.conftest import HomeserverHarness
from tests.pg_schemas import PgSchemaPool
from tests.push.support import Gateway, eventually, pusher_body
from tests.replication.two_processes import MemoryBus, TwoProcesses, two_processes

# B does the background work of the deployment; A serves clients and writes events
DEPLOYMENT = WorkerConfig(
    instance_name="A",
    federation_sender_instances=("B",),
    pusher_instances=("B",),
    run_background_tasks_on="B",
    media_instance_running_background_jobs="B",
    notify_appservices_from_worker="B",
    update_user_directory_from_worker="B",
)


class Remote:
    """The remote servers: records each transaction sent to them, per process."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []  # (process, destination, body)
        self.down = False
        self.hold: asyncio.Event | None = None  # set: sends wait on it (a send in flight)
        self.attempts = 0

    def transport(self, process: str) -> Any:
        async def put_json(destination: str, path: str, body: Any, *a: Any, **kw: Any) -> Any:
            self.attempts += 1
            if self.hold is not None:
                await self.hold.wait()
            if self.down:
                raise FederationError(destination, "connection refused")
            self.sent.append((process, destination, body))
            return {"pdus": {}}

        return put_json

    def pdus_to(self, destination: str) -> list[tuple[str, str]]:
        """(process, event ID) of every PDU sent to ``destination``."""
        return [
            (process, pdu_id(pdu))
            for process, dest, body in self.sent
            if dest == destination
            for pdu in body["pdus"]
        ]


def pdu_id(pdu: Any) -> str:
    """What tells PDUs apart here (their content hash)."""
    return str(pdu["hashes"]["sha256"])


@dataclasses.dataclass
class Deployment(TwoProcesses):
    remote: Remote

    def sender(self, harness: HomeserverHarness) -> FederationSender:
        assert harness.server.federation_events is not None
        return harness.server.federation_events.sender


@pytest.fixture
async def deployment(pg_schemas: PgSchemaPool, tmp_path: Path) -> AsyncIterator[Deployment]:
    remote = Remote()

    def roles(instance: str) -> ProcessRoles:
        return ProcessRoles.from_config(DEPLOYMENT, instance)

    def prepare(instance: str, server: Homeserver, _bus: MemoryBus) -> None:
        server.federation.client.put_json = remote.transport(instance)  # type: ignore[method-assign]

    async with two_processes(pg_schemas, tmp_path, roles=roles, prepare=prepare) as both:
        yield Deployment(both.a, both.b, both.bus, remote)


async def some_event(deployment: Deployment) -> Event:
    """A local event to queue for remote servers (a room's create event)."""
    alice_a, _ = await deployment.user(f"alice{len(deployment.bus.published)}")
    room_id = await alice_a.create_room(preset="public_chat")
    stores = deployment.a.server.stores
    state = await stores.state.get_current_state(room_id)
    create = await stores.events.get_event(state[("m.room.create", "")])
    assert create is not None
    return create.event


async def queued_while_remote_is_down(deployment: Deployment) -> Event:
    """An event A queued for remote.example while it is down: B (its sender) tried,
    failed and backs off; the remote is up again (nobody has told B yet)."""
    event = await some_event(deployment)
    deployment.remote.down = True
    await deployment.sender(deployment.a).send_pdu(event, ["remote.example"])
    await deployment.bus.deliver()
    await deployment.sender(deployment.b).wait_idle()
    assert deployment.sender(deployment.b).in_backoff("remote.example")
    deployment.remote.down = False
    return event


def destinations_of(worker: WorkerConfig, owner: str, count: int) -> list[str]:
    """``count`` remote server names whose sender is ``owner``."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        name = f"remote{n}.example"
        if worker.federation_sender_for(name) == owner:
            found.append(name)
        n += 1
    return found


# -- the roles as the options give them ------------------------------------------------


def test_a_single_process_holds_every_role() -> None:
    roles = ProcessRoles.from_config(WorkerConfig())
    assert roles.instance == "master"
    assert roles.sends_federation and roles.sends_to("anywhere.example")
    assert roles.runs_pushers and roles.pushes_for("@alice:test.local")
    assert roles.runs_background_tasks and roles.runs_media_background_jobs
    assert roles.notifies_appservices and roles.updates_user_directory
    assert roles.writes_events


def test_roles_follow_the_worker_options() -> None:
    a, b = (ProcessRoles.from_config(DEPLOYMENT, name) for name in ("A", "B"))
    assert ProcessRoles.from_config(DEPLOYMENT).instance == "A"  # the options' own name
    assert not (a.sends_federation or a.runs_pushers or a.runs_background_tasks)
    assert not (a.runs_media_background_jobs or a.notifies_appservices)
    assert not a.updates_user_directory and not a.sends_to("remote.example")
    assert b.sends_federation and b.sends_to("remote.example")
    assert b.runs_pushers and b.pushes_for("@alice:test.local")
    assert b.runs_background_tasks and b.runs_media_background_jobs
    assert b.notifies_appservices and b.updates_user_directory
    # the main process keeps the duties nobody moved; nobody writes events but master
    master = ProcessRoles.from_config(WorkerConfig(pusher_instances=("B",)), "master")
    assert master.runs_background_tasks and master.notifies_appservices
    assert not master.runs_pushers and master.writes_events and not b.writes_events


def test_destinations_and_users_are_sharded_over_the_instances() -> None:
    worker = dataclasses.replace(
        DEPLOYMENT, federation_sender_instances=("A", "B"), pusher_instances=("A", "B")
    )
    a, b = (ProcessRoles.from_config(worker, name) for name in ("A", "B"))
    names = [f"remote{n}.example" for n in range(40)]
    assert all(a.sends_to(d) != b.sends_to(d) for d in names)
    assert {a.sends_to(d) for d in names} == {True, False}
    users = [f"@u{n}:test.local" for n in range(40)]
    assert all(a.pushes_for(u) != b.pushes_for(u) for u in users)
    assert {a.pushes_for(u) for u in users} == {True, False}


def test_role_notices_round_trip_and_bad_ones_are_refused() -> None:
    notices: list[Notice] = [
        FederationQueued("A", ("x.example", "y.example")),
        RemoteServerUp("A", ("x.example",)),
        PushersWake("A", notified=("@a:t",), read=()),
        PushersWake("A", read=("@a:t", "@b:t")),
    ]
    for notice in notices:
        assert decode_notice(encode_notice(notice)) == notice
    for bad in (
        b'{"k": "fedq", "instance": "A"}',
        b'{"k": "fedq", "instance": "A", "destinations": ["x"], "extra": 1}',
        b'{"k": "push", "notified": []}',
        b'{"k": "fedup", "instance": "A", "destinations": 3}',
    ):
        with pytest.raises(ValueError):
            decode_notice(bad)


# -- federation sending -------------------------------------------------------------------


async def test_a_pdu_queued_on_another_process_is_sent_by_the_sender(
    deployment: Deployment,
) -> None:
    event = await some_event(deployment)
    await deployment.sender(deployment.a).send_pdu(event, ["remote.example"])
    await deployment.sender(deployment.a).wait_idle()
    assert deployment.remote.sent == []  # A never sends
    assert deployment.bus.kinds(FederationQueued) == [FederationQueued("A", ("remote.example",))]
    await deployment.bus.deliver()
    await deployment.sender(deployment.b).wait_idle()
    assert deployment.remote.pdus_to("remote.example") == [("B", pdu_id(event.pdu))]
    queue = deployment.b.server.stores.federation_queue
    assert await queue.destinations_with_queue() == []


async def test_an_edu_queued_on_another_process_is_sent_by_the_sender(
    deployment: Deployment,
) -> None:
    sender_a = deployment.sender(deployment.a)
    await sender_a.send_edu("remote.example", "m.test", {"n": 1})
    await deployment.bus.deliver()
    await deployment.sender(deployment.b).wait_idle()
    [(process, destination, body)] = deployment.remote.sent
    assert (process, destination) == ("B", "remote.example")
    assert body["edus"] == [{"edu_type": "m.test", "content": {"n": 1}}]


async def test_each_sender_drains_only_the_destinations_of_its_shard(
    deployment: Deployment,
) -> None:
    await deployment.sender(deployment.b).stop()  # (B's own sender sends to everyone)
    worker = dataclasses.replace(DEPLOYMENT, federation_sender_instances=("A", "B"))
    senders = {
        name: FederationSender(
            "test.local",
            harness.server.stores,
            _Transport(deployment.remote, name),
            harness.clock,
        )
        for name, harness in (("A", deployment.a), ("B", deployment.b))
    }
    for name, sender in senders.items():
        sender.shard = FederationShard(
            ProcessRoles.from_config(worker, name), deployment.bus.publisher(name), FakeClock()
        )
    of_a = destinations_of(worker, "A", 2)
    of_b = destinations_of(worker, "B", 2)
    event = await some_event(deployment)
    published = len(deployment.bus.published)
    await senders["A"].send_pdu(event, [*of_a, *of_b])
    await senders["A"].wait_idle()
    assert sorted({d for _, d, _ in deployment.remote.sent}) == sorted(of_a)
    assert deployment.bus.published[published:] == [FederationQueued("A", tuple(sorted(of_b)))]
    # both queue while neither is running; each (re)starting resumes its own queues
    queue = deployment.a.server.stores.federation_queue
    later = await some_event(deployment)
    await queue.queue_pdu([*of_a, *of_b], later.event_id, later.room_id, None, 0)
    await senders["B"].start(ticker=False)
    await senders["B"].wait_idle()
    assert await queue.destinations_with_queue() == sorted(of_a)
    await senders["A"].start(ticker=False)
    await senders["A"].wait_idle()
    assert await queue.destinations_with_queue() == []
    for destination in of_a:
        assert deployment.remote.pdus_to(destination) == [
            ("A", pdu_id(event.pdu)),
            ("A", pdu_id(later.pdu)),
        ]
    for destination in of_b:
        assert deployment.remote.pdus_to(destination) == [
            ("B", pdu_id(event.pdu)),
            ("B", pdu_id(later.pdu)),
        ]
    for sender in senders.values():
        await sender.stop()


class _Transport:
    def __init__(self, remote: Remote, process: str) -> None:
        self.put_json = remote.transport(process)


async def test_a_restarted_sender_resumes_its_queue(deployment: Deployment) -> None:
    event = await some_event(deployment)
    sender_b = deployment.sender(deployment.b)
    await sender_b.stop()  # B is down while A queues; the notice is lost
    await deployment.sender(deployment.a).send_pdu(event, ["remote.example"])
    deployment.bus.pending.clear()
    queue = deployment.b.server.stores.federation_queue
    assert await queue.destinations_with_queue() == ["remote.example"]
    # B starts again, as after a crash: its queues come back from the database
    await sender_b.start(ticker=False)
    await sender_b.wait_idle()
    assert deployment.remote.pdus_to("remote.example") == [("B", pdu_id(event.pdu))]
    assert await queue.destinations_with_queue() == []


async def test_a_sender_killed_mid_send_loses_no_transaction(deployment: Deployment) -> None:
    event = await some_event(deployment)
    remote = deployment.remote
    remote.hold = asyncio.Event()  # the remote never answers: the send is in flight
    await deployment.sender(deployment.a).send_pdu(event, ["remote.example"])
    await deployment.bus.deliver()
    sender_b = deployment.sender(deployment.b)
    await eventually(lambda: remote.attempts == 1)
    await sender_b.stop()  # killed mid-send: the rows stay queued
    queue = deployment.b.server.stores.federation_queue
    assert await queue.destinations_with_queue() == ["remote.example"]
    assert remote.sent == []
    remote.hold = None
    fresh = FederationSender(
        "test.local", deployment.b.server.stores, _Transport(remote, "B"), deployment.b.clock
    )
    fresh.shard = FederationShard(
        ProcessRoles.from_config(DEPLOYMENT, "B"), deployment.bus.publisher("B"), FakeClock()
    )
    await fresh.start(ticker=False)
    await fresh.wait_idle()
    assert remote.pdus_to("remote.example") == [("B", pdu_id(event.pdu))]
    assert await queue.destinations_with_queue() == []


async def test_inbound_traffic_on_another_process_ends_the_senders_backoff(
    deployment: Deployment,
) -> None:
    event = await queued_while_remote_is_down(deployment)
    remote, sender_b = deployment.remote, deployment.sender(deployment.b)
    # the remote talks to A (federation inbound): B hears of it and sends at once
    sender_a = deployment.sender(deployment.a)
    sender_a.on_remote_activity("remote.example")
    sender_a.on_remote_activity("remote.example")  # told once per interval
    assert deployment.bus.kinds(RemoteServerUp) == [RemoteServerUp("A", ("remote.example",))]
    await deployment.bus.deliver()
    await sender_b.wait_idle()
    assert remote.pdus_to("remote.example") == [("B", pdu_id(event.pdu))]
    health = await deployment.b.server.stores.federation_queue.get_health("remote.example")
    assert health is not None and health.retry_interval == 0


async def test_an_admin_reset_on_another_process_reaches_the_sender(
    deployment: Deployment,
) -> None:
    event = await queued_while_remote_is_down(deployment)
    remote, sender_b = deployment.remote, deployment.sender(deployment.b)
    queue = deployment.a.server.stores.federation_queue
    await queue.clear_backoff("remote.example")
    deployment.sender(deployment.a).retry_now("remote.example")
    await deployment.bus.deliver()
    await sender_b.wait_idle()
    assert remote.pdus_to("remote.example") == [("B", pdu_id(event.pdu))]


# -- pushers ------------------------------------------------------------------------------


async def test_pushers_run_on_the_pusher_instance_woken_by_events_committed_elsewhere(
    deployment: Deployment, gateway: Gateway
) -> None:
    alice_a, _alice_b = await deployment.user("alice")
    bob_a, _bob_b = await deployment.user("bob")
    room_id = await alice_a.create_room(preset="public_chat")
    await bob_a.join(room_id)
    await alice_a.request("POST", "/pushers/set", pusher_body(gateway.url))
    pool_a = deployment.a.server.client.push.pushers
    pool_b = deployment.b.server.client.push.pushers
    key = (alice_a.user_id, "com.example.app.ios", "a-push-key")
    assert pool_a.pusher(*key) is None  # set on A, never run there
    await deployment.bus.deliver()
    assert pool_b.pusher(*key) is not None  # B loaded it
    event_id = await bob_a.send(room_id, "for alice's phone")  # committed on A
    wakes = deployment.bus.kinds(PushersWake)
    assert PushersWake("A", notified=(alice_a.user_id,)) in wakes
    await deployment.bus.deliver()
    await eventually(lambda: len(gateway.received) == 1)
    assert gateway.received[0]["notification"]["event_id"] == event_id
    assert pool_a.pusher(*key) is None
    # alice reads on A: B sends the new badge (nothing unread)
    await alice_a.request("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
    assert PushersWake("A", read=(alice_a.user_id,)) in deployment.bus.kinds(PushersWake)
    await deployment.bus.deliver()
    await eventually(lambda: len(gateway.received) == 2)
    assert gateway.received[1]["notification"]["counts"] == {"unread": 0}


async def test_a_pusher_instance_loads_only_the_pushers_of_its_users(
    deployment: Deployment, gateway: Gateway
) -> None:
    alice_a, _ = await deployment.user("alice")
    await alice_a.request("POST", "/pushers/set", pusher_body(gateway.url))
    key = (alice_a.user_id, "com.example.app.ios", "a-push-key")
    pool_a = deployment.a.server.client.push.pushers
    await pool_a.start()  # even started, A keeps none of B's users' pushers
    assert pool_a.pusher(*key) is None
    await pool_a.reload_user(alice_a.user_id)
    assert pool_a.pusher(*key) is None
    await pool_a.stop()


# -- background tasks ---------------------------------------------------------------------


async def test_periodic_jobs_run_only_on_the_background_instance(
    deployment: Deployment,
) -> None:
    a, b = deployment.a.server, deployment.b.server
    assert a.message_expiry is not None and a.push_action_pruner is not None
    background = {id(job) for job in (a.message_expiry, a.push_action_pruner)}
    assert background.isdisjoint(id(job) for job in a.periodic_jobs())
    assert a.ephemeral in a.periodic_jobs()  # every process (its streams decide)
    assert b.message_expiry in b.periodic_jobs() and b.push_action_pruner in b.periodic_jobs()
    assert b.ephemeral in b.periodic_jobs()


async def test_a_message_persisted_on_a_expires_on_the_background_instance(
    deployment: Deployment,
) -> None:
    alice_a, alice_b = await deployment.user("alice")
    room_id = await alice_a.create_room(preset="public_chat")
    expires = deployment.a.clock.time_ms() + 1_000
    content: dict[str, Any] = {SELF_DESTRUCT_AFTER: expires}
    event_id = await alice_a.send(room_id, "gone soon", **content)
    # only B's clock moves: what expires the message is B's ticker
    deployment.b.clock.advance(2)
    events = deployment.b.server.stores.events

    async def expired() -> bool:
        events.invalidate_event(event_id)
        stored = await events.get_event(event_id)
        return stored is not None and "body" not in stored.event.content

    deadline = asyncio.get_running_loop().time() + 10
    while not await expired():
        assert asyncio.get_running_loop().time() < deadline, "not expired on B"
        await asyncio.sleep(0.05)
    after = await alice_b.request("GET", f"/rooms/{room_id}/event/{event_id}")
    assert "body" not in after["content"]


# -- appservices --------------------------------------------------------------------------


class _Waker:
    def __init__(self) -> None:
        self.woken = 0

    def wake_all(self) -> None:
        self.woken += 1


def test_appservice_delivery_is_woken_by_events_of_other_processes() -> None:
    notice = RoomEventNotice("A", "!r:t", 5, "$e", "m.room.message", "@a:t", None)
    on_b, on_a = _Waker(), _Waker()
    RoleNotices(ProcessRoles.from_config(DEPLOYMENT, "B"), appservices=on_b).on_room_event(notice)
    RoleNotices(ProcessRoles.from_config(DEPLOYMENT, "A"), appservices=on_a).on_room_event(notice)
    assert (on_b.woken, on_a.woken) == (1, 0)


def test_role_notices_reach_only_the_roles_this_process_holds() -> None:
    class Sender:
        def __init__(self) -> None:
            self.woken: list[str] = []
            self.resumed: list[str] = []

        def wake(self, destinations: Any) -> None:
            self.woken += list(destinations)

        def resume(self, destination: str) -> None:
            self.resumed.append(destination)

    class Pushers:
        def __init__(self) -> None:
            self.notified: set[str] = set()
            self.read: set[str] = set()

        def on_notified(self, user_ids: set[str]) -> None:
            self.notified |= user_ids

        def on_read(self, user_ids: set[str]) -> None:
            self.read |= user_ids

    worker = dataclasses.replace(
        DEPLOYMENT, federation_sender_instances=("A", "B"), pusher_instances=("A", "B")
    )
    roles = ProcessRoles.from_config(worker, "B")
    sender, pushers = Sender(), Pushers()
    notices = RoleNotices(roles, sender=sender, pushers=pushers)
    names = [f"remote{n}.example" for n in range(10)]
    users = [f"@u{n}:test.local" for n in range(10)]
    for notice in (
        FederationQueued("A", tuple(names)),
        RemoteServerUp("A", tuple(names)),
        PushersWake("A", notified=tuple(users), read=tuple(users)),
        CacheNotice("A", "pushers", ("@u1:test.local",)),  # not a role notice: ignored
    ):
        notices.on_notice(notice)
    assert sender.woken == sender.resumed == [d for d in names if roles.sends_to(d)]
    assert pushers.notified == pushers.read == {u for u in users if roles.pushes_for(u)}
    # a process without the roles ignores them
    idle_sender, idle_pushers = Sender(), Pushers()
    idle = RoleNotices(
        ProcessRoles.from_config(DEPLOYMENT, "A"), sender=idle_sender, pushers=idle_pushers
    )
    idle.on_notice(FederationQueued("B", tuple(names)))
    idle.on_notice(PushersWake("B", notified=tuple(users)))
    assert idle_sender.woken == [] and idle_pushers.notified == set()
