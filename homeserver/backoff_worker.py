"""A queue drained by one task, woken on demand, that backs off after a failure.

Push gateways (``homeserver/push/pushers.py``) and application services
(``homeserver/appservice/delivery.py``) are each fed by one: the task runs ``_step``
while it says there may be more, sleeps until ``wake`` otherwise, and after a failure
(``_fail``) waits a backoff that doubles from ``initial_backoff_s`` up to
``max_backoff_s``, timed by the ``Clock`` so tests move time themselves (a waiting
task looks at the clock again at least every ``max_wait_s``, and on every wake).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from homeserver.clock import Clock

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0


class BackoffWorker:
    initial_backoff_s = 1.0
    max_backoff_s = 300.0
    max_wait_s = 30.0

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff_s = 0.0
        # when the next attempt is due after a failure (None: not backing off)
        self.next_attempt_ms: int | None = None
        self.failures = 0

    async def _step(self) -> bool:
        """Do some of the work; True when there may be more right away."""
        raise NotImplementedError

    def _describe(self) -> str:
        """What the worker delivers to, for the log."""
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def retry_now(self) -> None:
        """A backoff ends at once (the other side said it is back)."""
        if self.next_attempt_ms is not None:
            self.next_attempt_ms = None
            self.wake()

    async def _stop_task(self) -> None:
        """Stop at the next safe point (a request under way may be cut short)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _fail(self) -> None:
        self.failures += 1
        self._backoff_s = min(max(self._backoff_s * 2, self.initial_backoff_s), self.max_backoff_s)
        self.next_attempt_ms = self._clock.time_ms() + int(self._backoff_s * 1000)

    def _succeeded(self) -> None:
        self._backoff_s = 0.0
        self.next_attempt_ms = None

    async def _sleep(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _run(self) -> None:
        while self._task is not None:
            if self.next_attempt_ms is not None:
                remaining_ms = self.next_attempt_ms - self._clock.time_ms()
                if remaining_ms > 0:
                    await self._sleep(min(remaining_ms / 1000, self.max_wait_s))
                    continue
            self._wake.clear()
            try:
                more = await self._step()
            except Exception:
                logger.exception("delivery to %s failed", self._describe())
                self._fail()
                continue
            if self._task is None:
                return  # stopped
            if not more and self.next_attempt_ms is None:
                await self._sleep(None)
