"""Token-bucket rate limiting per action and key (IP address or user ID)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from homeserver.clock import Clock
from homeserver.errors import LimitExceeded


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst_count: float


class LimitedRequester(Protocol):
    """Who acts: a user, and whether rate limits apply to them (an application
    service's users are exempt unless its registration says ``rate_limited``)."""

    @property
    def user_id(self) -> str: ...

    @property
    def rate_limited(self) -> bool: ...


class RateLimiter:
    """Buckets refill at ``per_second`` up to ``burst_count``; each action costs one."""

    def __init__(self, clock: Clock, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._max_keys = max_keys

    def check(self, action: str, key: str, limit: RateLimit, *, cost: float = 1.0) -> None:
        """Spend ``cost`` from the bucket or raise M_LIMIT_EXCEEDED."""
        if limit.per_second <= 0 and limit.burst_count <= 0:
            return
        now = self._clock.monotonic()
        level, last = self._buckets.get((action, key), (limit.burst_count, now))
        level = min(limit.burst_count, level + (now - last) * limit.per_second)
        if level < cost:
            missing = cost - level
            wait = missing / limit.per_second if limit.per_second > 0 else 3600.0
            raise LimitExceeded(int(wait * 1000) + 1)
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()
        self._buckets[(action, key)] = (level - cost, now)

    def check_requester(
        self, action: str, requester: LimitedRequester, limit: RateLimit, *, cost: float = 1.0
    ) -> None:
        """:meth:`check` keyed by the requester's user ID, unless they are exempt."""
        if requester.rate_limited:
            self.check(action, requester.user_id, limit, cost=cost)

    def would_allow(self, action: str, key: str, limit: RateLimit) -> bool:
        now = self._clock.monotonic()
        level, last = self._buckets.get((action, key), (limit.burst_count, now))
        return min(limit.burst_count, level + (now - last) * limit.per_second) >= 1.0
