"""Media retention (Synapse's ``media_retention``): every hour, local media not
accessed for ``local_media_lifetime`` and cached remote media not accessed for
``remote_media_lifetime`` are deleted, rows, thumbnails and files.

Local media keeps what Synapse keeps: quarantined and protected media, and the
avatars of users and rooms (a profile picture is rarely downloaded by its owner but
must not vanish). Remote media is only a cache: it is fetched again when asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from homeserver.clock import Clock
from homeserver.config import MediaRetentionConfig
from homeserver.media.service import MediaService
from homeserver.ticker import Ticker

logger = logging.getLogger(__name__)

INTERVAL_S = 60 * 60.0


@dataclass(frozen=True)
class RetentionRun:
    """What one run deleted."""

    local: int
    remote: int


class MediaRetention:
    def __init__(self, media: MediaService, clock: Clock, config: MediaRetentionConfig) -> None:
        self._media = media
        self._clock = clock
        self._config = config
        self._ticker = Ticker(self.tick, "applying media retention", INTERVAL_S)

    async def tick(self) -> RetentionRun:
        now = self._clock.time_ms()
        local = remote = 0
        if self._config.local_media_lifetime is not None:
            deleted = await self._media.delete_local_older(
                now - self._config.local_media_lifetime, -1, keep_profiles=True
            )
            local = len(deleted)
        if self._config.remote_media_lifetime is not None:
            remote = await self._media.purge_remote_cache(now - self._config.remote_media_lifetime)
        if local or remote:
            logger.info("media retention deleted %d local and %d remote media", local, remote)
        return RetentionRun(local, remote)

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
