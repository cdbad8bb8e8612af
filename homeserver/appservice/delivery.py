"""Pushing events to application services (Application Service API: "Pushing
events", ``PUT /_matrix/app/v1/transactions/{txnId}``).

One queue per service with a URL, each drained by its own task, so a slow or absent
service delays only itself. A queue reads the room events that entered the timeline
after its stored position (in stream order, up to the position every earlier event
has committed to), keeps those the service is interested in, adds the ephemeral
data it asked for, and in ONE database transaction stores the transaction (the next
numeric ID of the service, and its body) and moves its positions. Then it sends it;
once the service accepted it, the stored copy is deleted. A failed send is retried
with the same ID after a backoff (``INITIAL_BACKOFF_S`` doubling up to
``MAX_BACKOFF_S``, timed by the ``Clock``), and the backlog follows. At start-up a
stored transaction still unsent goes first. So a restart or an outage loses nothing
and repeats only the transaction in flight (which the service recognises by its ID).

Stretches with nothing of interest move the position in memory only (written every
``POSITION_FLUSH_EVERY`` positions and at stop): re-reading them after a crash sends
nothing twice, since every transaction moved the stored position with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from homeserver.appservice.api import AppServiceUnreachable
from homeserver.appservice.ephemeral import (
    DEVICE_LISTS_KEY,
    EPHEMERAL_KEYS,
    TO_DEVICE_KEY,
    EphemeralCollector,
    PendingEphemeral,
    key_counts,
)
from homeserver.appservice.interest import ServiceInterest
from homeserver.appservice.registration import ApplicationService
from homeserver.appservice.service import AppServices
from homeserver.backoff_worker import BackoffWorker
from homeserver.clock import Clock
from homeserver.rooms.serializer import EventSerializer
from storage.appservice import EVENTS, StoredTransaction
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

EVENTS_PER_TXN = 100
INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0
MAX_WAIT_S = 30.0  # a backoff is re-checked against the Clock at least this often
POSITION_FLUSH_EVERY = 1000


class ServiceQueue(BackoffWorker):
    """The delivery queue of one application service."""

    initial_backoff_s = INITIAL_BACKOFF_S
    max_backoff_s = MAX_BACKOFF_S
    max_wait_s = MAX_WAIT_S

    def __init__(self, delivery: AppServiceDelivery, service: ApplicationService) -> None:
        super().__init__(delivery.clock)
        self.service = service
        self._delivery = delivery
        self.positions: dict[str, int] = {}
        self._stored_positions: dict[str, int] = {}
        self.pending_ephemeral = PendingEphemeral()
        self._pending: StoredTransaction | None = None
        self._recovering = True  # stored transactions may be waiting
        self.sent = 0

    async def load(self) -> None:
        """Read the stored positions; a service seen for the first time starts now."""
        store = self._delivery.stores.appservice
        stored = await store.positions(self.service.id)
        start = {EVENTS: self._delivery.events_position()}
        start.update(self._delivery.collector.feeds.start_positions())
        missing = {stream: pos for stream, pos in start.items() if stream not in stored}
        if missing:
            await store.set_positions(self.service.id, missing)
            stored.update(missing)
        self.positions = dict(stored)
        self._stored_positions = dict(stored)

    async def stop(self) -> None:
        await self._stop_task()
        with contextlib.suppress(Exception):
            await self._flush_positions(force=True)

    @property
    def pending_txn_id(self) -> int | None:
        return None if self._pending is None else self._pending.txn_id

    def _describe(self) -> str:
        return f"application service {self.service.id}"

    async def _step(self) -> bool:
        """Send one transaction (the pending one, or the next); True when there may be
        more to do at once."""
        store = self._delivery.stores.appservice
        if self._pending is None and self._recovering:
            self._pending = await store.oldest_transaction(self.service.id)
            self._recovering = self._pending is not None
        more = False
        if self._pending is None:
            self._pending, more = await self._make_transaction()
            if self._pending is None:
                return more
        txn = self._pending
        try:
            await self._delivery.client.push_transaction(self.service, txn.txn_id, txn.body)
        except AppServiceUnreachable as exc:
            logger.info("transaction %d not delivered: %s", txn.txn_id, exc)
            self._fail()
            return False
        await store.delete_transaction(self.service.id, txn.txn_id)
        self._pending = None
        self.sent += 1
        self._succeeded()
        return True

    async def _make_transaction(self) -> tuple[StoredTransaction | None, bool]:
        """The next transaction, stored with the positions it moves (None when there is
        nothing for the service), and whether more may follow at once."""
        delivery, service = self._delivery, self.service
        after, upto = self.positions[EVENTS], delivery.events_position()
        events: list[StoredEvent] = []
        more = False
        if after < upto:
            events = await delivery.stores.events.timeline_after(after, upto, EVENTS_PER_TXN)
            if len(events) == EVENTS_PER_TXN:
                last = events[-1].stream_ordering
                assert last is not None
                upto, more = last, True
        aliases = delivery.interest.aliases()
        wanted = [e for e in events if await delivery.interest.in_event(service, e.event, aliases)]
        batch = await delivery.collector.collect(
            service, self.pending_ephemeral, self.positions, aliases
        )
        more = more or batch.more
        positions = {**batch.positions}
        if upto > after:
            positions[EVENTS] = upto
        if (
            not wanted
            and not batch.ephemeral
            and not batch.to_device
            and not batch.device_lists_changed
        ):
            self.positions.update(positions)
            await self._flush_positions()
            return None, more
        body: dict[str, Any] = {"events": await delivery.serializer.serialize(wanted)}
        if batch.ephemeral:
            for key in EPHEMERAL_KEYS:
                body[key] = batch.ephemeral
        if batch.to_device:
            body[TO_DEVICE_KEY] = batch.to_device
        if batch.device_lists_changed:
            body[DEVICE_LISTS_KEY] = {"changed": batch.device_lists_changed, "left": []}
        if service.msc3202:
            rooms = {e.event.room_id for e in wanted}
            rooms.update(e["room_id"] for e in batch.ephemeral if "room_id" in e)
            body.update(
                await key_counts(
                    delivery.stores, delivery.interest, service, rooms, batch.to_device
                )
            )
        txn_id = await delivery.stores.appservice.create_transaction(service.id, body, positions)
        self.positions.update(positions)
        self._stored_positions.update(positions)
        return StoredTransaction(txn_id, body), more

    async def _flush_positions(self, *, force: bool = False) -> None:
        """Store positions moved without a transaction, when far enough (or asked)."""
        changed = {
            stream: position
            for stream, position in self.positions.items()
            if self._stored_positions.get(stream) != position
        }
        if not changed:
            return
        if not force and all(
            position - self._stored_positions.get(stream, 0) < POSITION_FLUSH_EVERY
            for stream, position in changed.items()
        ):
            return
        await self._delivery.stores.appservice.set_positions(self.service.id, changed)
        self._stored_positions.update(changed)


class AppServiceDelivery:
    """Every service's delivery queue, and the hooks that wake them."""

    def __init__(
        self,
        appservices: AppServices,
        stores: Stores,
        interest: ServiceInterest,
        collector: EphemeralCollector,
        serializer: EventSerializer,
        events_position: Callable[[], int],
        clock: Clock,
    ) -> None:
        self.appservices = appservices
        self.client = appservices.client
        self.stores = stores
        self.interest = interest
        self.collector = collector
        self.serializer = serializer
        self.events_position = events_position
        self.clock = clock
        self.queues: dict[str, ServiceQueue] = {
            s.id: ServiceQueue(self, s) for s in appservices.services if s.url is not None
        }
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for queue in self.queues.values():
            await queue.load()
            queue.start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await asyncio.gather(*(queue.stop() for queue in self.queues.values()))

    def wake_all(self) -> None:
        """Wake every queue (tests call this after moving a FakeClock)."""
        for queue in self.queues.values():
            queue.wake()

    def retry_now(self, service: ApplicationService) -> None:
        """The service answered a ping: a queue backing off retries at once (as
        Synapse does when a ping succeeds)."""
        queue = self.queues.get(service.id)
        if queue is not None:
            queue.retry_now()

    # -- hooks ------------------------------------------------------------------

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        """A ``persisted_hooks`` entry: new timeline events may be readable."""
        if stored.stream_ordering is not None and stored.stream_ordering > 0:
            self.wake_all()

    async def on_typing(self, user_id: str, room_id: str, typing: bool) -> None:
        for queue in self._ephemeral_queues():
            queue.pending_ephemeral.typing_rooms.add(room_id)
            queue.wake()

    async def on_receipt(
        self, user_id: str, room_id: str, event_id: str, thread_id: str | None
    ) -> None:
        for queue in self._ephemeral_queues():
            queue.wake()

    def on_presence(self, user_id: str) -> None:
        for queue in self._ephemeral_queues():
            queue.pending_ephemeral.presence_users.add(user_id)
            queue.wake()

    def on_to_device(self, user_ids: set[str]) -> None:
        for queue in self.queues.values():
            service = queue.service
            if service.msc3202 and any(service.is_interested_in_user(u) for u in user_ids):
                queue.wake()

    async def on_device_list_change(
        self, user_id: str, device_ids: list[str], position: int
    ) -> None:
        """A ``DeviceListService.change_listeners`` entry (MSC3202 services)."""
        for queue in self.queues.values():
            if queue.service.msc3202:
                queue.wake()

    def _ephemeral_queues(self) -> list[ServiceQueue]:
        return [q for q in self.queues.values() if q.service.receive_ephemeral]
