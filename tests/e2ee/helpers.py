"""Helpers for e2ee tests: devices that sign their keys for real (ed25519 via signedjson),
cross-signing identities, and clients with real Olm/Megolm sessions (vodozemac) that
share room keys over to-device messages and decrypt each other's room messages."""

from __future__ import annotations

import copy
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey as NaclSigningKey
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from signedjson.types import SigningKey

from homeserver.events import canonical_json, decode_base64, encode_base64
from homeserver.streams import SyncToken
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

try:
    import vodozemac
except ImportError:  # a test dependency (setup.cfg); the Olm tests skip without it
    vodozemac = None

ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]
ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


def random_key() -> str:
    return encode_base64(os.urandom(32))


def signing_key_named_by_public_key() -> tuple[SigningKey, str]:
    """An ed25519 key whose key ID is its own public key (cross-signing style)."""
    key = generate_signing_key("tmp")
    public = encode_verify_key_base64(get_verify_key(key))
    key.version = public
    return key, public


def signed(obj: dict[str, Any], user_id: str, key: SigningKey) -> dict[str, Any]:
    return dict(sign_json(copy.deepcopy(obj), user_id, key))


@dataclass
class KeyedDevice:
    """A logged-in device with an ed25519 device key."""

    user: User
    key: SigningKey = field(init=False)
    curve25519: str = field(default_factory=random_key)
    counter: int = 0

    def __post_init__(self) -> None:
        self.key = generate_signing_key(self.user.device_id)

    @property
    def user_id(self) -> str:
        return self.user.user_id

    @property
    def device_id(self) -> str:
        return self.user.device_id

    @property
    def ed25519(self) -> str:
        return encode_verify_key_base64(get_verify_key(self.key))

    def device_keys(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ALGORITHMS,
            "keys": {
                f"curve25519:{self.device_id}": self.curve25519,
                f"ed25519:{self.device_id}": self.ed25519,
            },
        }
        body.update(overrides)
        return signed(body, self.user_id, self.key)

    def one_time_keys(self, n: int, *, fallback: bool = False) -> dict[str, Any]:
        out = {}
        for _ in range(n):
            self.counter += 1
            body: dict[str, Any] = {"key": random_key()}
            if fallback:
                body["fallback"] = True
            out[f"signed_curve25519:K{self.counter:05d}"] = signed(body, self.user_id, self.key)
        return out

    async def upload(self, expect: int = 200, **body: Any) -> Any:
        return await self.user.request("POST", "/keys/upload", body, expect=expect)


async def make_device(hs: HomeserverHarness, localpart: str) -> KeyedDevice:
    return KeyedDevice(await make_user(hs, localpart))


async def login_again(hs: HomeserverHarness, user: User, password: str = "correct horse") -> User:
    """A second device of the same user."""
    resp = await hs.client.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.user_id},
            "password": password,
        },
    )
    body = await resp.json()
    assert resp.status == 200, body
    return User(hs, body["user_id"], body["access_token"], body["device_id"])


def current_token(hs: HomeserverHarness) -> str:
    """The server's current sync token (events and device list positions)."""
    server = hs.server
    return SyncToken(
        events=server.client.persister.events_stream.current(),
        device_lists=server.client.e2ee.device_lists.current_position(),
    ).serialize()


async def query(user: User, *user_ids: str) -> Any:
    return await user.request("POST", "/keys/query", {"device_keys": {u: [] for u in user_ids}})


async def changes(user: User, since: str, upto: str) -> Any:
    return await user.request("GET", "/keys/changes", params={"from": since, "to": upto})


def nacl_public(key: NaclSigningKey) -> str:
    return encode_base64(bytes(key.verify_key))


# -- cross-signing ------------------------------------------------------------------


