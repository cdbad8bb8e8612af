"""The garbage collector. ``gc_paused``: the collector is off inside, back on when the
last overlapping pause ends (also on an error), and left off when it was off before.
``GcManager``: Synapse's schedule (thresholds and minimum intervals per generation),
driven here by a fake collector and clock; ``ScheduledCollector``: installed and
removed on the real collector."""

from __future__ import annotations

import gc

import pytest

from homeserver.garbage.manager import GcManager, ScheduledCollector
from homeserver.garbage.pause import gc_paused


def test_pauses_nest_and_the_collector_resumes_after_the_last() -> None:
    assert gc.isenabled()
    outer = gc_paused()
    outer.__enter__()
    assert not gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the outer pause still holds
    outer.__exit__(None, None, None)
    assert gc.isenabled()


def test_the_collector_resumes_after_an_error() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("failed while paused")
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- the scheduled collector (Synapse's gc manager) ---------------------------------


class FakeCollector:
    """gc's counters and clock, driven by the test."""

    def __init__(self) -> None:
        self.now = 100.0
        self.counts = [0, 0, 0]
        self.thresholds = (700, 10, 10)
        self.collected: list[int] = []
        self.observed: list[tuple[int, int]] = []
        self.paused = False

    def collect(self, generation: int) -> int:
        self.collected.append(generation)
        # as CPython: the collected generations restart, the next older one counts one
        for younger in range(generation + 1):
            self.counts[younger] = 0
        if generation < 2:
            self.counts[generation + 1] += 1
        return 3

    def manager(self, min_interval: tuple[float, float, float] = (1.0, 10.0, 30.0)) -> GcManager:
        return GcManager(
            min_interval,
            now=lambda: self.now,
            get_count=lambda: (self.counts[0], self.counts[1], self.counts[2]),
            get_threshold=lambda: self.thresholds,
            collect=self.collect,
            paused=lambda: self.paused,
            observe=lambda gen, _took, unreachable: self.observed.append((gen, unreachable)),
        )


def test_nothing_is_collected_below_the_thresholds() -> None:
    fake = FakeCollector()
    manager = fake.manager()
    fake.counts = [700, 10, 10]  # equal is not past
    fake.now += 60
    assert manager.tick() is None
    assert fake.collected == []


def test_a_generation_is_collected_at_most_once_per_minimum_interval() -> None:
    fake = FakeCollector()
    manager = fake.manager()
    fake.counts[0] = 5000
    assert manager.tick() is None  # less than 1 s since start-up
    fake.now += 1.5
    assert manager.tick() == 0
    assert fake.observed == [(0, 3)]
    fake.counts[0] = 5000
    fake.now += 0.5
    assert manager.tick() is None
    fake.now += 0.6
    assert manager.tick() == 0
    assert fake.collected == [0, 0]


def test_the_oldest_due_generation_is_collected_and_counts_for_the_younger() -> None:
    fake = FakeCollector()
    manager = fake.manager()
    fake.counts = [5000, 50, 50]
    fake.now += 31
    assert manager.tick() == 2
    # everything was just collected: nothing younger is due again for its interval
    fake.counts = [5000, 50, 0]
    fake.now += 0.5
    assert manager.tick() is None
    fake.now += 0.6
    assert manager.tick() == 0
    assert fake.collected == [2, 0]


def test_a_generation_not_yet_due_lets_a_younger_one_run() -> None:
    fake = FakeCollector()
    manager = fake.manager()
    fake.counts = [5000, 50, 50]
    fake.now += 5  # gen 0 due (1 s), gen 1 (10 s) and gen 2 (30 s) not yet
    assert manager.tick() == 0
    fake.counts = [5000, 50, 50]
    fake.now += 6  # 11 s: gen 1 due, gen 2 not
    assert manager.tick() == 1
    assert fake.collected == [0, 1]


def test_nothing_is_collected_while_a_batch_pauses_the_collector() -> None:
    fake = FakeCollector()
    manager = fake.manager()
    fake.counts = [5000, 50, 50]
    fake.now += 60
    fake.paused = True
    assert manager.tick() is None
    fake.paused = False
    assert manager.tick() == 2


def test_the_manager_takes_one_interval_per_generation() -> None:
    with pytest.raises(ValueError):
        GcManager((1.0, 2.0))


async def test_the_installed_collector_freezes_start_up_and_restores_on_stop() -> None:
    thresholds = gc.get_threshold()
    collector = ScheduledCollector((1.0, 10.0, 30.0), (900, 12, 11))
    collector.start()
    try:
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (900, 12, 11)
        assert collector.manager.min_interval_s == (1.0, 10.0, 30.0)
    finally:
        await collector.stop()
        gc.set_threshold(*thresholds)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
