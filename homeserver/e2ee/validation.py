"""Shape and signature checks of uploaded keys (pure: no IO).

Spec: client-server "End-to-End Encryption": "Key algorithms", "Device keys",
"Uploading keys", "Cross-signing"; appendices "Signing JSON".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.signing import VerifyKey

from homeserver.errors import BadJson, InvalidParam, MatrixError
from homeserver.events import ServerKey, SignatureError, decode_base64, verify_json

CROSS_SIGNING_USAGES = ("master", "self_signing", "user_signing")


class InvalidSignature(MatrixError):
    def __init__(self, message: str = "Invalid signature") -> None:
        super().__init__(400, "M_INVALID_SIGNATURE", message)


def ed25519_key(public_key_b64: str) -> VerifyKey | None:
    """The verify key of an unpadded base64 ed25519 public key, or None if malformed."""
    try:
        raw = decode_base64(public_key_b64)
        return VerifyKey(raw) if len(raw) == 32 else None
    except (ValueError, TypeError):
        return None


def is_signed_by(obj: Mapping[str, Any], signer: str, key_id: str, public_key_b64: str) -> bool:
    """Whether ``obj`` carries a valid signature of ``signer``'s key ``key_id``.

    Reuses the event core's :func:`verify_json` with a lookup that knows only this
    one key, so the signature must be present under exactly that key ID and verify.
    """
    verify_key = ed25519_key(public_key_b64)
    if verify_key is None:
        return False
    known = ServerKey(verify_key)

    def lookup(entity: str, kid: str) -> ServerKey | None:
        return known if entity == signer and kid == key_id else None

    sigs = obj.get("signatures")
    if not isinstance(sigs, Mapping) or not isinstance(sigs.get(signer), Mapping):
        return False
    if key_id not in sigs[signer]:
        return False
    try:
        verify_json(obj, signer, lookup)
    except (SignatureError, ValueError, TypeError):
        return False
    return True


def _signatures_shape(obj: Mapping[str, Any], what: str) -> None:
    sigs = obj.get("signatures")
    if not isinstance(sigs, dict) or not all(
        isinstance(u, str)
        and isinstance(s, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in s.items())
        for u, s in sigs.items()
    ):
        raise BadJson(f"{what}: 'signatures' must map user IDs to key IDs to signatures")


def check_device_keys(keys: Any, user_id: str, device_id: str) -> dict[str, Any]:
    """Validate uploaded device keys: owner, algorithms, keys and the self-signature.

    Spec: "Uploading keys": the object must include the device's Ed25519 key and be
    signed by it.
    """
    if not isinstance(keys, dict):
        raise BadJson("'device_keys' must be an object")
    if keys.get("user_id") != user_id:
        raise InvalidParam("device_keys.user_id does not match the requesting user")
    if keys.get("device_id") != device_id:
        raise InvalidParam("device_keys.device_id does not match the requesting device")
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise BadJson("device_keys.algorithms must be an array of strings")
    key_map = keys.get("keys")
    if not isinstance(key_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in key_map.items()
    ):
        raise BadJson("device_keys.keys must map key IDs to keys")
    for key_id in key_map:
        algorithm, sep, key_device = key_id.partition(":")
        if not sep or not algorithm or key_device != device_id:
            raise InvalidParam(
                f"device_keys.keys: key ID {key_id!r} is not <algorithm>:{device_id}"
            )
    _signatures_shape(keys, "device_keys")
    ed_key_id = f"ed25519:{device_id}"
    ed_key = key_map.get(ed_key_id)
    if ed_key is None:
        raise InvalidParam(f"device_keys.keys must include {ed_key_id}")
    if ed25519_key(ed_key) is None:
        raise InvalidParam(f"device_keys.keys.{ed_key_id} is not an ed25519 public key")
    if not is_signed_by(keys, user_id, ed_key_id, ed_key):
        raise InvalidSignature("device_keys are not signed by the device's ed25519 key")
    return keys


def split_key_name(name: str, what: str) -> tuple[str, str]:
    """``<algorithm>:<key_id>`` -> (algorithm, key_id)."""
    algorithm, sep, key_id = name.partition(":")
    if not sep or not algorithm or not key_id:
        raise InvalidParam(f"{what}: {name!r} is not <algorithm>:<key_id>")
    return algorithm, key_id


def check_one_time_key(
    name: str, key: Any, user_id: str, device_id: str, device_ed25519: str | None, what: str
) -> tuple[str, str]:
    """Validate one one-time or fallback key; return (algorithm, key_id).

    A key object (``signed_curve25519``) must carry ``key`` and a signature by the
    device's ed25519 key; a bare string is an unsigned key (``curve25519``).
    """
    algorithm, key_id = split_key_name(name, what)
    if isinstance(key, str):
        if algorithm.startswith("signed_"):
            raise BadJson(f"{what}: {name} must be a signed key object")
        return algorithm, key_id
    if not isinstance(key, dict):
        raise BadJson(f"{what}: {name} must be a string or a key object")
    if not isinstance(key.get("key"), str):
        raise BadJson(f"{what}: {name}.key must be a string")
    if "fallback" in key and not isinstance(key["fallback"], bool):
        raise BadJson(f"{what}: {name}.fallback must be a boolean")
    _signatures_shape(key, f"{what}: {name}")
    if device_ed25519 is None:
        raise InvalidParam(f"{what}: upload the device keys before signed keys")
    if not is_signed_by(key, user_id, f"ed25519:{device_id}", device_ed25519):
        raise InvalidSignature(f"{what}: {name} is not signed by the device's ed25519 key")
    return algorithm, key_id


def check_cross_signing_key(key: Any, user_id: str, usage: str, field: str) -> str:
    """Validate a cross-signing key's shape; return its unpadded base64 public key."""
    if not isinstance(key, dict):
        raise BadJson(f"'{field}' must be an object")
    if key.get("user_id") != user_id:
        raise InvalidParam(f"{field}.user_id does not match the requesting user")
    usages = key.get("usage")
    if not isinstance(usages, list) or not all(isinstance(u, str) for u in usages):
        raise BadJson(f"{field}.usage must be an array of strings")
    if usage not in usages:
        raise InvalidParam(f"{field}.usage must include {usage!r}")
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise InvalidParam(f"{field}.keys must hold exactly one key")
    ((key_id, public_key),) = keys.items()
    if not isinstance(key_id, str) or not isinstance(public_key, str):
        raise BadJson(f"{field}.keys must map a key ID to a key")
    algorithm, _, key_name = key_id.partition(":")
    if algorithm != "ed25519" or key_name != public_key or ed25519_key(public_key) is None:
        raise InvalidParam(f"{field}.keys must be one ed25519:<public key> entry")
    if "signatures" in key:
        _signatures_shape(key, field)
    return public_key


def public_key_of(cross_signing_key: Mapping[str, Any]) -> str:
    """The public key of a stored (already validated) cross-signing key."""
    ((_, public_key),) = cross_signing_key["keys"].items()
    return str(public_key)


def without_signatures(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
