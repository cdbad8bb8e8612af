"""The retention purge jobs: each configured job, every ``interval``, deletes the
expired events of the rooms whose ``max_lifetime`` falls in its range (as Synapse's
``purge_history_for_rooms_in_range``).

A room is purged by the admin history purge (``homeserver/admin/purge.py``), with
local events too: everything received before ``now - max_lifetime`` goes, cut
where the admin API cuts for a timestamp, so the room's latest event always stays;
state events stay as outliers and the current state is untouched. Each job ticks on
its own ``Ticker``; tests call :meth:`PurgeJob.tick` after moving the FakeClock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from homeserver.clock import Clock
from homeserver.config import RetentionPurgeJob
from homeserver.errors import NotFound
from homeserver.retention.policy import rooms_for_job
from homeserver.retention.service import RetentionPolicies
from homeserver.ticker import Ticker
from storage.purge import HistoryPurgeResult
from storage.stores import Stores

logger = logging.getLogger(__name__)


class HistoryCut(Protocol):
    async def depth_at_timestamp(self, room_id: str, ts: int) -> int:
        """Where a purge of what was received before ``ts`` cuts (NotFound: nothing)."""
        ...


class HistoryPurger(Protocol):
    async def purge_history(
        self, room_id: str, depth: int, *, delete_local_events: bool
    ) -> HistoryPurgeResult: ...


@dataclass
class PurgeRun:
    """What one run of a job did: room ID -> number of events deleted."""

    deleted: dict[str, int] = field(default_factory=dict)


class PurgeJob:
    def __init__(
        self,
        job: RetentionPurgeJob,
        policies: RetentionPolicies,
        stores: Stores,
        cut: HistoryCut,
        purger: HistoryPurger,
        clock: Clock,
    ) -> None:
        self.job = job
        self._policies = policies
        self._stores = stores
        self._cut = cut
        self._purger = purger
        self._clock = clock
        self._ticker = Ticker(self._tick, "running a retention purge job", job.interval / 1000)

    async def rooms(self) -> dict[str, int]:
        """The rooms this job handles, with the max_lifetime each is purged by."""
        events = await self._stores.retention.policy_events()
        policies = await self._policies.policies_of_events(events.values())
        room_policies = {
            room_id: policy
            for room_id, event_id in events.items()
            if (policy := policies.get(event_id)) is not None
        }
        config = self._policies.config
        all_rooms: list[str] = []
        if config.default_max_lifetime is not None:
            all_rooms = await self._stores.retention.rooms()
        return rooms_for_job(self.job, room_policies, all_rooms, config)

    async def tick(self) -> PurgeRun:
        run = PurgeRun()
        job = self.job
        rooms = await self.rooms()
        logger.info(
            "retention purge job for %s < max_lifetime <= %s: %d rooms",
            job.shortest_max_lifetime,
            job.longest_max_lifetime,
            len(rooms),
        )
        now = self._clock.time_ms()
        for room_id, max_lifetime in sorted(rooms.items()):
            try:
                depth = await self._cut.depth_at_timestamp(room_id, now - max_lifetime)
                result = await self._purger.purge_history(room_id, depth, delete_local_events=True)
            except NotFound:
                continue  # no timeline event in the room
            except Exception:
                logger.exception("retention purge of %s failed", room_id)
                continue
            run.deleted[room_id] = len(result.deleted)
        return run

    async def _tick(self) -> None:
        await self.tick()

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()


class RetentionPurgeJobs:
    """The configured purge jobs (Synapse's ``retention.purge_jobs``)."""

    def __init__(
        self,
        policies: RetentionPolicies,
        stores: Stores,
        cut: HistoryCut,
        purger: HistoryPurger,
        clock: Clock,
    ) -> None:
        self.jobs = [
            PurgeJob(job, policies, stores, cut, purger, clock)
            for job in policies.config.purge_jobs
        ]

    def start(self) -> None:
        for job in self.jobs:
            job.start()

    async def stop(self) -> None:
        for job in self.jobs:
            await job.stop()
