"""Real clients with vodozemac across two servers: alice (on one server) queries and
claims the keys of bob (on the other) over federation, opens an Olm session, shares a
Megolm room key in an m.direct_to_device EDU, and bob decrypts her m.room.encrypted
message that arrived as a PDU; then bob answers the same way. And a new device of
bob's, signed by his self-signing key, is verified by alice through the device list
updates her server received, and receives her room key."""

from __future__ import annotations

import pytest

from tests.e2ee.federation_helpers import eventually
from tests.e2ee.helpers import (
    ENCRYPTION,
    CrossSigning,
    OlmDevice,
    check_cross_signed,
    login_again,
    next_batch,
    receive,
    send_encrypted,
    share_megolm_key,
    sign_new_device,
    upload_cross_signing,
)
from tests.e2ee.test_federation_device_lists import count_resyncs
from tests.federation.rooms import settle, share_room
from tests.federation.servers import ServerFactory

vodozemac = pytest.importorskip("vodozemac")


async def test_olm_and_megolm_between_users_of_two_servers(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice_user, bob_user = await share_room(
        a, b, preset="public_chat", initial_state=[ENCRYPTION]
    )
    alice, bob = OlmDevice(alice_user), OlmDevice(bob_user)
    await alice.publish(3)
    await bob.publish(3)
    await settle(a, b)
    alice_since, bob_since = await next_batch(alice), await next_batch(bob)

    group = await share_megolm_key(alice, bob, room_id)
    payload = await send_encrypted(alice, group, room_id, "the eagle lands at dawn")
    await settle(a, b)
    synced = await bob.user.sync(since=bob_since, timeout=0)
    assert receive(bob, synced, room_id, alice)[1] == [payload]
    assert synced["device_one_time_keys_count"]["signed_curve25519"] == 2

    # and back: bob's session towards alice, over the other direction of federation
    reply_group = await share_megolm_key(bob, alice, room_id)
    reply = await send_encrypted(bob, reply_group, room_id, "roger that")
    await settle(a, b)
    synced = await alice.user.sync(since=alice_since, timeout=0)
    assert receive(alice, synced, room_id, bob)[1] == [reply]


async def test_new_device_on_the_other_server_receives_the_room_key_after_verification(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice_user, bob_user = await share_room(
        a, b, preset="public_chat", initial_state=[ENCRYPTION]
    )
    alice, bob = OlmDevice(alice_user), OlmDevice(bob_user)
    await alice.publish(2)
    await bob.publish(2)
    assert not await upload_cross_signing(bob.user, CrossSigning(bob.user_id))
    await settle(a, b)
    group = await share_megolm_key(alice, bob, room_id)  # a caches bob's device list
    await send_encrypted(alice, group, room_id, "before the new device")
    await settle(a, b)
    resyncs = count_resyncs(a)
    alice_since = await next_batch(alice)

    new = OlmDevice(await login_again(b.harness, bob.user))
    await new.publish(2)
    new_since = await next_batch(new)
    cs = await sign_new_device(new)
    await settle(a, b)

    async def alice_is_told() -> bool:
        synced = await alice.user.sync(since=alice_since, timeout=0)
        return bob.user_id in synced.get("device_lists", {}).get("changed", [])

    await eventually(alice_is_told)
    queried = await alice.user.request("POST", "/keys/query", {"device_keys": {bob.user_id: []}})
    assert queried["failures"] == {}
    assert set(queried["device_keys"][bob.user_id]) == {bob.device_id, new.device_id}
    check_cross_signed(queried, bob.user_id, new.device_id, cs.master_pub)
    assert resyncs == []  # a applied b's updates to its copy of bob's list

    await share_megolm_key(alice, new, room_id, group)
    after = await send_encrypted(alice, group, room_id, "welcome, new device")
    await settle(a, b)
    synced = await new.user.sync(since=new_since, timeout=0)
    assert receive(new, synced, room_id, alice)[1] == [after]
