"""Outbound federation health as the admin API shows it, and the reset of a backoff."""

from __future__ import annotations

from homeserver.errors import NotFound
from storage.federation_queue import DestinationHealth, FederationQueueStore


class DestinationAdmin:
    def __init__(self, queue: FederationQueueStore) -> None:
        self._queue = queue

    async def list(self, limit: int, offset: int) -> tuple[list[DestinationHealth], int]:
        """A page of destinations (by name) and the total count."""
        return await self._queue.list_health(limit, offset)

    async def get(self, destination: str) -> DestinationHealth:
        """One destination; M_NOT_FOUND if this server never sent to it."""
        health = await self._queue.get_health(destination)
        if health is None:
            raise NotFound("Unknown destination")
        return health
