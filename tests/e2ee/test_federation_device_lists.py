"""Device lists across servers: m.device_list_update and m.signing_key_update EDUs,
the cache of remote users' devices, resyncs on gaps, and what local users see in
/sync ``device_lists`` (s2s "Device Management", "End-to-End Encryption")."""

from __future__ import annotations

import asyncio
from typing import Any

from homeserver.e2ee.remote import RemoteDeviceLists
from tests.e2ee.federation_helpers import eventually
from tests.e2ee.helpers import (
    KeyedDevice,
    login_again,
    signed,
    signing_key_named_by_public_key,
)
from tests.federation.rooms import send_txn, settle, share_room
from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import User


def remote_lists(server: FederatingServer) -> RemoteDeviceLists:
    assert server.server.federation_e2ee is not None
    return server.server.federation_e2ee.remote


def count_resyncs(server: FederatingServer) -> list[str]:
    """Record the users ``server`` resyncs from now on."""
    remote = remote_lists(server)
    fetch = remote.fetcher
    assert fetch is not None
    seen: list[str] = []

    async def counting(user_id: str, timeout_s: float) -> Any:
        seen.append(user_id)
        return await fetch(user_id, timeout_s)

    remote.fetcher = counting
    return seen


async def changed_since(user: User, since: str) -> list[str]:
    synced = await user.sync(since=since, timeout=0)
    return list(synced.get("device_lists", {}).get("changed", []))


async def device_ids_seen_by(user: User, target: str) -> set[str]:
    answer = await user.request("POST", "/keys/query", {"device_keys": {target: []}})
    assert answer["failures"] == {}
    return set(answer["device_keys"].get(target, {}))


