"""A script run in a fresh interpreter that imports this checkout first: for tests of
what a process does from its start (what it imports, how its allocator is set up)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(
    script: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``args`` (``sys.argv[1:]``) in the environment ``env``
    (default: this process's), this checkout ahead on PYTHONPATH; output as text."""
    base = dict(os.environ if env is None else env)
    path = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=dict(base, PYTHONPATH=path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
