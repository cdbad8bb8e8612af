"""Events as clients see them (client-server API: "Room event format").

The PDU's signatures, hashes, DAG references and depth are left out; ``unsigned``
carries ``age``, the sender's ``transaction_id``, ``prev_content`` of replaced
state, and ``redacted_by`` (the redaction's ID) with ``redacted_because`` (the
redaction itself) for redacted events, whose content is redacted by the room
version's rules.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from storage.events import StoredEvent

ClientEvent = dict[str, Any]


def format_client_event(
    stored: StoredEvent,
    *,
    now_ms: int,
    requester_device: tuple[str, str] | None = None,
    redaction: StoredEvent | None = None,
    replaced: StoredEvent | None = None,
    include_room_id: bool = True,
) -> ClientEvent:
    """One event in the client format.

    ``requester_device`` is (user_id, device_id) of the client asking, to decide
    whether ``transaction_id`` belongs in ``unsigned``. ``redaction`` is the event that
    redacted this one (if any, and applied); ``replaced`` the state event this one replaced.
    """
    event = stored.event
    if redaction is not None:
        event = event.redacted()
    body: ClientEvent = {
        "content": dict(event.content),
        "event_id": event.event_id,
        "origin_server_ts": event.origin_server_ts,
        "sender": event.sender,
        "type": event.type,
    }
    if include_room_id:
        body["room_id"] = event.room_id
    if event.state_key is not None:
        body["state_key"] = event.state_key
    redacts = stored.event.redacts
    if redacts is not None and stored.event.type == "m.room.redaction":
        # Clients of every version read ``redacts`` at the top level; v11+ also in content.
        body["redacts"] = redacts
    unsigned: dict[str, Any] = {}
    raw_unsigned = stored.event.unsigned
    if isinstance(raw_unsigned, Mapping):
        for key in ("invite_room_state", "knock_room_state"):
            if key in raw_unsigned:
                unsigned[key] = raw_unsigned[key]
    unsigned["age"] = max(0, now_ms - event.origin_server_ts)
    if (
        requester_device is not None
        and stored.txn_id is not None
        and stored.event.sender == requester_device[0]
        and stored.txn_device_id == requester_device[1]
    ):
        unsigned["transaction_id"] = stored.txn_id
    if replaced is not None and event.state_key is not None:
        unsigned["prev_content"] = dict(replaced.event.content)
        unsigned["prev_sender"] = replaced.event.sender
        unsigned["replaces_state"] = replaced.event_id
    if redaction is not None:
        unsigned["redacted_by"] = redaction.event_id
        unsigned["redacted_because"] = format_client_event(redaction, now_ms=now_ms)
    body["unsigned"] = unsigned
    return body


def strip_for_filter(event: ClientEvent, fields: Collection[str] | None) -> ClientEvent:
    """Keep only the dotted ``fields`` of an event (the filter's ``event_fields``)."""
    if not fields:
        return event
    result: dict[str, Any] = {}
    for field in fields:
        parts = _split_field(field)
        source: Any = event
        for part in parts:
            if not isinstance(source, Mapping) or part not in source:
                source = _MISSING
                break
            source = source[part]
        if source is _MISSING:
            continue
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = source
    return result


_MISSING = object()


def _split_field(field: str) -> list[str]:
    """Split on dots not escaped with a backslash."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in field:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts
