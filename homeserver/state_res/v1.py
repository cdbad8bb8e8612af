"""State resolution v1 (room version 1).

Spec: rooms v1 "State resolution": start from the union of the states without the
conflicting events (a key is conflicting only where two states hold different events
for it; unlike v2, a key missing from some states is not a conflict); resolve
power levels, then join rules, then member events by ascending depth / descending
sha1(event_id), adding each event while the auth rules allow it; for other keys pick
the highest depth / lowest sha1(event_id) event that passes auth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from homeserver.events import AuthError, Event, RoomVersion, auth_types_for_event, check_auth

from .common import EventCache, StateKey, StateMap


def _sha1(event_id: str) -> bytes:
    return hashlib.sha1(event_id.encode("utf-8")).digest()


async def resolve_v1(
    room_version: RoomVersion, state_sets: Sequence[StateMap], cache: EventCache
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` with the room version 1 algorithm."""
    resolved, conflicted = _separate(state_sets)
    if not conflicted:
        return resolved
    await cache.load(set().union(*conflicted.values()))
    auth_keys = [("m.room.power_levels", ""), ("m.room.join_rules", "")]
    auth_keys += sorted(k for k in conflicted if k[0] == "m.room.member")
    for key in auth_keys:
        if key not in conflicted:
            continue
        events = _loaded(cache, conflicted[key])
        # ascending depth, then descending sha1(event_id)
        events.sort(key=lambda e: _sha1(e.event_id), reverse=True)
        events.sort(key=lambda e: e.depth)
        if not events:
            continue
        resolved[key] = events[0].event_id
        for ev in events[1:]:
            if not await _allowed(cache, room_version, ev, resolved):
                break
            resolved[key] = ev.event_id
    for key in sorted(conflicted):
        if key in auth_keys:
            continue
        events = _loaded(cache, conflicted[key])
        events.sort(key=lambda e: (-e.depth, _sha1(e.event_id)))
        for ev in events:
            if await _allowed(cache, room_version, ev, resolved):
                resolved[key] = ev.event_id
                break
    return resolved


def _separate(
    state_sets: Sequence[StateMap],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """The union of the states without conflicting events, and the conflicting events.

    "A conflict occurs between states where those states have different event_ids for
    the same (event_type, state_key)".
    """
    by_key: dict[StateKey, set[str]] = {}
    for state in state_sets:
        for key, event_id in state.items():
            by_key.setdefault(key, set()).add(event_id)
    resolved: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    for key, ids in by_key.items():
        if len(ids) == 1:
            (resolved[key],) = ids
        else:
            conflicted[key] = ids
    return resolved, conflicted


def _loaded(cache: EventCache, ids: set[str]) -> list[Event]:
    return [ev for ev in (cache.get(e) for e in ids) if ev is not None]


async def _allowed(
    cache: EventCache, room_version: RoomVersion, event: Event, state: dict[StateKey, str]
) -> bool:
    keys = auth_types_for_event(
        room_version, event.type, event.sender, event.state_key, event.content
    )
    ids = {state[k] for k in keys if k in state}
    await cache.load(ids)
    auth_state = {}
    for key in keys:
        if key in state:
            aev = cache.get(state[key])
            if aev is not None:
                auth_state[key] = aev
    try:
        check_auth(event, auth_state, room_version)
    except AuthError:
        return False
    return True
