"""``limit_malloc_arenas``: under glibc, threads that allocate share the capped number
of arenas (counted by glibc's own ``malloc_stats``, in a child process so that the
test process keeps its allocator as it is); ``MALLOC_ARENA_MAX`` set by the admin
wins."""

from __future__ import annotations

import os
import platform
import textwrap

import pytest

from homeserver.garbage.arenas import limit_malloc_arenas
from tests.child_python import run_python

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="arenas are glibc's allocator's"
)

# Caps the arenas at argv[1] (0: leaves them), then has six threads allocate at the
# same time and prints how many arenas glibc reports.
_SCRIPT = textwrap.dedent(
    """
    import ctypes, sys, threading
    from homeserver.garbage.arenas import limit_malloc_arenas

    cap = int(sys.argv[1])
    if cap:
        assert limit_malloc_arenas(cap)
    barrier = threading.Barrier(6)

    def allocate() -> None:
        held = [bytearray(4096) for _ in range(64)]  # past pymalloc: from malloc
        barrier.wait()  # every thread holds its blocks before any lets go
        del held

    threads = [threading.Thread(target=allocate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block each, on stderr
    """
)


def _arenas(cap: int) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = run_python(_SCRIPT, str(cap), env=env)
    assert done.returncode == 0, done.stderr
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


@glibc_only
def test_threads_share_the_capped_arenas() -> None:
    assert _arenas(0) > 2  # uncapped, the threads got arenas of their own
    assert _arenas(2) == 2


def test_the_environment_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(1) is False
