"""Turning stored events into client events in bulk (one lookup for redactions and prev state).

With a ``RelationsService`` and a requesting user, events also get their bundled
aggregations under ``unsigned.m.relations`` (client-server API "Aggregations of child
events"), computed for all events of the call at once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from homeserver.clock import Clock
from homeserver.rooms.client_format import ClientEvent, format_client_event, strip_for_filter
from storage.events import StoredEvent
from storage.stores import Stores

if TYPE_CHECKING:
    from homeserver.rooms.relations import Aggregation, RelationsService


class EventSerializer:
    def __init__(
        self, stores: Stores, clock: Clock, relations: RelationsService | None = None
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._relations = relations

    async def serialize(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        include_room_id: bool = True,
        fields: Collection[str] | None = None,
        bundle_aggregations: bool | Collection[str] = True,
    ) -> list[ClientEvent]:
        """Client events for ``events``, in order.

        ``bundle_aggregations`` (needs ``user_id``) adds ``unsigned.m.relations``: to
        every event, or to those whose IDs it holds; pass False where the spec does not
        ask for them (e.g. a /sync timeline that is not limited) to save the lookup.
        """
        wanted = {e.redacted_by for e in events if e.redacted_by} | {
            e.replaces_state for e in events if e.replaces_state
        }
        related = await self._stores.events.get_events(wanted) if wanted else {}
        aggregations: dict[str, Aggregation] = {}
        if bundle_aggregations is True:
            to_bundle: Sequence[StoredEvent] = events
        elif bundle_aggregations is False:
            to_bundle = []
        else:
            to_bundle = [e for e in events if e.event_id in bundle_aggregations]
        if to_bundle and user_id is not None and self._relations is not None:
            aggregations = await self._relations.bundle(to_bundle, user_id)
        bundled = await self._format_aggregations(
            aggregations, user_id=user_id, device_id=device_id, include_room_id=include_room_id
        )
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
            if stored.event_id in bundled:
                body["unsigned"]["m.relations"] = bundled[stored.event_id]
            result.append(strip_for_filter(body, fields))
        return result

    async def _format_aggregations(
        self,
        aggregations: dict[str, Aggregation],
        *,
        user_id: str | None,
        device_id: str | None,
        include_room_id: bool,
    ) -> dict[str, dict[str, Any]]:
        if not aggregations:
            return {}
        # The latest thread events carry their own aggregations (their edits); thread
        # replies cannot be thread roots, so this recursion stops after one level.
        latest = [a.thread.latest_event for a in aggregations.values() if a.thread is not None]
        latest_bodies = await self.serialize(
            latest, user_id=user_id, device_id=device_id, include_room_id=include_room_id
        )
        latest_by_id = {e.event_id: body for e, body in zip(latest, latest_bodies, strict=True)}
        edits = [a.replace for a in aggregations.values() if a.replace is not None]
        edit_bodies = await self.serialize(
            edits,
            user_id=user_id,
            device_id=device_id,
            include_room_id=include_room_id,
            bundle_aggregations=False,
        )
        edit_by_id = {e.event_id: body for e, body in zip(edits, edit_bodies, strict=True)}
        result: dict[str, dict[str, Any]] = {}
        for parent_id, aggregation in aggregations.items():
            relations: dict[str, Any] = {}
            if aggregation.replace is not None:
                relations["m.replace"] = edit_by_id[aggregation.replace.event_id]
            if aggregation.thread is not None:
                relations["m.thread"] = {
                    "latest_event": latest_by_id[aggregation.thread.latest_event.event_id],
                    "count": aggregation.thread.count,
                    "current_user_participated": aggregation.thread.current_user_participated,
                }
            if aggregation.references:
                relations["m.reference"] = {
                    "chunk": [{"event_id": event_id} for event_id in aggregation.references]
                }
            if relations:
                result[parent_id] = relations
        return result

    async def serialize_one(
        self,
        stored: StoredEvent,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        bundle_aggregations: bool = True,
    ) -> ClientEvent:
        return (
            await self.serialize(
                [stored],
                user_id=user_id,
                device_id=device_id,
                bundle_aggregations=bundle_aggregations,
            )
        )[0]