async def test_device_list_update_reaches_the_other_server(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    assert await device_ids_seen_by(bob, alice.user_id) == set()  # fills b's cache
    resyncs = count_resyncs(b)
    since = (await bob.sync(timeout=0))["next_batch"]

    await alice.upload(device_keys=alice.device_keys())

    async def bob_sees_the_change() -> bool:
        return alice.user_id in await changed_since(bob, since)

    await eventually(bob_sees_the_change)
    # the EDU followed b's copy: applied without asking a again
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    assert resyncs == []
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    position = await a.server.stores.e2e_keys.user_device_list_position(alice.user_id)
    assert cached is not None and cached.stream_id == position

    # a second device, then its deletion
    second = KeyedDevice(await login_again(a.harness, alice.user))
    await second.upload(device_keys=second.device_keys())

    async def two_devices() -> bool:
        return await device_ids_seen_by(bob, alice.user_id) == {
            alice.device_id,
            second.device_id,
        }

    await eventually(two_devices)
    await alice.user.request("POST", "/logout", {})  # deletes alice's first device

    async def one_device() -> bool:
        return await device_ids_seen_by(bob, alice.user_id) == {second.device_id}

    await eventually(one_device)
    assert resyncs == []


async def test_a_gap_in_the_sequence_makes_a_resync(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    await alice.upload(device_keys=alice.device_keys())
    await settle(a, b)
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    resyncs = count_resyncs(b)
    since = (await bob.sync(timeout=0))["next_batch"]

    # an update building on one b never got: b must not apply it blindly
    edu = {
        "edu_type": "m.device_list_update",
        "content": {
            "user_id": alice.user_id,
            "device_id": "PHANTOM",
            "stream_id": 1000,
            "prev_id": [999],
            "deleted": False,
        },
    }
    assert await send_txn(a, b, [], [edu]) == {"pdus": {}}
    await remote_lists(b).wait_resyncs()  # the transaction did not wait for it
    assert resyncs == [alice.user_id]
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    position = await a.server.stores.e2e_keys.user_device_list_position(alice.user_id)
    assert cached is not None and not cached.stale and cached.stream_id == position
    # the list a sent is the one b held: nothing for b's clients to fetch again
    assert alice.user_id not in await changed_since(bob, since)

    # an update older than b's copy is ignored
    old = {**edu, "content": {**edu["content"], "stream_id": 1, "prev_id": []}}
    assert await send_txn(a, b, [], [old]) == {"pdus": {}}
    await remote_lists(b).wait_resyncs()
    assert resyncs == [alice.user_id]
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}


async def test_edus_about_other_servers_users_or_untracked_users_are_ignored(
    federation_servers: ServerFactory,
) -> None:
    a, b, c = await federation_servers(3)
    _room_id, alice, bob = await share_room(a, b)
    resyncs = count_resyncs(b)
    carol = f"@carol:{c.server_name}"  # not of the origin
    zed = f"@zed:{a.server_name}"  # of the origin, shares no room with b's users
    edus = [
        {
            "edu_type": "m.device_list_update",
            "content": {"user_id": user, "device_id": "D", "stream_id": 5, "prev_id": [4]},
        }
        for user in (carol, zed)
    ]
    edus.append({"edu_type": "m.device_list_update", "content": {"user_id": alice.user_id}})
    edus.append({"edu_type": "m.signing_key_update", "content": {"user_id": carol}})
    assert await send_txn(a, b, [], edus) == {"pdus": {}}
    await remote_lists(b).wait_resyncs()
    assert resyncs == []
    for user in (carol, zed, alice.user_id):
        assert await b.server.stores.remote_devices.get_list(user) is None
    assert bob.user_id  # bob's server answered the transaction normally


async def test_signing_key_update_reaches_the_other_server(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    await alice.upload(device_keys=alice.device_keys())
    await settle(a, b)
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    resyncs = count_resyncs(b)
    since = (await bob.sync(timeout=0))["next_batch"]

    master_key, master_pub = signing_key_named_by_public_key()
    ssk_key, ssk_pub = signing_key_named_by_public_key()
    master = {
        "user_id": alice.user_id,
        "usage": ["master"],
        "keys": {f"ed25519:{master_pub}": master_pub},
    }
    ssk = signed(
        {
            "user_id": alice.user_id,
            "usage": ["self_signing"],
            "keys": {f"ed25519:{ssk_pub}": ssk_pub},
        },
        alice.user_id,
        master_key,
    )
    body = {"master_key": master, "self_signing_key": ssk}
    await alice.user.request("POST", "/keys/device_signing/upload", body)

    async def bob_sees_the_keys() -> bool:
        answer = await bob.request("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
        return answer["master_keys"].get(alice.user_id, {}).get("keys") == master["keys"]

    await eventually(bob_sees_the_keys)
    answer = await bob.request("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert answer["self_signing_keys"][alice.user_id]["keys"] == ssk["keys"]
    assert alice.user_id in await changed_since(bob, since)
    assert resyncs == []
    assert ssk_key is not None


async def test_leaving_the_last_shared_room(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    await alice.upload(device_keys=alice.device_keys())
    await settle(a, b)
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    since = (await bob.sync(timeout=0))["next_batch"]
    await bob.leave(room_id)
    await settle(a, b)

    synced = await bob.sync(since=since, timeout=0)
    assert alice.user_id in synced["device_lists"]["left"]
    # b no longer gets alice's updates: its copy is stale and not served
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    assert cached is not None and cached.stale
    assert not await remote_lists(b).is_tracked(alice.user_id)
    broadcaster = a.server.federation_e2ee
    assert broadcaster is not None
    assert await broadcaster.broadcaster.destinations(alice.user_id) == set()
    # a query still works: it asks a directly
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}


async def test_a_failed_resync_falls_back_to_asking_and_retries_later(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    remote = remote_lists(b)
    working = remote.fetcher
    calls: list[str] = []

    async def failing(user_id: str, timeout_s: float) -> Any:
        calls.append(user_id)
        raise OSError("connection reset")

    remote.fetcher = failing
    alice = KeyedDevice(alice_user)
    since = (await bob.sync(timeout=0))["next_batch"]
    await alice.upload(device_keys=alice.device_keys())
    await settle(a, b)
    # the update EDU found no copy: bob is told at once, and b tries to make one
    assert alice.user_id in await changed_since(bob, since)
    assert calls == [alice.user_id]
    # no usable copy: b tries once more, then asks a with /user/keys/query instead
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    assert calls == [alice.user_id] * 2
    assert await b.server.stores.remote_devices.get_list(alice.user_id) is None

    # a later query resyncs again, and from then on the cache answers
    remote.fetcher = working
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    assert cached is not None and not cached.stale

    # a gap whose resync fails leaves the copy stale (not served) until a resync works
    remote.fetcher = failing
    edu = {
        "edu_type": "m.device_list_update",
        "content": {
            "user_id": alice.user_id,
            "device_id": alice.device_id,
            "stream_id": 10_000,
            "prev_id": [9_999],
        },
    }
    since = (await bob.sync(timeout=0))["next_batch"]
    assert await send_txn(a, b, [], [edu]) == {"pdus": {}}
    await remote.wait_resyncs()
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    assert cached is not None and cached.stale
    # bob is told of the update all the same
    assert alice.user_id in await changed_since(bob, since)
    remote.fetcher = working
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    assert cached is not None and not cached.stale


async def test_remote_device_keys_are_kept_as_the_origin_sends_them(
    federation_servers: ServerFactory,
) -> None:
    """Keys of remote devices are the clients' to verify: b keeps whatever object a
    sends (in an update or a resync) and serves it with the device's name."""
    a, b = await federation_servers(2)
    _room_id, alice, bob = await share_room(a, b)
    assert await device_ids_seen_by(bob, alice.user_id) == set()  # b holds a copy now
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    assert cached is not None
    odd_keys = {"device_keys": {}, "unsigned": {"device_display_name": "ignored"}}
    edu = {
        "edu_type": "m.device_list_update",
        "content": {
            "user_id": alice.user_id,
            "device_id": "ODD",
            "device_display_name": "odd device",
            "stream_id": cached.stream_id + 1,
            "prev_id": [cached.stream_id],
            "keys": odd_keys,
        },
    }
    since = (await bob.sync(timeout=0))["next_batch"]
    assert await send_txn(a, b, [], [edu]) == {"pdus": {}}
    answer = await bob.request("POST", "/keys/query", {"device_keys": {alice.user_id: ["ODD"]}})
    assert answer["device_keys"][alice.user_id] == {
        "ODD": {"device_keys": {}, "unsigned": {"device_display_name": "odd device"}}
    }
    assert alice.user_id in await changed_since(bob, since)

    # the same from a resync: unsigned keys naming no user are kept too; a "keys"
    # that is no object is a device without keys (not listed)
    remote = remote_lists(b)

    async def snapshot(user_id: str, timeout_s: float) -> Any:
        return {
            "user_id": user_id,
            "stream_id": 50,
            "devices": [
                {"device_id": "D1", "keys": {"algorithms": ["x"], "keys": {"c": "c2hhcnA"}}},
                {"device_id": "D2", "keys": "nope", "device_display_name": "D2"},
                {"device_id": 5},
            ],
        }

    remote.fetcher = snapshot
    assert await remote.resync(alice.user_id)
    answer = await bob.request("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert answer["device_keys"][alice.user_id] == {
        "D1": {"algorithms": ["x"], "keys": {"c": "c2hhcnA"}, "unsigned": {}}
    }


async def test_a_resync_does_not_hold_up_the_transaction(
    federation_servers: ServerFactory,
) -> None:
    """An update that needs a resync is answered at once; the resync (here: a slow
    origin) runs on its own, and then local users are told what changed."""
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    remote = remote_lists(b)
    working = remote.fetcher
    assert working is not None
    release = asyncio.Event()
    asked: list[str] = []

    async def slow(user_id: str, timeout_s: float) -> Any:
        asked.append(user_id)
        await release.wait()
        return await working(user_id, timeout_s)

    assert await device_ids_seen_by(bob, alice.user_id) == set()  # b holds a copy now
    remote.fetcher = slow
    since = (await bob.sync(timeout=0))["next_batch"]
    # an update after a gap (b missed updates up to 8999): b's copy needs a resync
    gap = {
        "edu_type": "m.device_list_update",
        "content": {
            "user_id": alice.user_id,
            "device_id": alice.device_id,
            "stream_id": 8999,
            "prev_id": [8998],
        },
    }
    assert await send_txn(a, b, [], [gap]) == {"pdus": {}}

    async def resync_asked() -> bool:
        return asked == [alice.user_id]

    await eventually(resync_asked)
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    assert cached is not None and cached.stale  # not replaced yet
    assert alice.user_id not in await changed_since(bob, since)
    await alice.upload(device_keys=alice.device_keys())
    # two more updates while the first resync waits: one more resync, not two
    for device in ("X1", "X2"):
        edu = {
            "edu_type": "m.device_list_update",
            "content": {"user_id": alice.user_id, "device_id": device, "stream_id": 9000},
        }
        assert await send_txn(a, b, [], [edu]) == {"pdus": {}}
    release.set()
    await remote.wait_resyncs()
    assert asked == [alice.user_id] * 2
    assert alice.user_id in await changed_since(bob, since)
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}


async def test_a_resync_made_by_a_query_tells_what_it_changed(
    federation_servers: ServerFactory,
) -> None:
    """b fetches alice's list again when bob asks for her keys and b's copy is stale:
    what b learns that its copy lacked is news to b's users."""
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    await alice.upload(device_keys=alice.device_keys())
    await settle(a, b)
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    # b's copy misses alice's device (as if b had missed the update), and is stale
    store = b.server.stores.remote_devices
    await store.replace_user(alice.user_id, 1, [], {}, 0)
    await store.mark_stale([alice.user_id])
    since = (await bob.sync(timeout=0))["next_batch"]
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    assert alice.user_id in await changed_since(bob, since)
    # a stale copy that a resync finds right changes nothing
    await store.mark_stale([alice.user_id])
    since = (await bob.sync(timeout=0))["next_batch"]
    assert await device_ids_seen_by(bob, alice.user_id) == {alice.device_id}
    assert alice.user_id not in await changed_since(bob, since)


async def test_a_key_upload_returns_once_the_other_server_has_the_change(
    federation_servers: ServerFactory,
) -> None:
    """The uploader's request waits for the transaction carrying the update: when it
    returns, a user of the other server already sees the change (no waiting)."""
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    assert await device_ids_seen_by(bob, alice.user_id) == set()  # fills b's cache
    await settle(a, b)
    since = (await bob.sync(timeout=0))["next_batch"]
    await alice.upload(device_keys=alice.device_keys())
    assert alice.user_id in await changed_since(bob, since)
    # a renamed device too
    since = (await bob.sync(timeout=0))["next_batch"]
    await alice.user.request("PUT", f"/devices/{alice.device_id}", {"display_name": "phone"})
    assert alice.user_id in await changed_since(bob, since)
