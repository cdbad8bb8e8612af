"""After Redis comes back, every cache a missed notice could have made stale is
dropped (``CacheInvalidator.on_resync``), and every index that answers "nothing
changed" forgets (issue 17).

Each owner is tested on a real server (both engines): an entry is read twice (the
second read is served from the cache), ``on_resync`` runs, and the next read goes to
the database again. The end-to-end tests build two ``Homeserver``s on one PostgreSQL
(``test_invalidation.Pair``, two_processes.TwoProcesses) with B's notice delivery switched off while A writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest

from homeserver.notifier import Notifier
from homeserver.replication.invalidation import EVERYTHING, CacheInvalidator
from homeserver.replication.notices import CacheNotice
from homeserver.retention.service import RetentionPolicies
from homeserver.server import Homeserver
from storage.sync import EventPosition, RecentRoomEvents
from tests.conftest import HomeserverHarness
from tests.replication.test_invalidation import Pair, joined_members, pair, whoami_status
from tests.replication.test_invalidator_routing import Calls
from tests.rooms.helpers import User, make_user

__all__ = ["pair"]  # the fixture, shared with test_invalidation


class CountingDatabase:
    """A store's database, counting the reads that reach it."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._db, name)
        if not name.startswith("fetch"):
            return found

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return await found(*args, **kwargs)

        return counted


