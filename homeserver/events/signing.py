"""Ed25519 signing and verification of JSON and events.

Spec: appendices "Signing JSON", "Checking for a Signature"; s2s "Signing Events",
"Validating hashes and signatures on received events".

Verification is split so callers can batch key fetching: :func:`required_signers`
names the servers whose signatures an event needs and :func:`key_ids_to_fetch`
the keys to look up; :func:`verify_event_signatures` then checks with a
caller-supplied ``key_lookup`` and returns the problems (empty list = valid).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from signedjson.sign import sign_json as _signedjson_sign
from signedjson.types import SigningKey as SigningKey

from .canonical import canonical_json, decode_base64, encode_base64
from .errors import SignatureError
from .event import Event
from .hashing import signing_bytes
from .identifiers import server_name_of
from .redaction import redact
from .room_versions import RoomVersion


@dataclass(frozen=True, slots=True)
class ServerKey:
    """A server's verify key and, if known, the end of its validity (ms since epoch)."""

    verify_key: VerifyKey
    valid_until_ts: int | None = None


KeyLookup = Callable[[str, str], ServerKey | None]
"""``key_lookup(server_name, key_id)`` -> the key, or None when unknown."""


@dataclass(frozen=True, slots=True)
class SignatureFailure:
    """Why a required server's signature is not acceptable."""

    server_name: str
    reason: str


def key_id_of(signing_key: SigningKey) -> str:
    # one string shared by every signature the key makes (events keep theirs cached)
    return sys.intern(f"{signing_key.alg}:{signing_key.version}")


def sign_json(obj: Mapping[str, Any], entity: str, signing_key: SigningKey) -> dict[str, Any]:
    """Return a copy of ``obj`` signed by ``entity`` (appendices "Signing JSON")."""
    copy = dict(obj)
    if "signatures" in copy:
        copy["signatures"] = {k: dict(v) for k, v in copy["signatures"].items()}
    result: dict[str, Any] = _signedjson_sign(copy, entity, signing_key)
    return result


def verify_json(obj: Mapping[str, Any], entity: str, key_lookup: KeyLookup) -> None:
    """Check ``obj`` carries a valid ed25519 signature from ``entity``.

    Spec: appendices "Checking for a Signature". Raises :class:`SignatureError`.
    Succeeds if at least one known ed25519 key of ``entity`` verifies.
    """
    sigs = obj.get("signatures")
    if not isinstance(sigs, Mapping) or not isinstance(sigs.get(entity), Mapping):
        raise SignatureError(f"no signature from {entity}")
    message = canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})
    problem = _check_entity(sigs[entity], entity, message, key_lookup, None)
    if problem is not None:
        raise SignatureError(problem)


def _check_entity(
    entity_sigs: Mapping[str, Any],
    entity: str,
    message: bytes,
    key_lookup: KeyLookup,
    at_ts: int | None,
) -> str | None:
    """None if some known, unexpired ed25519 key of ``entity`` verifies ``message``."""
    known = 0
    for key_id, sig_b64 in entity_sigs.items():
        if not isinstance(key_id, str) or not key_id.startswith("ed25519:"):
            continue
        key = key_lookup(entity, key_id)
        if key is None:
            continue
        if at_ts is not None and key.valid_until_ts is not None and key.valid_until_ts < at_ts:
            continue
        known += 1
        try:
            key.verify_key.verify(message, decode_base64(sig_b64))
        except (BadSignatureError, ValueError, TypeError):
            return f"bad signature from {entity} key {key_id}"
    if known == 0:
        return f"no known valid key signature from {entity}"
    return None


def required_signers(event: Event) -> set[str]:
    """Servers whose signatures ``event`` needs.

    Spec: s2s "Validating hashes and signatures on received events" and the v8+ auth
    rule on ``join_authorised_via_users_server``:

    * the sender's server, unless the event is an invite from a third-party invite
      (then the sending server may differ; the ``signed`` block is checked by auth);
    * v1/v2: the server in the event ID;
    * v8+: for member events naming ``join_authorised_via_users_server``, that
      user's server (auth rule "validly signed by the homeserver of the user ID").
    """
    rv = event.room_version
    servers: set[str] = set()
    content = event.content
    is_3pid_invite = (
        event.type == "m.room.member"
        and event.membership == "invite"
        and "third_party_invite" in content
    )
    if not is_3pid_invite:
        servers.add(server_name_of(event.sender))
    if rv.event_id_domain_signature:
        servers.add(server_name_of(event.event_id))
    if rv.restricted_joins and event.type == "m.room.member":
        authoriser = content.get("join_authorised_via_users_server")
        if isinstance(authoriser, str) and ":" in authoriser:
            servers.add(server_name_of(authoriser))
    return servers