class CrossSigning:
    """A user's master, self-signing and user-signing keys (private halves held here)."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.master, self.master_pub = signing_key_named_by_public_key()
        self.ssk, self.ssk_pub = signing_key_named_by_public_key()
        self.usk, self.usk_pub = signing_key_named_by_public_key()

    def key(self, usage: str, public: str, signer: SigningKey | None = None) -> dict[str, Any]:
        body = {"user_id": self.user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}
        return signed(body, self.user_id, signer) if signer is not None else body

    def upload_body(self) -> dict[str, Any]:
        return {
            "master_key": self.key("master", self.master_pub),
            "self_signing_key": self.key("self_signing", self.ssk_pub, self.master),
            "user_signing_key": self.key("user_signing", self.usk_pub, self.master),
        }


def password_auth(session: str, user_id: str, password: str = "correct horse") -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "session": session,
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }


async def upload_cross_signing(user: User, cs: CrossSigning) -> bool:
    """Upload ``cs`` as a client does: without auth first, then through the password
    stage of User-Interactive Authentication when challenged. True when challenged."""
    body = cs.upload_body()
    challenge = await user.request("POST", "/keys/device_signing/upload", body, expect=None)
    if challenge == {}:
        return False  # accepted: no master key was uploaded before (spec)
    assert ["m.login.password"] in [f["stages"] for f in challenge["flows"]], challenge
    body["auth"] = password_auth(challenge["session"], user.user_id)
    await user.request("POST", "/keys/device_signing/upload", body)
    return True


# -- real Olm/Megolm clients (vodozemac) --------------------------------------------

_txn = itertools.count()


class OlmDevice:
    """A logged-in device with a vodozemac Olm account."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.account = vodozemac.Account()

    @property
    def user_id(self) -> str:
        return self.user.user_id

    @property
    def device_id(self) -> str:
        return self.user.device_id

    @property
    def curve25519(self) -> str:
        return str(self.account.curve25519_key.to_base64())

    @property
    def ed25519(self) -> str:
        return str(self.account.ed25519_key.to_base64())

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        signature = self.account.sign(canonical_json(unsigned)).to_base64()
        key_id = f"ed25519:{self.device_id}"
        return {**obj, "signatures": {self.user_id: {key_id: signature}}}

    def device_keys(self) -> dict[str, Any]:
        return self.sign(
            {
                "user_id": self.user_id,
                "device_id": self.device_id,
                "algorithms": ALGORITHMS,
                "keys": {
                    f"curve25519:{self.device_id}": self.curve25519,
                    f"ed25519:{self.device_id}": self.ed25519,
                },
            }
        )

    async def publish(self, one_time_keys: int) -> Any:
        """Upload the device keys and ``one_time_keys`` new signed one-time keys."""
        self.account.generate_one_time_keys(one_time_keys)
        otks = {
            f"signed_curve25519:{key_id}": self.sign({"key": key.to_base64()})
            for key_id, key in self.account.one_time_keys.items()
        }
        body = await self.user.request(
            "POST", "/keys/upload", {"device_keys": self.device_keys(), "one_time_keys": otks}
        )
        self.account.mark_keys_as_published()
        return body


async def next_batch(device: OlmDevice) -> str:
    return str((await device.user.sync(timeout=0))["next_batch"])


def check_signed(obj: dict[str, Any], user_id: str, key_id: str, ed25519: str) -> None:
    """What a client does before trusting a key: verify the signature (raises if bad)."""
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = vodozemac.Ed25519Signature.from_base64(obj["signatures"][user_id][key_id])
    vodozemac.Ed25519PublicKey.from_base64(ed25519).verify_signature(
        canonical_json(unsigned), signature
    )


async def share_megolm_key(
    sender: OlmDevice, recipient: OlmDevice, room_id: str, group: Any = None
) -> Any:
    """``sender`` checks the keys of ``recipient``'s device, claims one of its one-time
    keys, opens an Olm session and sends it the key of the Megolm session ``group`` (a
    new one when None) in an Olm-encrypted ``m.room_key``; returns the group session."""
    user, device = recipient.user_id, recipient.device_id
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
    if group is None:
        group = vodozemac.GroupSession()
    room_key = {
        "type": "m.room_key",
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": room_id,
            "session_id": group.session_id,
            "session_key": group.session_key.to_base64(),
        },
        "sender": sender.user_id,
        "sender_device": sender.device_id,
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
    """Send ``text`` Megolm-encrypted with ``group``; returns the plaintext event."""
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
            "device_id": sender.device_id,
        },
    )
    return payload


