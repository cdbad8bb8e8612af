"""Real clients with vodozemac (the Rust Olm/Megolm implementation) on one server: Olm
accounts publish keys through our API, claim each other's one-time keys, open Olm
sessions, share Megolm room keys in to-device messages and decrypt each other's
m.room.encrypted messages sent through the room API."""

from __future__ import annotations

import pytest

from tests.conftest import HomeserverHarness
from tests.e2ee.helpers import (
    ENCRYPTION,
    OlmDevice,
    decrypt_timeline,
    next_batch,
    receive,
    send_encrypted,
    share_megolm_key,
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
