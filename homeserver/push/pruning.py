"""Pruning push actions: every event that notifies a user leaves a row for them,
so without pruning the table grows with every message forever. Once read, a plain
notification is kept a day and a highlight (a mention) thirty days, for the
/notifications list, as Synapse does; then it goes. Unread ones stay (see
``PushActionStore.prune_read``: unread counts stay exact)."""

from __future__ import annotations

import logging

from homeserver.clock import Clock
from homeserver.ticker import Ticker
from storage.stores import Stores

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
PLAIN_KEPT_MS = DAY_MS
HIGHLIGHT_KEPT_MS = 30 * DAY_MS
INTERVAL_S = 60 * 60.0


class PushActionPruner:
    def __init__(self, stores: Stores, clock: Clock) -> None:
        self._stores = stores
        self._clock = clock
        self._ticker = Ticker(self.tick, "pruning push actions", INTERVAL_S)

    async def tick(self) -> int:
        now = self._clock.time_ms()
        deleted = await self._stores.push_actions.prune_read(
            now - PLAIN_KEPT_MS, now - HIGHLIGHT_KEPT_MS
        )
        if deleted:
            logger.info("pruned %d read push actions", deleted)
        return deleted

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
