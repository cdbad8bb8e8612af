"""The redaction algorithm per room version, and which redactions can take effect.

Spec: ``rooms/fragments/v1-redactions`` (v1-v5), ``v6-redactions`` (v6-v7),
rooms/v8 "Redactions" (v8), ``v9-redactions`` (v9-v10), ``v11-redactions`` (v11+).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .room_versions import RedactionRules, RoomVersion

if TYPE_CHECKING:
    from .event import Event


def redaction_target_refusal(redaction: Event, target: Event) -> str | None:
    """Why ``redaction`` can never take effect on ``target``, whoever sent it; None
    when it may (then the sender's server or power level decides).

    A redaction only acts on an event of its own room (the spec's
    ``redacts`` names "the event being redacted" in that room; an event of
    another room is out of its reach), and an ``m.room.create`` event is never
    redacted (as Synapse: its content defines the room).
    """
    if target.room_id != redaction.room_id:
        return "the redacted event is in another room"
    if target.type == "m.room.create":
        return "a create event is never redacted"
    return None


_TOP_LEVEL_V1 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)
# v11 stops protecting origin, membership and prev_state.
_TOP_LEVEL_V11 = _TOP_LEVEL_V1 - {"origin", "membership", "prev_state"}

_PL_KEYS = frozenset(
    {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
)

# Content keys kept per event type; None means "keep the whole content".
_CONTENT_V1: dict[str, frozenset[str] | None] = {
    "m.room.member": frozenset({"membership"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule"}),
    "m.room.power_levels": _PL_KEYS,
    "m.room.aliases": frozenset({"aliases"}),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}
_CONTENT_V6 = {k: v for k, v in _CONTENT_V1.items() if k != "m.room.aliases"}
_CONTENT_V8 = {**_CONTENT_V6, "m.room.join_rules": frozenset({"join_rule", "allow"})}
_CONTENT_V9 = {
    **_CONTENT_V8,
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
}
_CONTENT_V11: dict[str, frozenset[str] | None] = {
    **_CONTENT_V9,
    "m.room.create": None,
    "m.room.power_levels": _PL_KEYS | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}

_CONTENT_RULES: dict[RedactionRules, dict[str, frozenset[str] | None]] = {
    RedactionRules.V1: _CONTENT_V1,
    RedactionRules.V6: _CONTENT_V6,
    RedactionRules.V8: _CONTENT_V8,
    RedactionRules.V9: _CONTENT_V9,
    RedactionRules.V11: _CONTENT_V11,
}


def redact(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """Return the redacted copy of ``pdu`` (a new dict; ``pdu`` is not modified).

    Keeps the protected top-level keys and the protected ``content`` keys of the
    room version's redaction algorithm. ``unsigned`` is not protected, so it goes.
    """
    rules = room_version.redaction_rules
    top = _TOP_LEVEL_V11 if rules is RedactionRules.V11 else _TOP_LEVEL_V1
    out = {k: v for k, v in pdu.items() if k in top}
    content = pdu.get("content")
    if not isinstance(content, Mapping):
        out["content"] = {}
        return out
    event_type = pdu.get("type")
    table = _CONTENT_RULES[rules]
    if not isinstance(event_type, str) or event_type not in table:
        out["content"] = {}
        return out
    keep = table[event_type]
    if keep is None:
        out["content"] = dict(content)
        return out
    new_content = {k: v for k, v in content.items() if k in keep}
    if rules is RedactionRules.V11 and event_type == "m.room.member":
        # v11: third_party_invite is kept, but only its ``signed`` key.
        tpi = content.get("third_party_invite")
        if isinstance(tpi, Mapping) and "signed" in tpi:
            new_content["third_party_invite"] = {"signed": tpi["signed"]}
    out["content"] = new_content
    return out
