"""Pure state resolution: v1 (room version 1), v2 (2-11) and v2.1 (12).

The resolver is an async function whose only awaits are the caller's callbacks:
``fetch_events`` supplies events lazily (storage, or a dict in tests), and an
optional ``auth_chain_difference`` lets storage answer from an index instead of
walking auth chains here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from homeserver.events import Event, RoomVersion, StateResAlgorithm

from .common import (
    AuthChainDifference,
    EventCache,
    FetchEvents,
    StateKey,
    StateMap,
    default_auth_chain_difference,
    is_power_event,
    separate,
)
from .v1 import resolve_v1
from .v2 import resolve_v2, sender_power_level


async def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    fetch_events: FetchEvents,
    *,
    auth_chain_difference: AuthChainDifference | None = None,
    known_events: Mapping[str, Event] | None = None,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` (each ``(type, state_key) -> event_id``) for the room version.

    Spec: rooms v1 "State resolution", ``v2-state-res``, v12 "State resolution".
    ``known_events`` seeds the cache so ``fetch_events`` is only asked for the rest.
    Events that cannot be fetched are left out of the conflicted handling.
    """
    cache = EventCache(fetch_events, known_events)
    if room_version.state_res is StateResAlgorithm.V1:
        return await resolve_v1(room_version, state_sets, cache)
    return await resolve_v2(room_version, state_sets, cache, auth_chain_difference)


def events_fetcher(events: Mapping[str, Event]) -> FetchEvents:
    """A ``fetch_events`` over an in-memory mapping (tests, callers with all events)."""

    async def fetch(ids: Collection[str]) -> Mapping[str, Event]:
        return {e: events[e] for e in ids if e in events}

    return fetch


__all__ = [
    "AuthChainDifference",
    "EventCache",
    "FetchEvents",
    "StateKey",
    "StateMap",
    "default_auth_chain_difference",
    "events_fetcher",
    "is_power_event",
    "resolve_state",
    "sender_power_level",
    "separate",
]
