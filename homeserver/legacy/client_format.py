"""The v1 client event format of the legacy endpoints (pure).

The r0-era API shows events as /sync does, plus ``user_id`` (the sender, under its
old name) and a copy at the top level of what ``unsigned`` holds about the event's
history: ``age``, ``prev_content``, ``replaces_state``, ``redacted_because`` and the
stripped state of invites and knocks. Clients of that era read those keys there.
"""

from __future__ import annotations

from typing import Any

# unsigned keys that v1 clients read at the top level
TOP_LEVEL_COPIES = (
    "age",
    "redacted_because",
    "replaces_state",
    "prev_content",
    "invite_room_state",
    "knock_room_state",
)


def v1_client_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` (a /sync-format client event) in the v1 format; a new dict."""
    result = dict(event)
    sender = result.get("sender")
    if sender is not None:
        result["user_id"] = sender
    unsigned = result.get("unsigned")
    if isinstance(unsigned, dict):
        for key in TOP_LEVEL_COPIES:
            if key in unsigned:
                result[key] = unsigned[key]
    return result


def presence_event(sender: str, content: dict[str, Any]) -> dict[str, Any]:
    """An ``m.presence`` event as the legacy API shows it: the user also in ``content``."""
    return {"type": "m.presence", "sender": sender, "content": {**content, "user_id": sender}}


def in_room(event: dict[str, Any], room_id: str) -> dict[str, Any]:
    """A room-scoped ephemeral or account data event, labelled with its room."""
    return {**event, "room_id": room_id}
