"""The retention policy of each room, and the hiding of expired events.

A room's policy is read from its current state (the ``m.room.retention`` event in
it), so it follows every change of state, local, remote or a state reset, with no
table of its own to keep in step; parsed policies are cached by event ID (events do
not change). Clients never get an expired event, whatever the endpoint: the history
visibility filter and the sync timelines drop them (as Synapse's
``filter_events_for_client``), before the purge jobs delete them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from homeserver.clock import Clock
from homeserver.config import RetentionConfig
from homeserver.retention.policy import (
    RETENTION,
    RetentionPolicy,
    effective_policy,
    is_expired,
    policy_of_content,
)
from storage.events import StoredEvent
from storage.stores import Stores

CACHE_SIZE = 10_000


class RetentionPolicies:
    def __init__(self, stores: Stores, clock: Clock, config: RetentionConfig) -> None:
        self._stores = stores
        self._clock = clock
        self.config = config
        # event ID of an m.room.retention event -> the policy it sets (None: none)
        self._by_event: OrderedDict[str, RetentionPolicy | None] = OrderedDict()

    def invalidate_event(self, event_id: str) -> None:
        """The ``m.room.retention`` event changed (redacted): read its policy again."""
        self._by_event.pop(event_id, None)

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed (redactions): read
        every policy again."""
        self._by_event.clear()

    async def room_policy(self, room_id: str) -> RetentionPolicy:
        """The room's policy: its own, completed by the default policy."""
        state = await self._stores.state.get_current_state(room_id)
        event_id = state.get((RETENTION, ""))
        own = (await self.policies_of_events([event_id]))[event_id] if event_id else None
        return effective_policy(own, self.config)

    async def policies_of_events(
        self, event_ids: Iterable[str]
    ) -> dict[str, RetentionPolicy | None]:
        """The policy each ``m.room.retention`` event sets (None: none, or unknown)."""
        result: dict[str, RetentionPolicy | None] = {}
        missing: list[str] = []
        for event_id in event_ids:
            if event_id in self._by_event:
                self._by_event.move_to_end(event_id)
                result[event_id] = self._by_event[event_id]
            else:
                missing.append(event_id)
        if missing:
            found = await self._stores.events.get_events(missing)
            for event_id in missing:
                stored = found.get(event_id)
                if stored is None:
                    result[event_id] = None
                    continue
                policy = policy_of_content(stored.event.content)
                result[event_id] = self._by_event[event_id] = policy
            while len(self._by_event) > CACHE_SIZE:
                self._by_event.popitem(last=False)
        return result

    async def drop_expired(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """``events`` without the expired ones, in the same order."""
        if not events:
            return []
        now = self._clock.time_ms()
        policies = {room_id: await self.room_policy(room_id) for room_id in _rooms(events)}
        return [
            stored
            for stored in events
            if not is_expired(
                is_state=stored.event.is_state,
                origin_server_ts=stored.event.origin_server_ts,
                policy=policies[stored.event.room_id],
                now_ms=now,
            )
        ]


def _rooms(events: Sequence[StoredEvent]) -> list[str]:
    return list(dict.fromkeys(e.event.room_id for e in events))
