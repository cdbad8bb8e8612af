"""Delayed events (MSC4140, as Synapse serves it).

``PUT /rooms/{roomId}/send/...`` and ``.../state/...`` with the
``org.matrix.msc4140.delay`` query parameter schedule the event instead of sending
it and answer ``{"delay_id": ...}``. The owner lists their pending events; anyone
holding a delay ID may cancel it, restart its delay or send it at once (the ID is
the secret, as the MSC says; the management endpoints are rate limited). A pending
state event is dropped when another user sets that state first. The feature is off
unless ``max_event_delay_duration`` is set.

Due events are sent by a ticker every second (tests call ``tick`` after moving the
FakeClock), as their owner (and device), through the same path as a client's send.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from homeserver.clock import Clock
from homeserver.errors import Forbidden, LimitExceeded, MatrixError, NotFound
from homeserver.rooms.persister import CurrentStateChange
from homeserver.ticker import Ticker
from storage.database import Transaction
from storage.delayed_events import DelayedEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

DELAY_PARAM = "org.matrix.msc4140.delay"
DEFAULT_MAX_PER_USER = 100
DUE_BATCH = 100


class DelayedSend(Protocol):
    """Send an event now, as a client of ``user_id`` would (state when ``state_key``
    is not None)."""

    async def __call__(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_type: str,
        state_key: str | None,
        content: dict[str, Any],
        origin_server_ts: int | None,
    ) -> None: ...


def delayed_event_json(event: DelayedEvent) -> dict[str, Any]:
    """One entry of ``GET /delayed_events``."""
    body: dict[str, Any] = {
        "delay_id": event.delay_id,
        "room_id": event.room_id,
        "type": event.event_type,
        "delay": event.delay,
        "running_since": event.send_ts - event.delay,
        "content": event.content,
    }
    if event.state_key is not None:
        body["state_key"] = event.state_key
    return body


class DelayedEventService:
    def __init__(
        self,
        stores: Stores,
        clock: Clock,
        send: DelayedSend,
        *,
        max_delay_ms: int | None,
        max_per_user: int = DEFAULT_MAX_PER_USER,
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._send = send
        self._max_delay_ms = max_delay_ms
        self._max_per_user = max_per_user
        self._ticker = Ticker(self.tick, "sending delayed events")

    @property
    def enabled(self) -> bool:
        return self._max_delay_ms is not None and self._max_per_user > 0

    async def schedule(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_type: str,
        state_key: str | None,
        content: Mapping[str, Any],
        delay_ms: int,
        origin_server_ts: int | None = None,
    ) -> str:
        """Store an event to be sent in ``delay_ms``; its delay ID."""
        if not self.enabled or self._max_delay_ms is None:
            raise Forbidden("Sending delayed events has been disallowed")
        if delay_ms > self._max_delay_ms:
            raise Forbidden(
                f"The requested delay ({delay_ms}ms) exceeds the allowed maximum"
                f" ({self._max_delay_ms}ms)"
            )
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Unknown room")
        now = self._clock.time_ms()
        event = DelayedEvent(
            delay_id=f"syd_{secrets.token_urlsafe(18)}",
            user_id=user_id,
            device_id=device_id,
            delay=delay_ms,
            send_ts=now + delay_ms,
            room_id=room_id,
            event_type=event_type,
            state_key=state_key,
            origin_server_ts=origin_server_ts,
            content=dict(content),
        )
        first_free = await self._stores.delayed_events.add(event, self._max_per_user)
        if first_free is not None:
            raise LimitExceeded(max(0, first_free - now))
        return event.delay_id

    async def pending(self, user_id: str) -> list[dict[str, Any]]:
        """``GET /delayed_events``: the user's pending events, soonest first."""
        return [delayed_event_json(e) for e in await self._stores.delayed_events.for_user(user_id)]

    async def cancel(self, delay_id: str) -> None:
        if not await self._stores.delayed_events.cancel(delay_id):
            raise NotFound("Delayed event not found")

    async def restart(self, delay_id: str) -> None:
        if not await self._stores.delayed_events.restart(delay_id, self._clock.time_ms()):
            raise NotFound("Delayed event not found")

    async def send_now(self, delay_id: str) -> None:
        event = await self._stores.delayed_events.take(delay_id)
        if event is None:
            raise NotFound("Delayed event not found")
        await self._deliver(event, raise_errors=True)

    async def tick(self) -> None:
        """Send every event whose time has come."""
        while True:
            due = await self._stores.delayed_events.take_due(self._clock.time_ms(), DUE_BATCH)
            for event in due:
                await self._deliver(event, raise_errors=False)
            if len(due) < DUE_BATCH:
                return

    async def _deliver(self, event: DelayedEvent, *, raise_errors: bool) -> None:
        try:
            await self._send(
                event.user_id,
                event.device_id,
                event.room_id,
                event.event_type,
                event.state_key,
                event.content,
                event.origin_server_ts,
            )
        except MatrixError as exc:
            # like Synapse: the event is dropped (the sender may no longer be allowed)
            logger.info("delayed event %s not sent: %s", event.delay_id, exc.message)
            if raise_errors:
                raise

    async def on_current_state_txn(self, txn: Transaction, change: CurrentStateChange) -> None:
        """Persister current-state hook: a state key set by someone drops the other
        users' pending events for it."""
        for key, event_id in change.changes.items():
            if event_id is None:
                continue
            sender = change.event.sender if change.event.event_id == event_id else None
            if sender is None:
                stored = await self._stores.events.get_event(event_id)
                if stored is None:
                    continue
                sender = stored.event.sender
            await self._stores.delayed_events.cancel_state_txn(
                txn, change.room_id, key[0], key[1], sender
            )

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
