"""Cross-signing across servers: signatures over devices reach the other server with
the device list, a user signs a remote user's master key (the remote master key is
fetched over federation) and sees their signature, and device renames travel as
device list updates."""

from __future__ import annotations

from typing import Any

from tests.e2ee.federation_helpers import eventually
from tests.e2ee.helpers import CrossSigning, KeyedDevice, signed
from tests.e2ee.test_federation_device_lists import count_resyncs
from tests.federation.rooms import settle, share_room
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import User


async def keys_of(viewer: User, user_id: str) -> Any:
    answer = await viewer.request("POST", "/keys/query", {"device_keys": {user_id: []}})
    assert answer["failures"] == {}
    return answer


async def cross_sign(device: KeyedDevice) -> CrossSigning:
    cs = CrossSigning(device.user_id)
    await device.user.request("POST", "/keys/device_signing/upload", cs.upload_body())
    return cs


async def test_cross_signing_between_users_of_two_servers(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    _room_id, alice_user, bob_user = await share_room(a, b)
    alice, bob = KeyedDevice(alice_user), KeyedDevice(bob_user)
    await alice.upload(device_keys=alice.device_keys())
    await bob.upload(device_keys=bob.device_keys())
    alice_cs, bob_cs = await cross_sign(alice), await cross_sign(bob)
    # alice's self-signing key signs her device
    by_ssk = signed(alice.device_keys(), alice.user_id, alice_cs.ssk)
    result = await alice.user.request(
        "POST", "/keys/signatures/upload", {alice.user_id: {alice.device_id: by_ssk}}
    )
    assert result["failures"] == {}
    await settle(a, b)

    async def bob_sees_the_signed_device() -> bool:
        answer = await keys_of(bob.user, alice.user_id)
        device = answer["device_keys"][alice.user_id].get(alice.device_id, {})
        signatures = device.get("signatures", {}).get(alice.user_id, {})
        return f"ed25519:{alice_cs.ssk_pub}" in signatures

    await eventually(bob_sees_the_signed_device)
    answer = await keys_of(bob.user, alice.user_id)
    assert answer["master_keys"][alice.user_id]["keys"] == {
        f"ed25519:{alice_cs.master_pub}": alice_cs.master_pub
    }
    assert answer["self_signing_keys"][alice.user_id]["keys"] == {
        f"ed25519:{alice_cs.ssk_pub}": alice_cs.ssk_pub
    }

    # bob's user-signing key signs alice's master key: bob (only) sees his signature
    alice_master = signed(alice_cs.key("master", alice_cs.master_pub), bob.user_id, bob_cs.usk)
    result = await bob.user.request(
        "POST", "/keys/signatures/upload", {alice.user_id: {alice_cs.master_pub: alice_master}}
    )
    assert result["failures"] == {}
    for_bob = await keys_of(bob.user, alice.user_id)
    master_signatures = for_bob["master_keys"][alice.user_id]["signatures"]
    assert master_signatures[bob.user_id] == alice_master["signatures"][bob.user_id]
    for_alice = await keys_of(alice.user, alice.user_id)
    assert bob.user_id not in for_alice["master_keys"][alice.user_id].get("signatures", {})

    # a signature over a key that is not alice's master key is refused
    wrong = signed(alice_cs.key("master", alice_cs.ssk_pub), bob.user_id, bob_cs.usk)
    result = await bob.user.request(
        "POST", "/keys/signatures/upload", {alice.user_id: {alice_cs.ssk_pub: wrong}}
    )
    assert alice_cs.ssk_pub in result["failures"][alice.user_id]


async def test_renaming_a_device_updates_the_other_server(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    await alice.upload(device_keys=alice.device_keys())
    await settle(a, b)
    await keys_of(bob, alice.user_id)
    resyncs = count_resyncs(b)
    since = (await bob.sync(timeout=0))["next_batch"]

    await alice.user.request("PUT", f"/devices/{alice.device_id}", {"display_name": "Phone"})

    async def bob_sees_the_name() -> bool:
        device = (await keys_of(bob, alice.user_id))["device_keys"][alice.user_id]
        return device[alice.device_id].get("unsigned") == {"device_display_name": "Phone"}

    await eventually(bob_sees_the_name)
    assert resyncs == []
    synced = await bob.sync(since=since, timeout=0)
    assert alice.user_id in synced["device_lists"]["changed"]


async def test_a_device_change_after_a_master_key_signature_needs_no_resync(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    _room_id, alice_user, bob = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    await alice.upload(device_keys=alice.device_keys())
    alice_cs = await cross_sign(alice)
    await settle(a, b)
    await keys_of(bob, alice.user_id)  # b holds a copy of alice's list now
    resyncs = count_resyncs(b)

    # alice's device signs her master key: that travels as an m.signing_key_update
    # only, so the next m.device_list_update must not build on it (prev_id)
    master = signed(alice_cs.key("master", alice_cs.master_pub), alice.user_id, alice.key)
    result = await alice.user.request(
        "POST", "/keys/signatures/upload", {alice.user_id: {alice_cs.master_pub: master}}
    )
    assert result["failures"] == {}
    await alice.user.request("PUT", f"/devices/{alice.device_id}", {"display_name": "Laptop"})
    await settle(a, b)

    async def bob_sees_both() -> bool:
        answer = await keys_of(bob, alice.user_id)
        signers = answer["master_keys"][alice.user_id].get("signatures", {}).get(alice.user_id, {})
        device = answer["device_keys"][alice.user_id][alice.device_id]
        return f"ed25519:{alice.device_id}" in signers and device.get("unsigned") == {
            "device_display_name": "Laptop"
        }

    await eventually(bob_sees_both)
    assert resyncs == []
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    assert cached is not None and not cached.stale
