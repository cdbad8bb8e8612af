"""Content hashes, reference hashes and event IDs.

Spec: server-server-api "Calculating the content hash for an event",
"Calculating the reference hash for an event"; rooms ``v1-event-ids``, v3 "Event IDs",
``v4-event-ids``.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Mapping
from typing import Any

from .canonical import canonical_json, decode_base64, encode_base64
from .redaction import redact
from .room_versions import EventIdFormat, RoomVersion

_LOCALPART_ALPHABET = string.ascii_letters + string.digits


def content_hash(pdu: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical JSON of ``pdu`` without unsigned, signatures and hashes."""
    stripped = {k: v for k, v in pdu.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(canonical_json(stripped)).digest()


def signing_bytes(redacted_pdu: Mapping[str, Any]) -> bytes:
    """Canonical JSON of an already-redacted PDU without signatures and unsigned.

    These bytes are both what the origin signs (appendices "Signing JSON") and what
    the reference hash is computed over, so :class:`~.event.Event` caches them.
    """
    stripped = {k: v for k, v in redacted_pdu.items() if k not in ("signatures", "unsigned")}
    return canonical_json(stripped)


def reference_hash(pdu: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """SHA-256 over the redacted PDU without signatures and unsigned."""
    return hashlib.sha256(signing_bytes(redact(pdu, room_version))).digest()


def event_id_from_reference_hash(ref_hash: bytes, room_version: RoomVersion) -> str:
    """Format a reference hash as an event ID (v3: standard base64, v4+: URL-safe)."""
    fmt = room_version.event_id_format
    if fmt is EventIdFormat.V1:
        raise ValueError(f"room version {room_version} does not derive event IDs from hashes")
    return "$" + encode_base64(ref_hash, urlsafe=fmt is EventIdFormat.V4)


def compute_event_id(pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The event ID of ``pdu``: the ``event_id`` field for v1/v2, else the reference hash."""
    if room_version.event_id_format is EventIdFormat.V1:
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError("v1/v2 event has no event_id")
        return event_id
    return event_id_from_reference_hash(reference_hash(pdu, room_version), room_version)


def generate_v1_event_id(server_name: str, length: int = 18) -> str:
    """A fresh ``$opaque:server_name`` ID for room versions 1 and 2 (rooms v1 "Event IDs")."""
    opaque = "".join(secrets.choice(_LOCALPART_ALPHABET) for _ in range(length))
    return f"${opaque}:{server_name}"


def check_content_hash(pdu: Mapping[str, Any]) -> bool:
    """Whether ``hashes.sha256`` of ``pdu`` matches its computed content hash.

    Spec: s2s "Validating hashes and signatures on received events". A missing or
    undecodable hash counts as a mismatch.
    """
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    expected = hashes.get("sha256")
    if not isinstance(expected, str):
        return False
    try:
        decoded = decode_base64(expected)
    except ValueError:
        return False
    return secrets.compare_digest(decoded, content_hash(pdu))


def add_content_hash(pdu: dict[str, Any]) -> None:
    """Set ``pdu["hashes"]["sha256"]`` (s2s "Adding hashes and signatures to outgoing events")."""
    pdu["hashes"] = {"sha256": encode_base64(content_hash(pdu))}
