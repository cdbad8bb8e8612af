"""``retention``: message retention policies (Synapse's option of that name, MSC1763).

Durations are milliseconds or strings like ``"1d"`` (as everywhere in the config).
The checks are Synapse's: a default policy's ``min_lifetime`` and the limits'
``allowed_lifetime_min`` may not exceed their maximum, a purge job needs an
``interval`` and a range whose ``shortest_max_lifetime`` does not exceed its
``longest_max_lifetime``. Without ``purge_jobs`` one job purges every room daily.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from homeserver.config._reader import Reader, to_bool, to_duration_ms, to_positive_duration_ms

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class RetentionPurgeJob:
    """One background purge: every ``interval`` ms, the rooms whose ``max_lifetime``
    is in (``shortest_max_lifetime``, ``longest_max_lifetime``] (None: unbounded)."""

    interval: int
    shortest_max_lifetime: int | None = None
    longest_max_lifetime: int | None = None


DEFAULT_PURGE_JOBS = (RetentionPurgeJob(DAY_MS),)


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    enabled: bool = False
    # default_policy, for the rooms without an m.room.retention policy
    default_min_lifetime: int | None = None
    default_max_lifetime: int | None = None
    allowed_lifetime_min: int | None = None
    allowed_lifetime_max: int | None = None
    purge_jobs: tuple[RetentionPurgeJob, ...] = field(default=DEFAULT_PURGE_JOBS)

    @staticmethod
    def parse(reader: Reader) -> RetentionConfig:
        enabled = reader.get("enabled", to_bool, False)
        policy = reader.child("default_policy")
        default_min = policy.optional("min_lifetime", to_duration_ms)
        default_max = policy.optional("max_lifetime", to_duration_ms)
        policy.finish()
        if default_min is not None and default_max is not None and default_min > default_max:
            reader.error(
                "default_policy",
                "the default retention policy's 'min_lifetime' can not be greater than"
                " its 'max_lifetime'",
            )
        allowed_min = reader.optional("allowed_lifetime_min", to_duration_ms)
        allowed_max = reader.optional("allowed_lifetime_max", to_duration_ms)
        if allowed_min is not None and allowed_max is not None and allowed_min > allowed_max:
            reader.error("allowed_lifetime_min", "can not be greater than 'allowed_lifetime_max'")
        jobs: list[RetentionPurgeJob] = []
        for job in reader.children("purge_jobs") or []:
            interval = job.require("interval", to_positive_duration_ms)
            shortest = job.optional("shortest_max_lifetime", to_duration_ms)
            longest = job.optional("longest_max_lifetime", to_duration_ms)
            job.finish()
            if shortest is not None and longest is not None and shortest > longest:
                job.error("shortest_max_lifetime", "can not be greater than 'longest_max_lifetime'")
            if interval is not None:
                jobs.append(RetentionPurgeJob(interval, shortest, longest))
        reader.finish()
        return RetentionConfig(
            enabled=enabled,
            default_min_lifetime=default_min,
            default_max_lifetime=default_max,
            allowed_lifetime_min=allowed_min,
            allowed_lifetime_max=allowed_max,
            purge_jobs=tuple(jobs) or DEFAULT_PURGE_JOBS,
        )
