"""Two processes of one homeserver on one PostgreSQL: what one writes, the other's
caches forget (issue 17, "every process's caches ... are invalidated").

Two real ``Homeserver``s are built on the same migrated schema, each with its own
connection pool and caches (tests/replication/two_processes.py). An in-memory bus
stands for Redis: it collects what each
server publishes (its CacheNotices, and a RoomEventNotice for each room event it
persists, as the event writer will) and, when the test says so, hands them to the
other server's ``CacheInvalidator``. Events of a room are only ever written by one of
the two. Each test reads on B first (so B caches), writes on A, delivers, and reads
on B again. PostgreSQL only: workers refuse SQLite (its IDs are allocated in-process).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from homeserver.replication.invalidation import room_event_notice
from homeserver.rooms.expiry import SELF_DESTRUCT_AFTER
from homeserver.server import Homeserver
from storage.events import StoredEvent
from tests.e2ee.helpers import KeyedDevice
from tests.pg_schemas import PgSchemaPool
from tests.replication.two_processes import MemoryBus, TwoProcesses, two_processes
from tests.rooms.helpers import User


def announce_room_events(instance: str, server: Homeserver, bus: MemoryBus) -> None:
    """What the event writer will publish for each event it persists (the lead's
    integration does it for real)."""
    publisher = bus.publisher(instance)

    async def persisted(stored: StoredEvent) -> None:
        if stored.stream_ordering is not None and stored.stream_ordering > 0:
            publisher.publish(room_event_notice(instance, stored))

    server.client.persister.persisted_hooks.append(persisted)


Pair = TwoProcesses


@pytest.fixture
async def pair(pg_schemas: PgSchemaPool, tmp_path: Path) -> AsyncIterator[Pair]:
    async with two_processes(pg_schemas, tmp_path, prepare=announce_room_events) as pair:
        yield pair


async def whoami_status(user: User) -> int:
    resp = await user.hs.client.get("/_matrix/client/v3/account/whoami", headers=user.auth)
    return resp.status


async def joined_members(user: User, room_id: str) -> dict[str, Any]:
    body = await user.request("GET", f"/rooms/{room_id}/joined_members")
    return dict(body["joined"])


# -- access tokens -------------------------------------------------------------------


async def test_a_token_logged_out_on_a_is_refused_on_b(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    assert await whoami_status(alice_b) == 200  # cached on B
    await alice_a.request("POST", "/logout", {})
    await pair.bus.deliver()
    assert await whoami_status(alice_b) == 401


async def test_tokens_logged_out_everywhere_on_a_are_refused_on_b(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    body = await pair.a.client.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "correct horse",
        },
    )
    second = dataclasses.replace(alice_b, token=(await body.json())["access_token"])
    assert await whoami_status(alice_b) == 200
    assert await whoami_status(second) == 200
    await alice_a.request("POST", "/logout/all", {})
    await pair.bus.deliver()
    assert await whoami_status(alice_b) == 401
    assert await whoami_status(second) == 401


async def test_a_device_deleted_on_a_loses_its_token_on_b(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    assert await whoami_status(alice_b) == 200
    path = f"/devices/{alice_a.device_id}"
    session = (await alice_a.request("DELETE", path, {}, expect=401))["session"]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "correct horse",
        "session": session,
    }
    await alice_a.request("DELETE", path, {"auth": auth})
    await pair.bus.deliver()
    assert await whoami_status(alice_b) == 401


async def test_an_account_deactivated_on_a_is_refused_on_b(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    assert await whoami_status(alice_b) == 200
    session = (await alice_a.request("POST", "/account/deactivate", {}, expect=401))["session"]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "correct horse",
        "session": session,
    }
    await alice_a.request("POST", "/account/deactivate", {"auth": auth})
    await pair.bus.deliver()
    assert await whoami_status(alice_b) == 401


# -- room state and memberships --------------------------------------------------------


async def test_a_display_name_changed_on_a_is_seen_on_b(pair: Pair) -> None:
    alice_a, _alice_b = await pair.user("alice")
    bob_a, bob_b = await pair.user("bob")
    room_id = await alice_a.create_room(preset="public_chat")
    await bob_a.join(room_id)
    await pair.bus.deliver()
    assert (await joined_members(bob_b, room_id))[alice_a.user_id]["display_name"] == "alice"
    member = await bob_b.state(room_id, "m.room.member", alice_a.user_id)
    assert member["displayname"] == "alice"
    await alice_a.request(
        "PUT", f"/profile/{quote(alice_a.user_id)}/displayname", {"displayname": "Alice A."}
    )
    await pair.bus.deliver()
    profile = await bob_b.request("GET", f"/profile/{quote(alice_a.user_id)}")
    assert profile["displayname"] == "Alice A."
    assert (await joined_members(bob_b, room_id))[alice_a.user_id]["display_name"] == "Alice A."
    member = await bob_b.state(room_id, "m.room.member", alice_a.user_id)
    assert member["displayname"] == "Alice A."


async def test_room_state_changed_on_a_is_seen_on_b(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    room_id = await alice_a.create_room(preset="public_chat", name="Before")
    await pair.bus.deliver()
    assert (await alice_b.state(room_id, "m.room.name"))["name"] == "Before"
    await alice_a.request("PUT", f"/rooms/{room_id}/state/m.room.name/", {"name": "After"})
    await pair.bus.deliver()
    assert (await alice_b.state(room_id, "m.room.name"))["name"] == "After"


async def test_memberships_changed_on_a_are_seen_on_b(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    bob_a, bob_b = await pair.user("bob")
    room_id = await alice_a.create_room(preset="public_chat")
    await bob_a.join(room_id)
    await pair.bus.deliver()
    assert set(await joined_members(alice_b, room_id)) == {alice_a.user_id, bob_a.user_id}
    assert room_id in (await bob_b.request("GET", "/joined_rooms"))["joined_rooms"]
    await bob_a.leave(room_id)
    await pair.bus.deliver()
    assert set(await joined_members(alice_b, room_id)) == {alice_a.user_id}
    assert room_id not in (await bob_b.request("GET", "/joined_rooms"))["joined_rooms"]


# -- push rules, ignored users, unread counts ---------------------------------------------


async def room_on_b(pair: Pair) -> tuple[User, User, str]:
    """A room whose events B writes: alice (on A too) is notified of bob's messages,
    and B has her push rules and ignored users cached."""
    alice_a, alice_b = await pair.user("alice")
    _bob_a, bob_b = await pair.user("bob")
    room_id = await bob_b.create_room(preset="public_chat")
    await alice_b.join(room_id)
    await bob_b.send(room_id, "warming B's caches")
    assert len(await notifications(alice_b)) == 1
    return alice_a, bob_b, room_id


async def notifications(user: User) -> list[dict[str, Any]]:
    return list((await user.request("GET", "/notifications"))["notifications"])


async def test_push_rules_changed_on_a_apply_on_b(pair: Pair) -> None:
    alice_a, bob_b, room_id = await room_on_b(pair)
    await alice_a.request(
        "PUT", f"/pushrules/global/room/{quote(room_id, safe='')}", {"actions": []}
    )
    await pair.bus.deliver()
    await bob_b.send(room_id, "muted now")
    assert len(await notifications(dataclasses.replace(alice_a, hs=pair.b))) == 1


async def test_ignored_users_changed_on_a_apply_on_b(pair: Pair) -> None:
    alice_a, bob_b, room_id = await room_on_b(pair)
    await alice_a.request(
        "PUT",
        f"/user/{quote(alice_a.user_id)}/account_data/m.ignored_user_list",
        {"ignored_users": {bob_b.user_id: {}}},
    )
    await pair.bus.deliver()
    await bob_b.send(room_id, "ignored now")
    assert len(await notifications(dataclasses.replace(alice_a, hs=pair.b))) == 1
    ignored = await pair.b.server.client.account_data.ignored_users(alice_a.user_id)
    assert ignored == {bob_b.user_id}


async def test_unread_counts_raised_on_a_are_seen_on_b(pair: Pair) -> None:
    alice_a, _alice_b = await pair.user("alice")
    bob_a, _bob_b = await pair.user("bob")
    room_id = await alice_a.create_room(preset="public_chat")
    await bob_a.join(room_id)
    await pair.bus.deliver()
    evaluator = pair.b.server.client.push.evaluator
    assert (await evaluator.unread_counts(alice_a.user_id, [room_id]))[room_id].notification == 0
    await bob_a.send(room_id, "one for alice")
    await pair.bus.deliver()
    assert (await evaluator.unread_counts(alice_a.user_id, [room_id]))[room_id].notification == 1


async def test_a_redaction_on_a_is_seen_in_b_event_cache(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    room_id = await alice_a.create_room(preset="public_chat")
    event_id = await alice_a.send(room_id, "regrettable")
    await pair.bus.deliver()
    before = await alice_b.request("GET", f"/rooms/{room_id}/event/{event_id}")
    assert before["content"]["body"] == "regrettable"
    await alice_a.request("PUT", f"/rooms/{room_id}/redact/{event_id}/r1", {})
    await pair.bus.deliver()
    after = await alice_b.request("GET", f"/rooms/{room_id}/event/{event_id}")
    assert after["content"] == {}


async def test_a_message_expired_on_a_is_pruned_in_b_event_cache(pair: Pair) -> None:
    alice_a, alice_b = await pair.user("alice")
    room_id = await alice_a.create_room(preset="public_chat")
    expires = pair.a.clock.time_ms() + 1_000
    self_destruct: dict[str, Any] = {SELF_DESTRUCT_AFTER: expires}
    event_id = await alice_a.send(room_id, "gone soon", **self_destruct)
    await pair.bus.deliver()
    before = await alice_b.request("GET", f"/rooms/{room_id}/event/{event_id}")
    assert before["content"]["body"] == "gone soon"
    pair.a.clock.advance(2_000)
    expiry = pair.a.server.message_expiry
    assert expiry is not None
    await expiry.tick()
    await pair.bus.deliver()
    after = await alice_b.request("GET", f"/rooms/{room_id}/event/{event_id}")
    assert "body" not in after["content"]


async def test_one_time_keys_uploaded_and_claimed_on_a_are_counted_on_b(pair: Pair) -> None:
    alice_a, _alice_b = await pair.user("alice")
    bob_a, _bob_b = await pair.user("bob")
    keys_b = pair.b.server.client.e2ee.keys

    async def count_on_b() -> int:
        counts = await keys_b.device_one_time_keys_count(alice_a.user_id, alice_a.device_id)
        return counts["signed_curve25519"]

    assert await count_on_b() == 0
    device = KeyedDevice(alice_a)
    await device.upload(device_keys=device.device_keys(), one_time_keys=device.one_time_keys(2))
    await pair.bus.deliver()
    assert await count_on_b() == 2
    claim = {"one_time_keys": {alice_a.user_id: {alice_a.device_id: "signed_curve25519"}}}
    await bob_a.request("POST", "/keys/claim", claim)
    await pair.bus.deliver()
    assert await count_on_b() == 1


async def test_pushers_set_and_removed_on_a_run_on_b(pair: Pair) -> None:
    alice_a, _alice_b = await pair.user("alice")
    pushers_b = pair.b.server.client.push.pushers
    body = {
        "kind": "http",
        "app_id": "com.example.app",
        "pushkey": "key-1",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify"},
    }
    await alice_a.request("POST", "/pushers/set", body)
    await pair.bus.deliver()
    assert pushers_b.pusher(alice_a.user_id, "com.example.app", "key-1") is not None
    await alice_a.request("POST", "/pushers/set", {**body, "kind": None})
    await pair.bus.deliver()
    assert pushers_b.pusher(alice_a.user_id, "com.example.app", "key-1") is None