def key_ids_to_fetch(event: Event) -> dict[str, set[str]]:
    """The ed25519 key IDs present in ``event``'s signatures for its required signers."""
    out: dict[str, set[str]] = {}
    sigs = event.signatures
    for server in required_signers(event):
        entity = sigs.get(server)
        ids = set()
        if isinstance(entity, Mapping):
            ids = {k for k in entity if isinstance(k, str) and k.startswith("ed25519:")}
        out[server] = ids
    return out


def verify_event_signatures(event: Event, key_lookup: KeyLookup) -> list[SignatureFailure]:
    """Verify the signatures ``event`` needs; return the failures (empty = valid).

    The redacted canonical form is cached on the event, so checking several servers
    (or re-checking) does not re-encode. From room version 5, keys whose
    ``valid_until_ts`` is before the event's ``origin_server_ts`` are skipped
    (rooms ``v5-signing-requirements``).
    """
    failures: list[SignatureFailure] = []
    try:
        servers = required_signers(event)
    except ValueError as exc:
        return [SignatureFailure("", f"malformed identifier: {exc}")]
    sigs = event.signatures
    at_ts = event.origin_server_ts if event.room_version.enforce_key_validity else None
    message: bytes | None = None
    for server in sorted(servers):
        entity = sigs.get(server)
        if not isinstance(entity, Mapping):
            failures.append(SignatureFailure(server, f"no signature from {server}"))
            continue
        if message is None:
            message = event.signing_bytes()
        problem = _check_entity(entity, server, message, key_lookup, at_ts)
        if problem is not None:
            failures.append(SignatureFailure(server, problem))
    return failures


def event_signature(redacted_signing_bytes: bytes, signing_key: SigningKey) -> tuple[str, str]:
    """(key_id, unpadded base64 signature) over the redacted signing bytes."""
    signed = signing_key.sign(redacted_signing_bytes)
    return key_id_of(signing_key), encode_base64(signed.signature)


def sign_pdu(pdu: dict[str, Any], event: Event, server_name: str, signing_key: SigningKey) -> None:
    """Add ``server_name``'s signature of ``event`` to ``pdu`` in place.

    Spec: s2s "Adding hashes and signatures to outgoing events": the signature is over
    the redacted event, and is copied back into the full event.
    """
    key_id, sig = event_signature(event.signing_bytes(), signing_key)
    sigs = pdu.setdefault("signatures", {})
    sigs.setdefault(server_name, {})[key_id] = sig


def sign_event_pdu(
    pdu: dict[str, Any], room_version: RoomVersion, server_name: str, signing_key: SigningKey
) -> None:
    """Sign a PDU dict in place (its ``hashes`` must already be set).

    The same as :func:`sign_pdu` for callers without an :class:`Event` (the redacted
    form is computed here rather than taken from the event's cache).
    """
    key_id, sig = event_signature(signing_bytes(redact(pdu, room_version)), signing_key)
    sigs = pdu.setdefault("signatures", {})
    sigs.setdefault(server_name, {})[key_id] = sig


def verify_signed_with_public_key(obj: Mapping[str, Any], public_key_b64: str) -> bool:
    """Whether any signature in ``obj['signatures']`` verifies under ``public_key_b64``.

    Used for third-party invite ``signed`` blocks, whose keys come from the
    ``m.room.third_party_invite`` event rather than from a server (rooms auth rule
    "If any signature in ``signed`` matches any public key ...").
    """
    sigs = obj.get("signatures")
    if not isinstance(sigs, Mapping):
        return False
    try:
        key = VerifyKey(decode_base64(public_key_b64))
    except (ValueError, TypeError):
        return False
    message = canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})
    for entity_sigs in sigs.values():
        if not isinstance(entity_sigs, Mapping):
            continue
        for key_id, sig in entity_sigs.items():
            if not isinstance(key_id, str) or not key_id.startswith("ed25519:"):
                continue
            try:
                key.verify(message, decode_base64(sig))
            except (BadSignatureError, ValueError, TypeError):
                continue
            return True
    return False
