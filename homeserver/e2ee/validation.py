"""Checks of uploaded keys (pure: no IO).

Spec: client-server "End-to-End Encryption": "Key algorithms", "Device keys",
"Uploading keys", "Cross-signing"; appendices "Signing JSON". Device, one-time and
fallback keys are checked for shape only (clients verify their signatures);
cross-signing keys and the signatures uploaded over keys are verified, since the
server decides with them what it stores and whom it tells.
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


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _signatures_shape(obj: Mapping[str, Any], what: str) -> None:
    sigs = obj.get("signatures")
    if not isinstance(sigs, dict) or not all(
        isinstance(u, str) and _is_str_map(s) for u, s in sigs.items()
    ):
        raise BadJson(f"{what}: 'signatures' must map user IDs to key IDs to signatures")


def check_device_keys(keys: Any, user_id: str, device_id: str) -> dict[str, Any]:
    """Check the shape of uploaded device keys and that they name the uploader.

    Spec: "Uploading keys" (the ``DeviceKeys`` object): ``user_id``, ``device_id``,
    ``algorithms``, ``keys`` and ``signatures`` are required. The server stores the
    object as uploaded: key names, key encodings and signatures are the clients' to
    check (they verify the device's self-signature before trusting the keys), and
    Synapse accepts keys of algorithms it does not know, so neither do we judge them.
    Other fields are kept.
    """
    if not isinstance(keys, dict):
        raise BadJson("'device_keys' must be an object")
    for field in ("user_id", "device_id"):
        if not isinstance(keys.get(field), str):
            raise BadJson(f"device_keys.{field} must be a string")
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise BadJson("device_keys.algorithms must be an array of strings")
    if not _is_str_map(keys.get("keys")):
        raise BadJson("device_keys.keys must map key IDs to keys")
    _signatures_shape(keys, "device_keys")
    if keys["user_id"] != user_id:
        raise BadJson("device_keys.user_id does not match the requesting user")
    if keys["device_id"] != device_id:
        raise BadJson("device_keys.device_id does not match the requesting device")
    return keys


def split_key_name(name: str, what: str) -> tuple[str, str]:
    """``<algorithm>:<key_id>`` -> (algorithm, key_id); exactly one colon."""
    parts = name.split(":")
    if len(parts) != 2:
        raise BadJson(f"{what}: {name!r} is not <algorithm>:<key_id>")
    return parts[0], parts[1]


def check_one_time_key(name: str, key: Any, what: str) -> tuple[str, str]:
    """Check the shape of one one-time or fallback key; return (algorithm, key_id).

    A key is a string (e.g. ``curve25519``) or a key object (``signed_curve25519``)
    with ``key``, ``signatures`` and an optional ``fallback`` flag. As with device
    keys, the signature is the claiming client's to verify.
    """
    algorithm, key_id = split_key_name(name, what)
    if isinstance(key, str):
        return algorithm, key_id
    if not isinstance(key, dict):
        raise BadJson(f"{what}: {name} must be a string or a key object")
    if not isinstance(key.get("key"), str):
        raise BadJson(f"{what}: {name}.key must be a string")
    if key.get("fallback") is not None and not isinstance(key["fallback"], bool):
        raise BadJson(f"{what}: {name}.fallback must be a boolean")
    _signatures_shape(key, f"{what}: {name}")
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
