"""Pausing the cyclic garbage collector while a big batch is built and checked.

Parsing a big room's state (a ``send_join`` answer: tens of thousands of events, each
a tree of dicts) allocates millions of container objects; CPython's collector then
runs full collections over all of them again and again (a quarter of the time spent).
Reference counting still frees everything that is not in a cycle while paused, so
the pause only defers cyclic garbage; the collector resumes, with its usual
thresholds, when the last pause ends. Synapse tunes its collector for the same reason
(``gc_thresholds``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


class _PauseCount:
    """Pauses in progress (they nest, and overlap between concurrent tasks)."""

    active = 0
    was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside (unless someone else disabled it already: then left
    as it is)."""
    if _PauseCount.active == 0:
        _PauseCount.was_enabled = gc.isenabled()
        gc.disable()
    _PauseCount.active += 1
    try:
        yield
    finally:
        _PauseCount.active -= 1
        if _PauseCount.active == 0 and _PauseCount.was_enabled:
            gc.enable()


def is_paused() -> bool:
    """Whether a pause is in progress (the manager, which runs with automatic
    collection off, collects nothing then)."""
    return _PauseCount.active > 0