class CallCounter:
    def __init__(self) -> None:
        self.calls = 0


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> CallCounter:
    """Count the calls of ``owner.name`` (an async method)."""
    counter = CallCounter()
    method = getattr(owner, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        counter.calls += 1
        return await method(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return counter


def invalidator_of(server: Homeserver) -> CacheInvalidator:
    assert server.cache_invalidator is not None
    return server.cache_invalidator


async def read_cached_then_resync(
    server: Homeserver, read: Callable[[], Awaitable[Any]], reads: Callable[[], int]
) -> None:
    """Read twice (the second from the cache), resync, and see the next read reach
    the database."""
    await read()
    warm = reads()
    await read()
    assert reads() == warm, "the second read was not served from the cache"
    await invalidator_of(server).on_resync()
    await read()
    assert reads() > warm, "the read after on_resync did not reach the database"


@dataclasses.dataclass
class World:
    hs: HomeserverHarness
    alice: User
    bob: User
    room_id: str
    event_id: str


@pytest.fixture
async def world(make_homeserver: Callable[..., Awaitable[HomeserverHarness]]) -> World:
    hs = await make_homeserver(ip_range_whitelist=["127.0.0.0/8"])  # (pushers on loopback)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Room")
    await bob.join(room_id)
    event_id = await alice.send(room_id, "hello")
    return World(hs, alice, bob, room_id, event_id)


# -- the stores -------------------------------------------------------------------------


def counting_db(monkeypatch: pytest.MonkeyPatch, store: Any) -> CountingDatabase:
    counting = CountingDatabase(store.db)
    monkeypatch.setattr(store, "db", counting)
    return counting


async def test_current_state_is_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    state = world.hs.server.stores.state
    db = counting_db(monkeypatch, state)
    await read_cached_then_resync(
        world.hs.server, lambda: state.get_current_state(world.room_id), lambda: db.reads
    )


async def test_members_and_counts_are_read_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = world.hs.server.stores.state
    db = counting_db(monkeypatch, state)

    async def read() -> None:
        assert world.bob.user_id in await state.current_members(world.room_id)
        assert await state.member_counts([world.room_id]) == {world.room_id: (2, 0)}
        assert await state.joined_servers(world.room_id) == {"test.local"}

    await read_cached_then_resync(world.hs.server, read, lambda: db.reads)


async def test_a_users_rooms_are_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    state = world.hs.server.stores.state
    db = counting_db(monkeypatch, state)
    await read_cached_then_resync(
        world.hs.server, lambda: state.rooms_for_user(world.bob.user_id), lambda: db.reads
    )


async def test_events_are_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    events = world.hs.server.stores.events
    db = counting_db(monkeypatch, events)
    await read_cached_then_resync(
        world.hs.server, lambda: events.get_event(world.event_id), lambda: db.reads
    )


async def test_room_summaries_are_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    summaries = world.hs.server.stores.room_summaries
    db = counting_db(monkeypatch, summaries)
    await read_cached_then_resync(
        world.hs.server, lambda: summaries.get_many([world.room_id]), lambda: db.reads
    )


async def test_heroes_are_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    stores = world.hs.server.stores
    db = counting_db(monkeypatch, stores.sync)

    async def read() -> None:
        generations = {world.room_id: stores.state.member_generation(world.room_id)}
        heroes = await stores.sync.heroes([world.room_id], world.alice.user_id, generations)
        assert heroes == {world.room_id: [world.bob.user_id]}

    await read_cached_then_resync(world.hs.server, read, lambda: db.reads)


async def test_a_read_in_flight_during_a_resync_is_not_cached(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = world.hs.server.stores.state
    db = counting_db(monkeypatch, state)
    generation = state.member_generation(world.room_id)
    await invalidator_of(world.hs.server).on_resync()
    assert state.member_generation(world.room_id) != generation
    # (a room never read before moves too: its generation was the default)
    assert state.member_generation("!never:test") != 0
    await state.get_current_state(world.room_id)
    reads = db.reads
    await state.get_current_state(world.room_id)
    assert db.reads == reads


# -- the services -----------------------------------------------------------------------


async def test_access_tokens_are_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = count_calls(monkeypatch, world.hs.server.stores.tokens, "get_access_token")
    authenticator = world.hs.server.client.authenticator
    await read_cached_then_resync(
        world.hs.server,
        lambda: authenticator.authenticate(world.alice.token),
        lambda: counter.calls,
    )


async def test_ignored_users_are_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = count_calls(monkeypatch, world.hs.server.stores.account_data, "get")
    account_data = world.hs.server.client.account_data
    await read_cached_then_resync(
        world.hs.server,
        lambda: account_data.ignored_users(world.alice.user_id),
        lambda: counter.calls,
    )


async def test_compiled_push_rules_are_read_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = world.hs.server.client.push.rules
    counter = count_calls(monkeypatch, world.hs.server.stores.push_rules, "get_rules_for_users")
    await read_cached_then_resync(
        world.hs.server,
        lambda: rules.compiled_for_users([world.alice.user_id]),
        lambda: counter.calls,
    )


async def test_unread_counts_are_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluator = world.hs.server.client.push.evaluator
    counter = count_calls(monkeypatch, world.hs.server.stores.push_actions, "unread_by_thread")
    await read_cached_then_resync(
        world.hs.server,
        lambda: evaluator.unread_counts(world.bob.user_id, [world.room_id]),
        lambda: counter.calls,
    )


async def test_one_time_key_counts_are_read_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = world.hs.server.client.e2ee.keys
    counter = count_calls(monkeypatch, world.hs.server.stores.e2e_keys, "count_one_time_keys")
    await read_cached_then_resync(
        world.hs.server,
        lambda: keys.device_one_time_keys_count(world.alice.user_id, world.alice.device_id),
        lambda: counter.calls,
    )


async def test_membership_histories_are_read_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    memberships = world.hs.server.client.sync.memberships
    counter = count_calls(monkeypatch, world.hs.server.stores.sync, "membership_history")
    await read_cached_then_resync(
        world.hs.server, lambda: memberships.get(world.bob.user_id), lambda: counter.calls
    )


async def test_presence_rooms_are_read_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    presence = world.hs.server.client.presence
    counter = count_calls(monkeypatch, world.hs.server.stores.state, "rooms_for_user")
    await read_cached_then_resync(
        world.hs.server,
        lambda: presence.get_visible(world.alice.user_id, world.bob.user_id),
        lambda: counter.calls,
    )


async def test_retention_policies_are_read_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = await world.alice.request(
        "PUT", f"/rooms/{world.room_id}/state/m.room.retention/", {"max_lifetime": 86_400_000}
    )
    server = world.hs.server
    policies = RetentionPolicies(server.stores, world.hs.clock, server.config.retention)
    calls = ResyncCalls()
    invalidator = CacheInvalidator(
        state=calls,
        events=calls,
        sync=calls,
        summaries=calls,
        tokens=calls,
        account_data=calls,
        push_rules=calls,
        unread=calls,
        memberships=calls,
        presence=calls,
        retention=policies,
    )
    counter = count_calls(monkeypatch, server.stores.events, "get_events")

    async def read() -> None:
        found = await policies.policies_of_events([body["event_id"]])
        assert found[body["event_id"]] is not None

    await read()
    await read()
    assert counter.calls == 1
    await invalidator.on_resync()
    await read()
    assert counter.calls == 2


async def test_pushers_are_reloaded_from_the_database(world: World) -> None:
    pushers = world.hs.server.client.push.pushers
    body = {
        "kind": "http",
        "app_id": "com.example.app",
        "pushkey": "key-1",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify"},
    }
    await world.alice.request("POST", "/pushers/set", body)
    record = pushers.pusher(world.alice.user_id, "com.example.app", "key-1")
    assert record is not None
    # as another process would: removed in the database, no notice heard
    await world.hs.server.stores.pushers.delete_pusher(
        world.alice.user_id, "com.example.app", "key-1"
    )
    assert pushers.pusher(world.alice.user_id, "com.example.app", "key-1") is not None
    await invalidator_of(world.hs.server).on_resync()
    assert pushers.pusher(world.alice.user_id, "com.example.app", "key-1") is None


# -- the indices that say "nothing changed" -------------------------------------------


def test_the_notifier_forgets_where_rooms_changed() -> None:
    notifier = Notifier()
    notifier.on_room_event("!r:hs", 5)
    assert not notifier.room_changed_since("!r:hs", 5)
    epoch = notifier.changes_epoch()
    notifier.forget_changes()
    assert notifier.room_changed_since("!r:hs", 5)  # maybe: not known any more
    assert not notifier.knows_room("!r:hs")
    notifier.seed_room("!r:hs", 5, epoch)  # read before forgetting: ignored
    assert not notifier.knows_room("!r:hs")
    notifier.seed_room("!r:hs", 7, notifier.changes_epoch())
    assert not notifier.room_changed_since("!r:hs", 7)
    assert notifier.room_changed_since("!r:hs", 6)
    notifier.seed_room("!s:hs", 3)  # (no epoch: always taken)
    assert notifier.knows_room("!s:hs")


def test_recent_events_forget_every_room_and_membership() -> None:
    recent = RecentRoomEvents()
    recent.start(10)
    recent.committed(EventPosition("!r:hs", "$a", 11, None))
    recent.membership_changed("!r:hs", 11)
    assert recent.latest("!r:hs", 10, 11, 5) is not None
    assert recent.memberships_unchanged(["!s:hs"], 10)
    recent.forget_all()
    assert recent.latest("!r:hs", 10, 11, 5) is None
    assert not recent.memberships_unchanged(["!s:hs"], 10)  # before the resync: unknown
    assert recent.memberships_unchanged(["!s:hs"], 11)
    recent.committed(EventPosition("!r:hs", "$b", 12, None))
    assert [e.event_id for e in recent.latest("!r:hs", 11, 12, 5) or []] == ["$b"]


def test_recent_events_not_started_stay_unknown() -> None:
    recent = RecentRoomEvents()
    recent.forget_all()
    assert recent.latest("!r:hs", 0, 1, 5) is None
    assert not recent.memberships_unchanged(["!r:hs"], 0)


async def test_to_device_and_receipts_answer_from_storage_for_older_positions(
    world: World,
) -> None:
    to_device = world.hs.server.client.to_device
    receipts = world.hs.server.client.receipts
    await world.alice.request(
        "POST", f"/rooms/{world.room_id}/receipt/m.read/{quote(world.event_id)}", {}
    )
    stream_receipts = receipts.current_position()
    assert not receipts.has_updates([world.room_id], stream_receipts)
    await invalidator_of(world.hs.server).on_resync()
    assert receipts.has_updates([world.room_id], stream_receipts - 1)
    assert not receipts.has_updates([world.room_id], stream_receipts)
    rooms = await receipts.rooms_with_changes([world.room_id], stream_receipts - 1, stream_receipts)
    assert rooms == {world.room_id}  # read from the database
    messages = {world.bob.user_id: {world.bob.device_id: {"n": 1}}}
    await world.alice.request("PUT", "/sendToDevice/m.test/resync1", {"messages": messages})
    upto = to_device.current_position()
    assert to_device.has_updates(world.bob.user_id, upto - 1)
    assert not to_device.has_updates(world.alice.user_id, upto - 1)  # known: nothing
    await invalidator_of(world.hs.server).on_resync()
    assert to_device.has_updates(world.alice.user_id, upto - 1)  # not known any more
    assert not to_device.has_updates(world.alice.user_id, upto)
    found, _next = await to_device.to_device_for_sync(
        world.bob.user_id, world.bob.device_id, upto - 1, upto
    )
    assert [m["content"] for m in found] == [{"n": 1}]  # read from the database


# -- which owners on_resync reaches --------------------------------------------------------


class ResyncCalls(Calls):
    async def reload_all(self) -> None:
        self.log.append(("reload_all",))


async def test_on_resync_reaches_every_owner() -> None:
    owners = {
        name: ResyncCalls()
        for name in (
            "state",
            "events",
            "sync",
            "summaries",
            "tokens",
            "account_data",
            "push_rules",
            "unread",
            "memberships",
            "presence",
            "to_device",
            "receipts",
            "pushers",
            "retention",
            "key_counts",
            "changes",
        )
    }
    await CacheInvalidator(**owners).on_resync()
    called = {name: calls.log for name, calls in owners.items()}
    assert called.pop("pushers") == [("reload_all",)]
    for name in ("to_device", "receipts", "changes"):
        assert called.pop(name) == [("forget_changes",)]
    assert all(log == [("clear_caches",)] for log in called.values()), called


async def test_on_resync_without_the_optional_owners() -> None:
    calls = ResyncCalls()
    await CacheInvalidator(
        state=calls,
        events=calls,
        sync=calls,
        summaries=calls,
        tokens=calls,
        account_data=calls,
        push_rules=calls,
        unread=calls,
        memberships=calls,
        presence=calls,
    ).on_resync()
    assert calls.log == [("clear_caches",)] * 10


# -- end to end: B missed A's notices -------------------------------------------------------


async def resync_b(pair: Pair) -> None:
    await pair.bus.deliver()  # (dropped: B's Redis was away)
    pair.bus.delivering = True
    await invalidator_of(pair.b.server).on_resync()


async def test_a_display_name_changed_while_b_was_cut_off_is_seen_after_resync(
    pair: Pair,
) -> None:
    alice_a, _alice_b = await pair.user("alice")
    bob_a, bob_b = await pair.user("bob")
    room_id = await alice_a.create_room(preset="public_chat")
    await bob_a.join(room_id)
    await pair.bus.deliver()
    assert (await joined_members(bob_b, room_id))[alice_a.user_id]["display_name"] == "alice"
    pair.bus.delivering = False
    await alice_a.request(
        "PUT", f"/profile/{quote(alice_a.user_id)}/displayname", {"displayname": "Alice A."}
    )
    await pair.bus.deliver()
    assert (await joined_members(bob_b, room_id))[alice_a.user_id]["display_name"] == "alice"
    await resync_b(pair)
    assert (await joined_members(bob_b, room_id))[alice_a.user_id]["display_name"] == "Alice A."
    member = await bob_b.state(room_id, "m.room.member", alice_a.user_id)
    assert member["displayname"] == "Alice A."


async def test_push_rules_changed_while_b_was_cut_off_apply_after_resync(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    _bob_a, bob_b = await pair.user("bob")
    room_id = await bob_b.create_room(preset="public_chat")
    await alice_b.join(room_id)
    await bob_b.send(room_id, "warming B's caches")

    async def notified() -> int:
        body = await alice_b.request("GET", "/notifications")
        return len(body["notifications"])

    assert await notified() == 1
    pair.bus.delivering = False
    await alice_a.request(
        "PUT", f"/pushrules/global/room/{quote(room_id, safe='')}", {"actions": []}
    )
    await pair.bus.deliver()
    await bob_b.send(room_id, "still notified: B missed the change")
    assert await notified() == 2
    await resync_b(pair)
    await bob_b.send(room_id, "muted now")
    assert await notified() == 2


async def test_a_token_logged_out_while_b_was_cut_off_is_refused_after_resync(
    pair: Pair,
) -> None:
    alice_a, alice_b = await pair.user("alice")
    assert await whoami_status(alice_b) == 200  # cached on B
    pair.bus.delivering = False
    await alice_a.request("POST", "/logout", {})
    await pair.bus.deliver()
    assert await whoami_status(alice_b) == 200  # B missed the notice
    await resync_b(pair)
    assert await whoami_status(alice_b) == 401


async def test_a_process_that_lost_notices_alone_makes_the_others_drop_everything(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notice a process publishes after its own reconnect when it dropped notices
    (Redis was away from it alone): the others' caches go as on their own resync."""
    counter = count_calls(monkeypatch, world.hs.server.stores.tokens, "get_access_token")
    authenticator = world.hs.server.client.authenticator
    await authenticator.authenticate(world.alice.token)
    warm = counter.calls
    await authenticator.authenticate(world.alice.token)
    assert counter.calls == warm
    await invalidator_of(world.hs.server).on_cache(CacheNotice("other", EVERYTHING))
    await authenticator.authenticate(world.alice.token)
    assert counter.calls > warm
