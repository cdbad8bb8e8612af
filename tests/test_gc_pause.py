"""``gc_paused``: the collector is off inside, back on when the last overlapping pause
ends (also on an error), and left off when it was off before."""

from __future__ import annotations

import gc

import pytest

from homeserver.gc_pause import gc_paused


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
