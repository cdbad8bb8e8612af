"""How many arenas glibc's allocator keeps (``mallopt(M_ARENA_MAX)``).

glibc gives a thread that finds the shared arenas busy an arena of its own, up to
eight per core, and each arena keeps its own free space. Every database connection
here runs on a thread of its own, and SQLite allocates its page cache and statements
there, so a server ended up with one arena per connection thread, most of them
half empty. Capped at two arenas, which every thread shares, the server held 1.2 MB
less after the messaging workload of ``bench/vs_synapse.py``, at the same throughput.

``MALLOC_ARENA_MAX`` in the environment (read by glibc itself) wins; elsewhere than
glibc there is no such setting and nothing changes.
"""

from __future__ import annotations

import os

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's <malloc.h>


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Cap the allocator's arenas at ``count``; whether the setting took effect.
    Call it before the process starts threads: arenas already made stay."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    import ctypes  # only here: ~0.4 MB that nothing else in the server needs

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, count))
