"""Censoring redacted events (Synapse's ``redaction_retention_period``).

A redaction hides an event's content at once (events are pruned when served), but
the original JSON stays stored for a while, so that a server admin can still look
into abuse that was redacted. Once ``redaction_retention_period`` has passed since
the redaction took effect, the stored JSON is replaced by its pruned form for good,
as Synapse does (every five minutes; a ``None`` period keeps originals forever).
"""

from __future__ import annotations

import logging

from homeserver.clock import Clock
from homeserver.replication.invalidation import CachePublisher
from homeserver.rooms.expiry import erase_content
from homeserver.ticker import Ticker
from storage.stores import Stores

logger = logging.getLogger(__name__)

INTERVAL_S = 5 * 60.0
BATCH = 100


class RedactionCensor:
    def __init__(
        self,
        stores: Stores,
        clock: Clock,
        retention_ms: int,
        *,
        cache_publisher: CachePublisher | None = None,
    ) -> None:
        self._stores = stores
        self._cache_publisher = cache_publisher
        self._clock = clock
        self._retention_ms = retention_ms
        self._ticker = Ticker(self.tick, "censoring redacted events", INTERVAL_S)

    async def tick(self) -> int:
        """Censor every redacted event that is due; returns how many were."""
        before = self._clock.time_ms() - self._retention_ms
        censored = 0
        while True:
            due = await self._stores.events.redactions_due_for_censoring(before, BATCH)
            for event_id in due:
                await self._censor(event_id)
            censored += len(due)
            if len(due) < BATCH:
                break
        if censored:
            logger.info("censored %d redacted events", censored)
        return censored

    async def _censor(self, event_id: str) -> None:
        await erase_content(
            self._stores,
            event_id,
            "censor_redacted_event",
            self._stores.events.censored_txn,
            self._cache_publisher,
        )

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
