"""A real client round trip with vodozemac across two servers: alice (on one server)
queries and claims the keys of bob (on the other) over federation, opens an Olm
session, shares a Megolm room key in an m.direct_to_device EDU, and bob decrypts
her m.room.encrypted message that arrived as a PDU; then bob answers the same way."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from homeserver.events import decode_base64, encode_base64
from tests.federation.rooms import settle, share_room
from tests.federation.servers import ServerFactory

vodozemac = pytest.importorskip("vodozemac")

from tests.e2ee.test_olm_client import OlmDevice, check_signed  # noqa: E402

_txn = itertools.count()
ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


async def share_megolm_key(sender: OlmDevice, recipient: OlmDevice, room_id: str) -> Any:
    """``sender`` checks ``recipient``'s keys, claims a one-time key, and sends a new
    Megolm session's key Olm-encrypted; returns the group session."""
    user, device = recipient.user.user_id, recipient.user.device_id
    queried = await sender.user.request("POST", "/keys/query", {"device_keys": {user: []}})
    assert queried["failures"] == {}
    keys = queried["device_keys"][user][device]
    ed, curve = keys["keys"][f"ed25519:{device}"], keys["keys"][f"curve25519:{device}"]
    check_signed(keys, user, f"ed25519:{device}", ed)
    claimed = await sender.user.request(
        "POST", "/keys/claim", {"one_time_keys": {user: {device: "signed_curve25519"}}}
    )
    assert claimed["failures"] == {}
    ((_, otk),) = claimed["one_time_keys"][user][device].items()
    check_signed(otk, user, f"ed25519:{device}", ed)
    olm = sender.account.create_outbound_session(
        vodozemac.Curve25519PublicKey.from_base64(curve),
        vodozemac.Curve25519PublicKey.from_base64(otk["key"]),
    )
    group = vodozemac.GroupSession()
    room_key = {
        "type": "m.room_key",
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": room_id,
            "session_id": group.session_id,
            "session_key": group.session_key.to_base64(),
        },
        "sender": sender.user.user_id,
        "sender_device": sender.user.device_id,
        "keys": {"ed25519": sender.ed25519},
        "recipient": user,
        "recipient_keys": {"ed25519": ed},
    }
    message_type, ciphertext = olm.encrypt(json.dumps(room_key).encode()).to_parts()
    content = {
        "algorithm": "m.olm.v1.curve25519-aes-sha2",
        "sender_key": sender.curve25519,
        "ciphertext": {curve: {"type": message_type, "body": encode_base64(ciphertext)}},
    }
    await sender.user.request(
        "PUT",
        f"/sendToDevice/m.room.encrypted/olm{next(_txn)}",
        {"messages": {user: {device: content}}},
    )
    return group


async def send_encrypted(sender: OlmDevice, group: Any, room_id: str, text: str) -> dict[str, Any]:
    payload = {
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": text},
        "room_id": room_id,
    }
    await sender.user.request(
        "PUT",
        f"/rooms/{room_id}/send/m.room.encrypted/m{next(_txn)}",
        {
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": sender.curve25519,
            "ciphertext": group.encrypt(json.dumps(payload).encode()).to_base64(),
            "session_id": group.session_id,
            "device_id": sender.user.device_id,
        },
    )
    return payload


def receive(recipient: OlmDevice, synced: dict[str, Any], room_id: str) -> list[Any]:
    """Open the Olm pre-key message, take the room key, decrypt the room's messages."""
    (to_device,) = [e for e in synced["to_device"]["events"] if e["type"] == "m.room.encrypted"]
    mine = to_device["content"]["ciphertext"][recipient.curve25519]
    pre_key = vodozemac.AnyOlmMessage.from_parts(
        mine["type"], decode_base64(mine["body"])
    ).to_pre_key()
    _, plaintext = recipient.account.create_inbound_session(
        vodozemac.Curve25519PublicKey.from_base64(to_device["content"]["sender_key"]), pre_key
    )
    room_key = json.loads(plaintext)
    assert room_key["type"] == "m.room_key"
    assert room_key["recipient_keys"]["ed25519"] == recipient.ed25519
    inbound = vodozemac.InboundGroupSession(
        vodozemac.SessionKey(room_key["content"]["session_key"])
    )
    timeline = synced["rooms"]["join"][room_id]["timeline"]["events"]
    return [
        json.loads(
            inbound.decrypt(
                vodozemac.MegolmMessage.from_base64(e["content"]["ciphertext"])
            ).plaintext
        )
        for e in timeline
        if e["type"] == "m.room.encrypted"
        and e["content"]["session_id"] == room_key["content"]["session_id"]
    ]


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
    alice_since = (await alice.user.sync(timeout=0))["next_batch"]
    bob_since = (await bob.user.sync(timeout=0))["next_batch"]

    group = await share_megolm_key(alice, bob, room_id)
    payload = await send_encrypted(alice, group, room_id, "the eagle lands at dawn")
    await settle(a, b)
    synced = await bob.user.sync(since=bob_since, timeout=0)
    assert receive(bob, synced, room_id) == [payload]
    assert synced["device_one_time_keys_count"]["signed_curve25519"] == 2

    # and back: bob's session towards alice, over the other direction of federation
    reply_group = await share_megolm_key(bob, alice, room_id)
    reply = await send_encrypted(bob, reply_group, room_id, "roger that")
    await settle(a, b)
    synced = await alice.user.sync(since=alice_since, timeout=0)
    assert receive(alice, synced, room_id) == [reply]
