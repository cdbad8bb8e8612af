"""A background task that calls ``tick`` every interval until stopped: the timers of
the services whose tests drive ``tick`` themselves after moving a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Ticker:
    def __init__(
        self, tick: Callable[[], Awaitable[None]], what: str, interval_s: float = 1.0
    ) -> None:
        self._tick = tick
        self._what = what  # for the log line of a failed tick
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ticking (idempotent: every listener's app starts the services)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._tick()
            except Exception:
                logger.exception("%s failed", self._what)
