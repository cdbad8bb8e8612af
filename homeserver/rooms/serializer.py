"""Turning stored events into client events in bulk (one lookup for redactions and prev state)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from homeserver.clock import Clock
from homeserver.rooms.client_format import ClientEvent, format_client_event, strip_for_filter
from storage.events import StoredEvent
from storage.stores import Stores


class EventSerializer:
    def __init__(self, stores: Stores, clock: Clock) -> None:
        self._stores = stores
        self._clock = clock

    async def serialize(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        include_room_id: bool = True,
        fields: Collection[str] | None = None,
    ) -> list[ClientEvent]:
        wanted = {e.redacted_by for e in events if e.redacted_by} | {
            e.replaces_state for e in events if e.replaces_state
        }
        related = await self._stores.events.get_events(wanted) if wanted else {}
        now = self._clock.time_ms()
        requester = (user_id, device_id) if user_id is not None and device_id is not None else None
        result = []
        for stored in events:
            body = format_client_event(
                stored,
                now_ms=now,
                requester_device=requester,
                redaction=related.get(stored.redacted_by) if stored.redacted_by else None,
                replaced=related.get(stored.replaces_state) if stored.replaces_state else None,
                include_room_id=include_room_id,
            )
            result.append(strip_for_filter(body, fields))
        return result

    async def serialize_one(
        self, stored: StoredEvent, *, user_id: str | None = None, device_id: str | None = None
    ) -> ClientEvent:
        return (await self.serialize([stored], user_id=user_id, device_id=device_id))[0]
