"""Real clients with vodozemac across two servers: alice (on one server) queries and
claims the keys of bob (on the other) over federation, opens an Olm session, shares a
Megolm room key in an m.direct_to_device EDU, and bob decrypts her m.room.encrypted
message that arrived as a PDU; then bob answers the same way."""

from __future__ import annotations

import pytest

from tests.e2ee.helpers import (
    ENCRYPTION,
    OlmDevice,
    next_batch,
    receive,
    send_encrypted,
    share_megolm_key,
)
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
