"""Retention policies themselves (MSC1763, as Synapse reads them), without IO.

A room's policy is the content of its current ``m.room.retention`` state event:
``max_lifetime`` and ``min_lifetime``, integers of milliseconds, both optional. An
event whose content holds neither, or a value that is not an integer, sets no policy
(Synapse records none for it). Each value the room's policy lacks comes from the
server's ``default_policy``. ``min_lifetime`` is only recorded, as in Synapse.

A non-state event older than its room's ``max_lifetime`` (by ``origin_server_ts``)
is expired: clients never get it. The purge jobs delete expired events with the
room's ``max_lifetime`` brought within ``allowed_lifetime_min`` and
``allowed_lifetime_max``; which rooms a job handles is decided on the room's own
``max_lifetime``, before that clamping (as Synapse, see :func:`rooms_for_job`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.config import RetentionConfig, RetentionPurgeJob
from homeserver.errors import MatrixError

RETENTION = "m.room.retention"
LIFETIMES = ("min_lifetime", "max_lifetime")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    min_lifetime: int | None = None
    max_lifetime: int | None = None


NO_POLICY = RetentionPolicy()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_retention_content(content: Mapping[str, Any], *, is_state: bool) -> None:
    """The checks Synapse makes on an ``m.room.retention`` event a local user sends:
    a state event, integer lifetimes, ``min_lifetime`` not above ``max_lifetime``."""
    if not is_state:
        raise MatrixError(400, "M_UNKNOWN", "must be a state event")
    for key in LIFETIMES:
        value = content.get(key)
        if value is not None and not _is_int(value):
            raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be an integer")
    low, high = content.get("min_lifetime"), content.get("max_lifetime")
    if low is not None and high is not None and low > high:
        raise MatrixError(400, "M_BAD_JSON", "'min_lifetime' can't be greater than 'max_lifetime'")


def policy_of_content(content: Mapping[str, Any]) -> RetentionPolicy | None:
    """The policy an ``m.room.retention`` event's content sets; None when it sets none."""
    present = [key for key in LIFETIMES if key in content]
    if not present or not all(_is_int(content[key]) for key in present):
        return None
    return RetentionPolicy(content.get("min_lifetime"), content.get("max_lifetime"))


def default_policy(config: RetentionConfig) -> RetentionPolicy:
    return RetentionPolicy(config.default_min_lifetime, config.default_max_lifetime)


def effective_policy(room: RetentionPolicy | None, config: RetentionConfig) -> RetentionPolicy:
    """The room's policy, its missing values taken from the default policy."""
    default = default_policy(config)
    if room is None:
        return default
    return RetentionPolicy(
        default.min_lifetime if room.min_lifetime is None else room.min_lifetime,
        default.max_lifetime if room.max_lifetime is None else room.max_lifetime,
    )


def is_expired(
    *, is_state: bool, origin_server_ts: int, policy: RetentionPolicy, now_ms: int
) -> bool:
    """Whether clients may no longer get this event (state events never expire)."""
    if is_state or policy.max_lifetime is None:
        return False
    return origin_server_ts < now_ms - policy.max_lifetime


def clamp_max_lifetime(max_lifetime: int, config: RetentionConfig) -> int:
    """``max_lifetime`` brought up to ``allowed_lifetime_min``, then down to
    ``allowed_lifetime_max`` (for the purge jobs)."""
    if config.allowed_lifetime_min is not None:
        max_lifetime = max(config.allowed_lifetime_min, max_lifetime)
    if config.allowed_lifetime_max is not None:
        max_lifetime = min(max_lifetime, config.allowed_lifetime_max)
    return max_lifetime


def _in_range(value: int, job: RetentionPurgeJob) -> bool:
    if job.shortest_max_lifetime is not None and value <= job.shortest_max_lifetime:
        return False
    return job.longest_max_lifetime is None or value <= job.longest_max_lifetime


def rooms_for_job(
    job: RetentionPurgeJob,
    room_policies: Mapping[str, RetentionPolicy],
    all_rooms: Iterable[str],
    config: RetentionConfig,
) -> dict[str, int]:
    """The rooms a purge job handles, with the ``max_lifetime`` to purge them by.

    ``room_policies``: the rooms whose state sets a policy. A room is handled when
    its own ``max_lifetime`` is in the job's range; a room without one (no policy, or
    a policy with ``min_lifetime`` only) when the default policy's ``max_lifetime``
    is. Rooms with no ``max_lifetime`` at all are never purged.
    """
    default_max = config.default_max_lifetime
    default_in_range = default_max is not None and _in_range(default_max, job)
    handled: dict[str, int] = {}
    for room_id, policy in room_policies.items():
        if policy.max_lifetime is not None:
            if _in_range(policy.max_lifetime, job):
                handled[room_id] = clamp_max_lifetime(policy.max_lifetime, config)
        elif default_in_range and default_max is not None:
            handled[room_id] = clamp_max_lifetime(default_max, config)
    if default_in_range and default_max is not None:
        for room_id in all_rooms:
            if room_id not in room_policies:
                handled[room_id] = clamp_max_lifetime(default_max, config)
    return handled
