"""Power levels as the authorisation rules read them.

Spec: s2s "Definitions" (required power level, invite/kick/ban/redact level),
``m.room.power_levels`` defaults, rooms ``v1-stringy-power-levels`` (v1-v9 accept
integer strings), ``v1-floaty-power-levels`` (v1-v5 accept floats, truncated),
v10 integer-only, v12 room creators with infinite power.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .event import Event
from .room_versions import RoomVersion

PowerLevel = int | float
"""An integer level, or ``math.inf`` for v12 room creators."""

INFINITE_POWER: float = math.inf

_INT_STRING_RE = re.compile(r"[ \t\n\r\f\v]*[+-]?[0-9]+[ \t\n\r\f\v]*", re.ASCII)

SCALAR_KEYS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)
_DEFAULTS = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}


def parse_power_level(value: Any, room_version: RoomVersion) -> int | None:
    """The integer a power level value stands for, or None if it is not valid.

    v10+: integers only. v1-v9: also integer strings (optional sign, leading zeroes
    and surrounding whitespace). v1-v5: also finite floats, truncated.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if room_version.integer_only_power_levels:
        return None
    if isinstance(value, str):
        if _INT_STRING_RE.fullmatch(value):
            return int(value.strip())
        return None
    if isinstance(value, float) and room_version.float_power_levels:
        if not math.isfinite(value):
            return None
        return int(value)
    return None


def room_creators(create_event: Event | None, room_version: RoomVersion) -> frozenset[str]:
    """The room creators.

    v1-v10: ``content.creator``; v11: the create event's sender; v12: the sender plus
    ``content.additional_creators`` (rooms v12 "room creators").
    """
    if create_event is None:
        return frozenset()
    if not room_version.implicit_room_creator:
        creator = create_event.content.get("creator")
        return frozenset({creator}) if isinstance(creator, str) else frozenset()
    creators = {create_event.sender}
    if room_version.additional_creators:
        extra = create_event.content.get("additional_creators")
        if isinstance(extra, list):
            creators.update(u for u in extra if isinstance(u, str))
    return frozenset(creators)


class PowerLevels:
    """The power levels in force given the create and power levels events."""

    __slots__ = ("_content", "_creators", "_has_event", "_rv")

    def __init__(
        self,
        create_event: Event | None,
        power_levels_event: Event | None,
        room_version: RoomVersion,
    ) -> None:
        self._rv = room_version
        self._creators = room_creators(create_event, room_version)
        self._has_event = power_levels_event is not None
        self._content: Mapping[str, Any] = (
            power_levels_event.content if power_levels_event is not None else {}
        )

    @property
    def creators(self) -> frozenset[str]:
        return self._creators

    def _scalar(self, key: str) -> int:
        raw = self._content.get(key)
        parsed = parse_power_level(raw, self._rv) if raw is not None else None
        return _DEFAULTS[key] if parsed is None else parsed

    def user_level(self, user_id: str) -> PowerLevel:
        """A user's power level (s2s "Definitions"; m.room.power_levels ``users``)."""
        if self._rv.privileged_creators and user_id in self._creators:
            return INFINITE_POWER
        if not self._has_event:
            return 100 if user_id in self._creators else 0
        users = self._content.get("users")
        if isinstance(users, Mapping) and user_id in users:
            parsed = parse_power_level(users[user_id], self._rv)
            if parsed is not None:
                return parsed
        return self._scalar("users_default")

    def required_level(self, event_type: str, is_state: bool) -> int:
        """The *required power level* to send an event of this type."""
        events = self._content.get("events")
        if isinstance(events, Mapping) and event_type in events:
            parsed = parse_power_level(events[event_type], self._rv)
            if parsed is not None:
                return parsed
        return self._scalar("state_default" if is_state else "events_default")

    @property
    def invite(self) -> int:
        return self._scalar("invite")

    @property
    def kick(self) -> int:
        return self._scalar("kick")

    @property
    def ban(self) -> int:
        return self._scalar("ban")

    @property
    def redact(self) -> int:
        return self._scalar("redact")


def power_levels_from_state(
    state: Mapping[tuple[str, str], Event], room_version: RoomVersion
) -> PowerLevels:
    """:class:`PowerLevels` from a state map holding the create and power levels events."""
    return PowerLevels(
        state.get(("m.room.create", "")), state.get(("m.room.power_levels", "")), room_version
    )
