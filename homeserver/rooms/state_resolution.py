"""State at points of a room's DAG, resolved by the pure state resolution core."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    Event,
    PowerLevels,
    redaction_target_refusal,
    server_name_of,
)
from homeserver.state_res import resolve_state
from storage.state import StateMap
from storage.stores import Stores


class StateResolver:
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def _fetch(self, event_ids: Collection[str]) -> Mapping[str, Event]:
        stored = await self._stores.events.get_events(event_ids)
        return {
            e: s.event.with_rejection(s.rejected_reason) if s.rejected_reason else s.event
            for e, s in stored.items()
        }

    async def resolve(
        self,
        room_id: str,
        state_sets: Sequence[StateMap],
        known_events: Mapping[str, Event] | None = None,
    ) -> StateMap:
        """Resolve several state maps of a room with its version's algorithm.

        ``known_events`` supplies events not readable from storage yet (the one being
        persisted, inside its own transaction)."""
        distinct = [dict(s) for s in {tuple(sorted(s.items())): s for s in state_sets}.values()]
        if len(distinct) == 1:
            return dict(distinct[0])
        if not distinct:
            return {}
        version_id = await self._stores.events.room_version_id(room_id)
        if version_id is None:
            raise ValueError(f"unknown room {room_id}")
        return await resolve_state(
            KNOWN_ROOM_VERSIONS[version_id], distinct, self._fetch, known_events=known_events
        )

    async def states_after(self, event_ids: Collection[str]) -> list[StateMap]:
        """The state after each of the events that has one (not yet resolved)."""
        stored = await self._stores.events.get_events(event_ids)
        groups = [s.state_group for s in stored.values() if s.state_group is not None]
        return [await self._stores.state.get_state(g) for g in groups]

    async def state_after_events(self, room_id: str, event_ids: Collection[str]) -> StateMap:
        """The resolved state after a set of events (e.g. the prev_events of a new event)."""
        return await self.resolve(room_id, await self.states_after(event_ids))

    async def resolve_extremities(
        self, room_id: str, extremities: Collection[str], new_event: Event, new_state: StateMap
    ) -> StateMap:
        """The room's current state given its forward extremities.

        ``new_event`` is being persisted (not readable yet): ``new_state`` is the state
        after it, used for it instead of a stored state group."""
        others = [e for e in extremities if e != new_event.event_id]
        sets = await self.states_after(others)
        if new_event.event_id in extremities:
            sets.append(new_state)
        return await self.resolve(room_id, sets, {new_event.event_id: new_event})

    async def may_redact(self, redaction: Event, target: Event, state: StateMap) -> bool:
        """Whether a redaction takes effect on its target (rooms: "Redactions").

        It does when both come from the same server, or the redaction's sender has at
        least the room's redact level; never on an event of another room or on the
        room's create event (``redaction_target_refusal``).
        """
        if redaction_target_refusal(redaction, target) is not None:
            return False
        if server_name_of(redaction.sender) == server_name_of(target.sender):
            return True
        ids = [state[k] for k in (("m.room.create", ""), ("m.room.power_levels", "")) if k in state]
        events = await self._fetch(ids)
        create = events.get(state.get(("m.room.create", ""), ""))
        levels = PowerLevels(
            create, events.get(state.get(("m.room.power_levels", ""), "")), redaction.room_version
        )
        return levels.user_level(redaction.sender) >= levels.redact