def open_room_key(recipient: OlmDevice, synced: dict[str, Any], sender: OlmDevice) -> Any:
    """Open the Olm pre-key message ``sender`` sent in this /sync and check the
    ``m.room_key`` in it; returns the inbound Megolm session."""
    (to_device,) = [
        e
        for e in synced["to_device"]["events"]
        if e["type"] == "m.room.encrypted" and e["sender"] == sender.user_id
    ]
    assert to_device["content"]["sender_key"] == sender.curve25519
    mine = to_device["content"]["ciphertext"][recipient.curve25519]
    pre_key = vodozemac.AnyOlmMessage.from_parts(
        mine["type"], decode_base64(mine["body"])
    ).to_pre_key()
    _, plaintext = recipient.account.create_inbound_session(
        vodozemac.Curve25519PublicKey.from_base64(sender.curve25519), pre_key
    )
    room_key = json.loads(plaintext)
    assert room_key["type"] == "m.room_key"
    assert room_key["sender"] == sender.user_id
    assert room_key["keys"]["ed25519"] == sender.ed25519
    assert room_key["recipient_keys"]["ed25519"] == recipient.ed25519
    return vodozemac.InboundGroupSession(vodozemac.SessionKey(room_key["content"]["session_key"]))


def decrypt_timeline(inbound: Any, synced: dict[str, Any], room_id: str) -> list[Any]:
    """The plaintext of the room's encrypted timeline events of ``inbound``'s session."""
    timeline = synced["rooms"]["join"][room_id]["timeline"]["events"]
    return [
        json.loads(
            inbound.decrypt(
                vodozemac.MegolmMessage.from_base64(e["content"]["ciphertext"])
            ).plaintext
        )
        for e in timeline
        if e["type"] == "m.room.encrypted" and e["content"]["session_id"] == inbound.session_id
    ]


def receive(
    recipient: OlmDevice, synced: dict[str, Any], room_id: str, sender: OlmDevice
) -> tuple[Any, list[Any]]:
    """Take ``sender``'s room key from this /sync and decrypt the room's messages of
    that session; returns the inbound session (for later messages) and the plaintexts."""
    inbound = open_room_key(recipient, synced, sender)
    return inbound, decrypt_timeline(inbound, synced, room_id)


def check_cross_signed(
    queried: dict[str, Any], user_id: str, device_id: str, master_pub: str
) -> dict[str, Any]:
    """What a client that has verified ``user_id``'s master key does before trusting a
    device in a /keys/query answer: the self-signing key must be signed by that master
    key, and the device keys by the self-signing key. Returns the device keys."""
    master = queried["master_keys"][user_id]
    assert master["keys"] == {f"ed25519:{master_pub}": master_pub}
    ssk = queried["self_signing_keys"][user_id]
    ((ssk_key_id, ssk_pub),) = ssk["keys"].items()
    check_signed(ssk, user_id, f"ed25519:{master_pub}", master_pub)
    device = dict(queried["device_keys"][user_id][device_id])
    check_signed(device, user_id, ssk_key_id, ssk_pub)
    check_signed(device, user_id, f"ed25519:{device_id}", device["keys"][f"ed25519:{device_id}"])
    return device


async def sign_new_device(new: OlmDevice) -> CrossSigning:
    """On ``new``, the user resets their cross-signing identity (the server asks for
    User-Interactive Authentication: a master key exists) and its self-signing key
    signs ``new``."""
    cs = CrossSigning(new.user_id)
    assert await upload_cross_signing(new.user, cs)
    by_ssk = signed(new.device_keys(), new.user_id, cs.ssk)
    result = await new.user.request(
        "POST", "/keys/signatures/upload", {new.user_id: {new.device_id: by_ssk}}
    )
    assert result["failures"] == {}
    return cs
