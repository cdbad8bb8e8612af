"""Server key responses: building ours, checking theirs (server-server API "Retrieving
server keys", "Publishing Keys"; OpenAPI ``keys.yaml``).

A key response lists the server's current ``verify_keys`` (valid for requests and
events until ``valid_until_ts``) and its ``old_verify_keys`` (valid for events up to
their ``expired_ts``), and is signed by the server itself. A received response is
only used once that self-signature verifies with a key it lists, and its validity is
capped at 7 days from now, as the spec requires ("the lesser of this field and 7
days into the future").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nacl.signing import VerifyKey

from homeserver.config import OldSigningKey
from homeserver.events.canonical import decode_base64, encode_base64
from homeserver.events.errors import SignatureError
from homeserver.events.signing import ServerKey, SigningKey, key_id_of, sign_json, verify_json

MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000


class KeyResponseError(ValueError):
    """A key response that cannot be used (malformed, wrong server, bad signature)."""


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    key: str  # unpadded base64
    valid_until_ts: int
    expired: bool

    def server_key(self) -> ServerKey:
        return ServerKey(VerifyKey(decode_base64(self.key)), self.valid_until_ts)


@dataclass(frozen=True, slots=True)
class VerifiedKeyResponse:
    server_name: str
    valid_until_ts: int  # as capped for our use
    keys: Mapping[str, VerifiedKey]
    response: dict[str, Any]  # as received, signatures included


def own_key_response(
    server_name: str,
    signing_key: SigningKey,
    old_keys: Mapping[str, OldSigningKey],
    valid_until_ts: int,
) -> dict[str, Any]:
    """Our ``GET /_matrix/key/v2/server`` answer, signed by our key."""
    verify_key = signing_key.verify_key.encode()
    response = {
        "server_name": server_name,
        "valid_until_ts": valid_until_ts,
        "verify_keys": {key_id_of(signing_key): {"key": encode_base64(verify_key)}},
        "old_verify_keys": {
            key_id: {"key": old.key, "expired_ts": old.expired_ts}
            for key_id, old in old_keys.items()
        },
    }
    return sign_json(response, server_name, signing_key)


def _verify_key(key_id: str, entry: Any, what: str) -> str:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str):
        raise KeyResponseError(f"{what} {key_id} has no key")
    try:
        raw = decode_base64(entry["key"])
    except ValueError:
        raise KeyResponseError(f"{what} {key_id} is not base64") from None
    if len(raw) != 32:
        raise KeyResponseError(f"{what} {key_id} is not an ed25519 key")
    return encode_base64(raw)


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeyResponseError(f"{what} must be an integer")
    return value


def verify_key_response(response: Any, server_name: str, now_ms: int) -> VerifiedKeyResponse:
    """Check a key response of ``server_name`` and its self-signature.

    The response must name ``server_name``, list its keys well-formed, and carry at
    least one signature of ``server_name`` by a key in its ``verify_keys``; every such
    signature must verify. Keys of algorithms other than ed25519 are ignored.
    Raises :class:`KeyResponseError`.
    """
    if not isinstance(response, dict):
        raise KeyResponseError("key response is not a JSON object")
    if response.get("server_name") != server_name:
        raise KeyResponseError(f"key response is not for {server_name}")
    valid_until = _int(response.get("valid_until_ts"), "valid_until_ts")
    verify_keys = response.get("verify_keys")
    if not isinstance(verify_keys, Mapping):
        raise KeyResponseError("verify_keys must be an object")
    old_keys = response.get("old_verify_keys", {})
    if not isinstance(old_keys, Mapping):
        raise KeyResponseError("old_verify_keys must be an object")
    effective_until = min(valid_until, now_ms + MAX_KEY_VALIDITY_MS)
    keys: dict[str, VerifiedKey] = {}
    for key_id, entry in old_keys.items():
        if isinstance(key_id, str) and key_id.startswith("ed25519:"):
            expired_ts = _int(
                entry.get("expired_ts") if isinstance(entry, Mapping) else None,
                f"old_verify_keys.{key_id}.expired_ts",
            )
            b64 = _verify_key(key_id, entry, "old verify key")
            keys[key_id] = VerifiedKey(b64, min(expired_ts, effective_until), True)
    current: dict[str, ServerKey] = {}
    for key_id, entry in verify_keys.items():
        if isinstance(key_id, str) and key_id.startswith("ed25519:"):
            b64 = _verify_key(key_id, entry, "verify key")
            keys[key_id] = VerifiedKey(b64, effective_until, False)
            current[key_id] = ServerKey(VerifyKey(decode_base64(b64)))
    sigs = response.get("signatures")
    own_sigs = sigs.get(server_name) if isinstance(sigs, Mapping) else None
    if not isinstance(own_sigs, Mapping) or not any(k in current for k in own_sigs):
        raise KeyResponseError(f"key response is not signed by {server_name} with its keys")
    try:
        verify_json(response, server_name, lambda _server, key_id: current.get(key_id))
    except SignatureError as exc:
        raise KeyResponseError(f"key response of {server_name}: {exc}") from None
    return VerifiedKeyResponse(server_name, effective_until, keys, response)
