"""Pure rules of the space hierarchy: which ``m.space.child`` events count, their
order, and who may see a room's summary (client-server API, "Spaces")."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_ORDER_LENGTH = 50
# join rules whose rooms anyone may preview (knock_restricted: room versions 10+)
OPEN_JOIN_RULES = frozenset({"public", "knock", "knock_restricted"})
RESTRICTED_JOIN_RULES = frozenset({"restricted", "knock_restricted"})


@dataclass(frozen=True)
class SpaceChild:
    """A valid ``m.space.child`` state event: its target room and how it is listed."""

    room_id: str
    via: tuple[str, ...]
    order: str | None
    suggested: bool
    origin_server_ts: int
    stripped: dict[str, Any]


def valid_order(value: object) -> str | None:
    """``order`` as the spec allows it (printable ASCII, at most 50 characters)."""
    if not isinstance(value, str) or len(value) > MAX_ORDER_LENGTH:
        return None
    if any(not 0x20 <= ord(c) <= 0x7E for c in value):
        return None
    return value


def space_child(event: Mapping[str, Any]) -> SpaceChild | None:
    """The child an event names, or None if it names none: not an ``m.space.child``
    state event, or ``via`` missing or without a server name (a removed child)."""
    if event.get("type") != "m.space.child":
        return None
    room_id = event.get("state_key")
    content = event.get("content")
    if not isinstance(room_id, str) or not room_id or not isinstance(content, Mapping):
        return None
    via = content.get("via")
    if not isinstance(via, list):
        return None
    servers = tuple(v for v in via if isinstance(v, str) and v)
    if not servers:
        return None
    ts = event.get("origin_server_ts")
    return SpaceChild(
        room_id=room_id,
        via=servers,
        order=valid_order(content.get("order")),
        suggested=content.get("suggested") is True,
        origin_server_ts=ts if isinstance(ts, int) and not isinstance(ts, bool) else 0,
        stripped={
            "type": "m.space.child",
            "state_key": room_id,
            "content": dict(content),
            "sender": event.get("sender"),
            "origin_server_ts": ts,
        },
    )


def ordered_children(
    events: Sequence[Mapping[str, Any]], *, suggested_only: bool = False
) -> list[SpaceChild]:
    """The valid children of a space in the spec's order: those with an ``order``
    first, by ``order``; then by the child event's ``origin_server_ts``; then by
    room ID."""
    children = [c for c in (space_child(e) for e in events) if c is not None]
    if suggested_only:
        children = [c for c in children if c.suggested]
    return sorted(
        children,
        key=lambda c: (c.order is None, c.order or "", c.origin_server_ts, c.room_id),
    )


@dataclass(frozen=True)
class RoomAccess:
    """What decides whether someone may see a room's summary."""

    join_rule: str | None
    world_readable: bool
    allowed_room_ids: tuple[str, ...]


def allowed_room_ids(join_rules_content: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The rooms whose members may join a restricted room (``allow`` of type
    ``m.room_membership``)."""
    if not join_rules_content or join_rules_content.get("join_rule") not in RESTRICTED_JOIN_RULES:
        return ()
    allow = join_rules_content.get("allow")
    if not isinstance(allow, list):
        return ()
    return tuple(
        a["room_id"]
        for a in allow
        if isinstance(a, Mapping)
        and a.get("type") == "m.room_membership"
        and isinstance(a.get("room_id"), str)
    )


def user_may_see(access: RoomAccess, membership: str | None, joined_rooms: Collection[str]) -> bool:
    """A user may see a room's summary when anyone may preview it (world-readable,
    public or knockable), when they are joined or invited, or when the room is
    restricted to members of a room they are joined to."""
    if access.world_readable or access.join_rule in OPEN_JOIN_RULES:
        return True
    if membership in ("join", "invite"):
        return True
    return any(r in joined_rooms for r in access.allowed_room_ids)


def server_may_see(access: RoomAccess, server_in_room: bool, server_in_allowed_room: bool) -> bool:
    """A server may see a room's summary when anyone may preview it, when it has a
    member in the room, or when the room is restricted to a room it has a member in
    (the asking server then checks ``allowed_room_ids`` for its user)."""
    if access.world_readable or access.join_rule in OPEN_JOIN_RULES:
        return True
    return server_in_room or (bool(access.allowed_room_ids) and server_in_allowed_room)
