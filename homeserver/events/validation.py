"""Format validation of a received PDU (step 1 of s2s "Checks performed on receipt").

Spec: the ``pdu_v1`` .. ``pdu_v12`` definitions (required fields, at most 20
``prev_events`` and 10 ``auth_events``, depth limits), client-server "Size limits"
(65536 bytes of canonical JSON; 255 bytes for ``sender``, ``room_id``,
``state_key``, ``type``, ``event_id``) and rooms v6 "Canonical JSON" (strict JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .canonical import canonical_json_size, check_strict_json
from .errors import EventValidationError, InvalidIdentifier
from .identifiers import MAX_ID_BYTES, EventID, RoomID, UserID
from .room_versions import EventIdFormat, RoomVersion

MAX_PDU_BYTES = 65536
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
MAX_DEPTH_STRICT = 2**53 - 1
MAX_DEPTH_LEGACY = 2**63 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(pdu: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in pdu:
        raise EventValidationError(f"missing required field {key!r}")
    value = pdu[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EventValidationError(f"field {key!r} has the wrong type")
    return value


def _check_bytes(value: str, key: str) -> None:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise EventValidationError(f"{key} exceeds {MAX_ID_BYTES} bytes")


def validate_pdu(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Raise :class:`EventValidationError` unless ``pdu`` has its version's event format.

    Checks the required fields and their types, the reference lists' shape and
    lengths, identifier grammar (historical user IDs accepted), the per-key and total
    size limits, the depth limit, and for v6+ strict canonical JSON values.
    """
    rv = room_version
    if not isinstance(pdu, Mapping):
        raise EventValidationError("PDU is not an object")
    event_type = _require(pdu, "type", str)
    sender = _require(pdu, "sender", str)
    _require(pdu, "content", dict)
    _require(pdu, "hashes", dict)
    _require(pdu, "signatures", dict)
    ts = _require(pdu, "origin_server_ts", int)
    depth = _require(pdu, "depth", int)
    _check_bytes(event_type, "type")
    _check_bytes(sender, "sender")
    try:
        UserID.parse(sender)
    except InvalidIdentifier as exc:
        raise EventValidationError(f"invalid sender: {exc}") from exc
    if "state_key" in pdu:
        state_key = pdu["state_key"]
        if not isinstance(state_key, str):
            raise EventValidationError("state_key is not a string")
        _check_bytes(state_key, "state_key")
    if not isinstance(pdu["hashes"].get("sha256"), str):
        raise EventValidationError("hashes.sha256 is missing")
    limit = MAX_DEPTH_STRICT if rv.strict_canonical_json else MAX_DEPTH_LEGACY
    if depth < 0 or depth > limit:
        raise EventValidationError("depth out of range")
    if ts < 0:
        raise EventValidationError("origin_server_ts is negative")

    is_v12_create = rv.room_id_from_create_event and event_type == "m.room.create"
    if is_v12_create:
        if "room_id" in pdu:
            raise EventValidationError("m.room.create must not have a room_id in this version")
    else:
        room_id = _require(pdu, "room_id", str)
        try:
            RoomID.parse(room_id, rv)
        except InvalidIdentifier as exc:
            raise EventValidationError(f"invalid room_id: {exc}") from exc

    if rv.event_id_format is EventIdFormat.V1:
        event_id = _require(pdu, "event_id", str)
        try:
            EventID.parse(event_id, rv)
        except InvalidIdentifier as exc:
            raise EventValidationError(f"invalid event_id: {exc}") from exc
    _check_refs(pdu, "prev_events", MAX_PREV_EVENTS, rv)
    _check_refs(pdu, "auth_events", MAX_AUTH_EVENTS, rv)
    if not rv.redacts_in_content and "redacts" in pdu and not isinstance(pdu["redacts"], str):
        raise EventValidationError("redacts is not a string")

    if rv.strict_canonical_json:
        check_strict_json(pdu)
    try:
        size = canonical_json_size(pdu)
    except (TypeError, ValueError) as exc:
        raise EventValidationError(f"not encodable as canonical JSON: {exc}") from exc
    if size > MAX_PDU_BYTES:
        raise EventValidationError(f"event is {size} bytes, over {MAX_PDU_BYTES}")


def _check_refs(pdu: Mapping[str, Any], key: str, limit: int, rv: RoomVersion) -> None:
    refs = _require(pdu, key, list)
    if len(refs) > limit:
        raise EventValidationError(f"more than {limit} {key}")
    for ref in refs:
        if rv.event_id_format is EventIdFormat.V1:
            if not (
                isinstance(ref, list)
                and len(ref) == 2
                and isinstance(ref[0], str)
                and isinstance(ref[1], dict)
            ):
                raise EventValidationError(f"{key} entries must be [event_id, hashes] pairs")
            ref_id = ref[0]
        else:
            if not isinstance(ref, str):
                raise EventValidationError(f"{key} entries must be event IDs")
            ref_id = ref
        if not ref_id.startswith("$"):
            raise EventValidationError(f"{key} entry {ref_id!r} is not an event ID")
        _check_bytes(ref_id, key)
