"""Which state events an event must cite as ``auth_events``.

Spec: s2s "Auth events selection" (and rooms v12 rule 3.2: ``m.room.create`` is not
selected from room version 12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .room_versions import RoomVersion

StateKey = tuple[str, str]


def auth_types_for_event(
    room_version: RoomVersion,
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
) -> set[StateKey]:
    """The ``(type, state_key)`` pairs whose current state events are auth events."""
    if event_type == "m.room.create":
        return set()
    keys: set[StateKey] = {("m.room.power_levels", ""), ("m.room.member", sender)}
    if room_version.create_event_in_auth_events:
        keys.add(("m.room.create", ""))
    if event_type == "m.room.member" and state_key is not None:
        keys.add(("m.room.member", state_key))
        membership = content.get("membership")
        if membership in ("join", "invite", "knock"):
            keys.add(("m.room.join_rules", ""))
        if membership == "invite":
            tpi = content.get("third_party_invite")
            if isinstance(tpi, Mapping):
                signed = tpi.get("signed")
                if isinstance(signed, Mapping) and isinstance(signed.get("token"), str):
                    keys.add(("m.room.third_party_invite", signed["token"]))
        if membership == "join" and room_version.restricted_joins:
            authoriser = content.get("join_authorised_via_users_server")
            if isinstance(authoriser, str):
                keys.add(("m.room.member", authoriser))
    return keys
