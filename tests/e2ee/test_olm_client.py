"""Real clients with vodozemac (the Rust Olm/Megolm implementation) on one server: Olm
accounts publish keys through our API, claim each other's one-time keys, open Olm
sessions, share Megolm room keys in to-device messages and decrypt each other's
m.room.encrypted messages sent through the room API; and a new device of a user,
signed by the user's self-signing key, is verified by the other user and receives the
room key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import HomeserverHarness
from tests.e2ee.helpers import (
    ENCRYPTION,
    CrossSigning,
    OlmDevice,
    check_cross_signed,
    decrypt_timeline,
    login_again,
    next_batch,
    receive,
    send_encrypted,
    share_megolm_key,
    sign_new_device,
    upload_cross_signing,
)
from tests.rooms.helpers import make_user

vodozemac = pytest.importorskip("vodozemac")


async def encrypted_room(hs: HomeserverHarness) -> tuple[str, OlmDevice, OlmDevice]:
    """An encrypted room of alice's that bob joined; both devices publish their keys."""
    alice = OlmDevice(await make_user(hs, "alice"))
    bob = OlmDevice(await make_user(hs, "bob"))
    await alice.publish(2)
    uploaded = await bob.publish(5)
    assert uploaded["one_time_key_counts"]["signed_curve25519"] == 5
    room_id = await alice.user.create_room(
        preset="private_chat", invite=[bob.user_id], initial_state=[ENCRYPTION]
    )
    await bob.user.join(room_id)
    return room_id, alice, bob


async def test_two_way_encrypted_conversation(hs: HomeserverHarness) -> None:
    room_id, alice, bob = await encrypted_room(hs)
    alice_since, bob_since = await next_batch(alice), await next_batch(bob)

    # alice -> bob: a new Megolm session, its key in an Olm message, a room message
    alice_group = await share_megolm_key(alice, bob, room_id)
    first = await send_encrypted(alice, alice_group, room_id, "the eagle lands at dawn")
    synced = await bob.user.sync(since=bob_since, timeout=0)
    assert synced["device_one_time_keys_count"]["signed_curve25519"] == 4
    from_alice, plaintexts = receive(bob, synced, room_id, alice)
    assert plaintexts == [first]
    bob_since = synced["next_batch"]

    # bob -> alice: his own session, the other way
    bob_group = await share_megolm_key(bob, alice, room_id)
    reply = await send_encrypted(bob, bob_group, room_id, "roger that")
    synced = await alice.user.sync(since=alice_since, timeout=0)
    assert synced["device_one_time_keys_count"]["signed_curve25519"] == 1
    from_bob, plaintexts = receive(alice, synced, room_id, bob)
    assert plaintexts == [reply]
    alice_since = synced["next_batch"]

    # the conversation goes on in the same sessions, without sharing keys again
    second = await send_encrypted(alice, alice_group, room_id, "bring the umbrella")
    again = await send_encrypted(bob, bob_group, room_id, "which one?")
    synced = await bob.user.sync(since=bob_since, timeout=0)
    assert decrypt_timeline(from_alice, synced, room_id) == [second]
    synced = await alice.user.sync(since=alice_since, timeout=0)
    assert decrypt_timeline(from_bob, synced, room_id) == [again]


async def test_new_device_receives_the_room_key_after_verification(
    hs: HomeserverHarness,
) -> None:
    room_id, alice, bob = await encrypted_room(hs)
    # bob's first device set up cross-signing (no UIA for the first keys)
    assert not await upload_cross_signing(bob.user, CrossSigning(bob.user_id))
    group = await share_megolm_key(alice, bob, room_id)
    await send_encrypted(alice, group, room_id, "before the new device")
    alice_since = await next_batch(alice)

    new = OlmDevice(await login_again(hs, bob.user))
    await new.publish(2)
    new_since = await next_batch(new)
    cs = await sign_new_device(new)

    # alice is told bob's devices changed and checks the new one is cross-signed
    synced: dict[str, Any] = await alice.user.sync(since=alice_since, timeout=0)
    assert bob.user_id in synced["device_lists"]["changed"]
    queried = await alice.user.request("POST", "/keys/query", {"device_keys": {bob.user_id: []}})
    assert set(queried["device_keys"][bob.user_id]) == {bob.device_id, new.device_id}
    check_cross_signed(queried, bob.user_id, new.device_id, cs.master_pub)

    # ... and shares her Megolm session with it: it decrypts what alice sends next
    await share_megolm_key(alice, new, room_id, group)
    after = await send_encrypted(alice, group, room_id, "welcome, new device")
    synced = await new.user.sync(since=new_since, timeout=0)
    _, plaintexts = receive(new, synced, room_id, alice)
    assert plaintexts == [after]
