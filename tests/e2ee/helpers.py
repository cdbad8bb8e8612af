"""Helpers for e2ee tests: devices that sign their keys for real (ed25519 via signedjson)."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey as NaclSigningKey
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from signedjson.types import SigningKey

from homeserver.events import encode_base64
from homeserver.streams import SyncToken
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]


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
