"""Outbound federation health as the admin API shows it, and the reset of a backoff."""

from __future__ import annotations

from collections.abc import Callable

from homeserver.errors import MatrixError, NotFound
from storage.federation_queue import DestinationHealth, FederationQueueStore

# a page of (room ID, stream ordering) and the total (named here: ``list`` below is a method)
RoomPage = tuple[list[tuple[str, int]], int]


class DestinationAdmin:
    def __init__(
        self, queue: FederationQueueStore, retry_now: Callable[[str], None] | None = None
    ) -> None:
        self._queue = queue
        # the federation sender's: send what is queued for a destination at once
        self._retry_now = retry_now

    async def list(self, limit: int, offset: int) -> tuple[list[DestinationHealth], int]:
        """A page of destinations (by name) and the total count."""
        return await self._queue.list_health(limit, offset)

    async def get(self, destination: str) -> DestinationHealth:
        """One destination; M_NOT_FOUND if this server never sent to it."""
        health = await self._queue.get_health(destination)
        if health is None:
            raise NotFound("Unknown destination")
        return health

    async def rooms(self, destination: str, limit: int, offset: int, *, forwards: bool) -> RoomPage:
        """A page of the rooms whose events went to ``destination``; M_NOT_FOUND if this
        server never had anything to do with it."""
        if not await self._queue.is_known(destination):
            raise NotFound("Unknown destination")
        return await self._queue.destination_rooms(destination, limit, offset, forwards=forwards)

    async def reset_connection(self, destination: str) -> None:
        """Cancel the backoff of a failing destination and send what is queued for it
        now (in the background). 400 if it is not backing off."""
        if not await self._queue.is_known(destination):
            raise NotFound("Unknown destination")
        health = await self._queue.get_health(destination)
        if health is None or not health.retry_last_ts:
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "The retry timing does not need to be reset for this destination.",
            )
        await self._queue.clear_backoff(destination)
        if self._retry_now is not None:
            self._retry_now(destination)
