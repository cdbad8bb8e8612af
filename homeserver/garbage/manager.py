"""Running the cyclic garbage collector on a schedule, as Synapse does.

CPython collects a generation as soon as its count passes the threshold, in the middle
of whatever request is running; a full collection walks every tracked object, tens of
milliseconds once caches are warm, and lands on the tail of delivery latency. As
Synapse (``synapse/metrics/_gc.py``), the server turns automatic collection off once it
is up, freezes what start-up allocated (modules, classes, config: never garbage, now
never walked again), and a tick every 100 ms collects the oldest generation whose
count passed its threshold (``gc_thresholds``) and whose last collection is older than
its minimum interval (``gc_min_interval``, by default 1 s, 10 s and 30 s). Collecting
a generation collects the younger ones too, so one tick collects at most once.
Nothing is collected while a batch holds the collector paused (`pause.gc_paused`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Sequence

from homeserver.garbage.pause import is_paused

logger = logging.getLogger(__name__)

TICK_S = 0.1
DEFAULT_MIN_INTERVAL_S: tuple[float, float, float] = (1.0, 10.0, 30.0)

# (generation, seconds the collection took, unreachable objects it found)
CollectionObserver = Callable[[int, float, int], None]


class GcManager:
    """The decision of each tick: which generation, if any, to collect now. The
    collector's functions and the clock are parameters, so tests drive them."""

    def __init__(
        self,
        min_interval_s: Sequence[float] = DEFAULT_MIN_INTERVAL_S,
        *,
        now: Callable[[], float] = time.monotonic,
        get_count: Callable[[], tuple[int, int, int]] = gc.get_count,
        get_threshold: Callable[[], tuple[int, int, int]] = gc.get_threshold,
        collect: Callable[[int], int] = gc.collect,
        paused: Callable[[], bool] = is_paused,
        observe: CollectionObserver | None = None,
    ) -> None:
        if len(min_interval_s) != 3:
            raise ValueError("min_interval_s needs one interval per generation")
        self.min_interval_s = tuple(min_interval_s)
        self._now = now
        self._get_count = get_count
        self._get_threshold = get_threshold
        self._collect = collect
        self._paused = paused
        self._observe = observe
        started = now()
        self._last = [started, started, started]

    def tick(self) -> int | None:
        """Collect the oldest generation that is due; the generation collected, or None."""
        if self._paused():
            return None
        counts = self._get_count()
        thresholds = self._get_threshold()
        now = self._now()
        for generation in (2, 1, 0):
            if counts[generation] <= thresholds[generation]:
                continue
            if now - self._last[generation] <= self.min_interval_s[generation]:
                continue
            start = time.perf_counter()
            unreachable = self._collect(generation)
            took = time.perf_counter() - start
            # a collection of this generation is one of every younger one too
            for younger in range(generation + 1):
                self._last[younger] = now
            if generation > 0:
                logger.debug("collected generation %d in %.1f ms", generation, took * 1000)
            if self._observe is not None:
                self._observe(generation, took, unreachable)
            return generation
        return None


class ScheduledCollector:
    """The manager installed in a running server: thresholds set, start-up objects
    frozen, automatic collection off and the tick task running, until `stop`."""

    def __init__(
        self,
        min_interval_s: Sequence[float] = DEFAULT_MIN_INTERVAL_S,
        thresholds: tuple[int, int, int] | None = None,
        observe: CollectionObserver | None = None,
    ) -> None:
        self.manager = GcManager(min_interval_s, observe=observe)
        self._thresholds = thresholds
        self._task: asyncio.Task[None] | None = None
        self._was_enabled = True

    def start(self) -> None:
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
        # Everything allocated so far lives as long as the process: collect what is
        # already garbage, then keep the rest out of every later collection.
        gc.collect()
        gc.freeze()
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gc-manager")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.manager.tick()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()
