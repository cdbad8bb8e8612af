"""Rate limiting of inbound federation requests per origin server.

One token bucket per authenticated origin (``rc_federation``: ``burst_count``
requests at once, refilled at ``per_second``) covers ``/send`` and the event read
endpoints; over it a request gets 429 ``M_LIMIT_EXCEEDED`` with ``retry_after_ms``
(s2s "API standards": rate limiting, ``M_LIMIT_EXCEEDED``). Our own server name is
never limited.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from homeserver.clock import Clock
from homeserver.ratelimit import RateLimit, RateLimiter

OriginHandler = Callable[[str, web.Request], Awaitable[web.StreamResponse]]

ACTION = "federation"


class FederationRateLimiter:
    """Per-origin buckets for the federation endpoints."""

    def __init__(self, server_name: str, clock: Clock, per_second: float, burst_count: float):
        self._server_name = server_name
        self._limiter = RateLimiter(clock)
        self._limit = RateLimit(per_second, burst_count)

    def check(self, origin: str) -> None:
        """Spend one request of ``origin``'s bucket or raise ``LimitExceeded``."""
        if origin != self._server_name:
            self._limiter.check(ACTION, origin, self._limit)

    def limited(self, handler: OriginHandler) -> OriginHandler:
        """``handler(origin, request)`` behind ``origin``'s bucket."""

        @functools.wraps(handler)
        async def wrapped(origin: str, request: web.Request) -> web.StreamResponse:
            self.check(origin)
            return await handler(origin, request)

        return wrapped
