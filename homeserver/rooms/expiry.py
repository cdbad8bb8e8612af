"""Self-destructing messages (MSC2228; Synapse's ``enable_ephemeral_messages``).

With the option on, a non-state event whose content carries an integer
``org.matrix.self_destruct_after`` (a timestamp in milliseconds) is pruned at that
time, as a redaction would leave it (the content goes, the event stays in the DAG),
for good: the stored JSON is replaced by the pruned form. Events from clients and
from other servers alike, as Synapse does.

Expiry times are kept in the database (``event_expiry``), so a restart expires what
fell due while the server was down. The soonest one is held in memory: ``tick()``
(a background task every second; tests call it after moving the FakeClock) reads
the database only when it has come.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from homeserver.clock import Clock
from homeserver.replication.invalidation import EVENTS, CachePublisher
from homeserver.ticker import Ticker
from storage.database import Transaction
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

SELF_DESTRUCT_AFTER = "org.matrix.self_destruct_after"
BATCH = 100


async def erase_content(
    stores: Stores,
    event_id: str,
    name: str,
    dequeue_txn: Callable[[Transaction, str], Awaitable[None]],
    cache_publisher: CachePublisher | None = None,
) -> None:
    """Replace ``event_id``'s stored JSON by its pruned form (the content is gone for
    good, as a redaction leaves it), and in the same transaction take it off the
    queue that asked for it (``dequeue_txn``), even if the event is gone. The other
    processes are told (``cache_publisher``) that their cached copy is stale."""
    stored = await stores.events.get_event(event_id)

    async def prune(txn: Transaction) -> None:
        if stored is not None:
            pruned = stored.event.redacted_pdu()
            await stores.events.store_pruned_txn(txn, event_id, dict(pruned))
        await dequeue_txn(txn, event_id)

    await stores.db.run_transaction(name, prune)
    if cache_publisher is not None and stored is not None:
        cache_publisher.stale(EVENTS, [event_id])


class MessageExpiry:
    def __init__(
        self, stores: Stores, clock: Clock, *, cache_publisher: CachePublisher | None = None
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._cache_publisher = cache_publisher
        self._next: int | None = None  # the soonest expiry known to be pending
        # with workers the event writers store the expiries (on_event_persisted there)
        # and this process expires them: each tick reads the soonest from the database
        self.reads_schedule = False
        self._ticker = Ticker(self.tick, "expiring self-destructing messages")

    async def load(self) -> None:
        """At start-up: the soonest expiry stored."""
        self._next = await self._stores.event_expiry.earliest()

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        """Persister hook: remember when a self-destructing message is to expire."""
        event = stored.event
        expiry_ts = event.content.get(SELF_DESTRUCT_AFTER)
        if event.is_state or type(expiry_ts) is not int:  # bool is no timestamp
            return
        await self._stores.event_expiry.add(stored.event_id, expiry_ts)
        if self._next is None or expiry_ts < self._next:
            self._next = expiry_ts

    async def tick(self) -> None:
        """Prune every message whose time has come."""
        now = self._clock.time_ms()
        if self.reads_schedule:
            self._next = await self._stores.event_expiry.earliest()
        if self._next is None or self._next > now:
            return
        while True:
            due = await self._stores.event_expiry.due(now, BATCH)
            for event_id in due:
                await self._expire(event_id)
            if len(due) < BATCH:
                break
        self._next = await self._stores.event_expiry.earliest()

    async def _expire(self, event_id: str) -> None:
        await erase_content(
            self._stores,
            event_id,
            "expire_event",
            self._stores.event_expiry.delete_txn,
            self._cache_publisher,
        )
        logger.info("expired self-destructing message %s", event_id)

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
