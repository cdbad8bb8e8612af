"""A real client round trip with vodozemac (the Rust Olm/Megolm implementation):
two Olm accounts publish keys through our API, one claims the other's one-time key,
opens an Olm session, shares a Megolm room key by to-device message, and the other
decrypts an m.room.encrypted message sent through the room API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from homeserver.events import canonical_json, decode_base64, encode_base64
from tests.conftest import HomeserverHarness
from tests.e2ee.helpers import ALGORITHMS
from tests.rooms.helpers import User, make_user

vodozemac = pytest.importorskip("vodozemac")


class OlmDevice:
    def __init__(self, user: User) -> None:
        self.user = user
        self.account = vodozemac.Account()

    @property
    def curve25519(self) -> str:
        return str(self.account.curve25519_key.to_base64())

    @property
    def ed25519(self) -> str:
        return str(self.account.ed25519_key.to_base64())

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        signature = self.account.sign(canonical_json(unsigned)).to_base64()
        key_id = f"ed25519:{self.user.device_id}"
        return {**obj, "signatures": {self.user.user_id: {key_id: signature}}}

    async def publish(self, one_time_keys: int) -> Any:
        device = self.user.device_id
        device_keys = self.sign(
            {
                "user_id": self.user.user_id,
                "device_id": device,
                "algorithms": ALGORITHMS,
                "keys": {
                    f"curve25519:{device}": self.curve25519,
                    f"ed25519:{device}": self.ed25519,
                },
            }
        )
        self.account.generate_one_time_keys(one_time_keys)
        otks = {
            f"signed_curve25519:{key_id}": self.sign({"key": key.to_base64()})
            for key_id, key in self.account.one_time_keys.items()
        }
        body = await self.user.request(
            "POST", "/keys/upload", {"device_keys": device_keys, "one_time_keys": otks}
        )
        self.account.mark_keys_as_published()
        return body


def check_signed(obj: dict[str, Any], user_id: str, key_id: str, ed25519: str) -> None:
    """What a client does before trusting a key: verify the signature."""
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = vodozemac.Ed25519Signature.from_base64(obj["signatures"][user_id][key_id])
    vodozemac.Ed25519PublicKey.from_base64(ed25519).verify_signature(
        canonical_json(unsigned), signature
    )


async def test_olm_session_megolm_key_share_and_decryption(hs: HomeserverHarness) -> None:
    alice = OlmDevice(await make_user(hs, "alice"))
    bob = OlmDevice(await make_user(hs, "bob"))
    await alice.publish(2)
    uploaded = await bob.publish(5)
    assert uploaded["one_time_key_counts"]["signed_curve25519"] == 5
    room_id = await alice.user.create_room(
        preset="private_chat",
        invite=[bob.user.user_id],
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    await bob.user.join(room_id)
    since = (await bob.user.sync(timeout=0))["next_batch"]

    # alice learns bob's device keys and checks them
    bob_user, bob_device = bob.user.user_id, bob.user.device_id
    queried = await alice.user.request("POST", "/keys/query", {"device_keys": {bob_user: []}})
    bob_keys = queried["device_keys"][bob_user][bob_device]
    bob_ed = bob_keys["keys"][f"ed25519:{bob_device}"]
    bob_curve = bob_keys["keys"][f"curve25519:{bob_device}"]
    check_signed(bob_keys, bob_user, f"ed25519:{bob_device}", bob_ed)

    # ... claims a one-time key, checks it, and opens an Olm session
    claimed = await alice.user.request(
        "POST", "/keys/claim", {"one_time_keys": {bob_user: {bob_device: "signed_curve25519"}}}
    )
    ((_, otk),) = claimed["one_time_keys"][bob_user][bob_device].items()
    check_signed(otk, bob_user, f"ed25519:{bob_device}", bob_ed)
    olm = alice.account.create_outbound_session(
        vodozemac.Curve25519PublicKey.from_base64(bob_curve),
        vodozemac.Curve25519PublicKey.from_base64(otk["key"]),
    )

    # ... shares a Megolm session over to-device
    group = vodozemac.GroupSession()
    room_key = {
        "type": "m.room_key",
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": room_id,
            "session_id": group.session_id,
            "session_key": group.session_key.to_base64(),
        },
        "sender": alice.user.user_id,
        "sender_device": alice.user.device_id,
        "keys": {"ed25519": alice.ed25519},
        "recipient": bob_user,
        "recipient_keys": {"ed25519": bob_ed},
    }
    message_type, ciphertext = olm.encrypt(json.dumps(room_key).encode()).to_parts()
    encrypted_to_device = {
        "algorithm": "m.olm.v1.curve25519-aes-sha2",
        "sender_key": alice.curve25519,
        "ciphertext": {bob_curve: {"type": message_type, "body": encode_base64(ciphertext)}},
    }
    await alice.user.request(
        "PUT",
        "/sendToDevice/m.room.encrypted/olm1",
        {"messages": {bob_user: {bob_device: encrypted_to_device}}},
    )

    # ... and sends an encrypted room message
    payload = {
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": "the eagle lands at dawn"},
        "room_id": room_id,
    }
    await alice.user.request(
        "PUT",
        f"/rooms/{room_id}/send/m.room.encrypted/m1",
        {
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": alice.curve25519,
            "ciphertext": group.encrypt(json.dumps(payload).encode()).to_base64(),
            "session_id": group.session_id,
            "device_id": alice.user.device_id,
        },
    )

    # bob: the to-device message opens the inbound Olm session and gives the room key
    synced = await bob.user.sync(since=since, timeout=0)
    assert synced["device_one_time_keys_count"]["signed_curve25519"] == 4
    (to_device,) = [e for e in synced["to_device"]["events"] if e["type"] == "m.room.encrypted"]
    assert to_device["sender"] == alice.user.user_id
    mine = to_device["content"]["ciphertext"][bob.curve25519]
    pre_key = vodozemac.AnyOlmMessage.from_parts(
        mine["type"], decode_base64(mine["body"])
    ).to_pre_key()
    _, plaintext = bob.account.create_inbound_session(
        vodozemac.Curve25519PublicKey.from_base64(to_device["content"]["sender_key"]), pre_key
    )
    received_key = json.loads(plaintext)
    assert received_key["type"] == "m.room_key"
    assert received_key["recipient_keys"]["ed25519"] == bob.ed25519
    inbound = vodozemac.InboundGroupSession(
        vodozemac.SessionKey(received_key["content"]["session_key"])
    )

    timeline = synced["rooms"]["join"][room_id]["timeline"]["events"]
    (encrypted,) = [e for e in timeline if e["type"] == "m.room.encrypted"]
    decrypted = inbound.decrypt(
        vodozemac.MegolmMessage.from_base64(encrypted["content"]["ciphertext"])
    )
    assert json.loads(decrypted.plaintext) == payload
