"""Resident memory of a freshly started homeserver, and what its imports cost.

Starts ``python -m homeserver`` on a fresh SQLite config (``bench_server.Instance``),
waits until it answers ``/_matrix/client/versions`` and prints its VmRSS, RssAnon
and VmHWM from ``/proc``. With ``--imports``, a child interpreter imports what the
server process imports at start-up (``homeserver.__main__``, ``homeserver.server``)
under a ``builtins.__import__`` hook, and the top contributors are printed: the
inclusive RSS growth of the first import of each module, with the module that
imported it.

    python bench/startup_rss.py [--imports] [--top 25]

Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_client import rss_kib
from bench_server import Instance

_REPO = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("homeserver", "client_api", "federation", "storage")

# Runs in the child interpreter: every first import of a module is timed in RSS
# (inclusive of what it imports in turn); prints one JSON list of
# [module, importer, kib] rows on stdout.
_IMPORT_PROBE = r"""
import builtins, json, os, sys

_page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
_statm = open("/proc/self/statm", "rb", buffering=0)

def _rss_kib():
    _statm.seek(0)
    return int(_statm.read().split()[1]) * _page_kib

_original = builtins.__import__
_rows = []

def _resolve(name, globals_, level):
    if level == 0 or not globals_:
        return name
    package = globals_.get("__package__") or ""
    base = package.rsplit(".", level - 1)[0] if level > 1 else package
    return f"{base}.{name}" if name else base

def _hook(name, globals=None, locals=None, fromlist=(), level=0):
    full = _resolve(name, globals, level)
    if full in sys.modules:
        return _original(name, globals, locals, fromlist, level)
    importer = (globals or {}).get("__name__", "?")
    before = _rss_kib()
    try:
        return _original(name, globals, locals, fromlist, level)
    finally:
        _rows.append([full, importer, _rss_kib() - before])

builtins.__import__ = _hook
import homeserver.__main__, homeserver.server  # noqa: E401
builtins.__import__ = _original
print(json.dumps({"rows": _rows, "total_kib": _rss_kib(), "modules": len(sys.modules)}))
"""


async def _ready(instance: Instance) -> None:
    async with aiohttp.ClientSession() as session:
        await instance.wait_ready(session)


def server_rss() -> dict[str, int]:
    root = Path(tempfile.mkdtemp(prefix="startup-rss-"))
    try:
        instance = Instance.on_sqlite("hs", root)
        instance.start()
        try:
            asyncio.run(_ready(instance))
            assert instance.pid is not None
            return rss_kib(instance.pid, ("VmRSS", "RssAnon", "RssFile", "VmHWM"))
        finally:
            instance.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class ImportCosts:
    rows: list[tuple[str, str, int]]  # module, importer, inclusive KiB of its first import
    total_kib: int
    modules: int


def import_costs() -> ImportCosts:
    path = os.pathsep.join(p for p in (str(_REPO), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        env=dict(os.environ, PYTHONPATH=path),
        capture_output=True,
        text=True,
        check=True,
    )
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [(str(m), str(i), int(k)) for m, i, k in raw["rows"]]
    return ImportCosts(rows, int(raw["total_kib"]), int(raw["modules"]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--imports", action="store_true", help="also measure import costs")
    parser.add_argument("--top", type=int, default=25, help="how many import rows to print")
    args = parser.parse_args()

    figures = server_rss()
    print(json.dumps({f"{k}_mib": round(v / 1024, 1) for k, v in figures.items()}))
    if not args.imports:
        return
    costs = import_costs()
    print(
        json.dumps({"import_rss_mib": round(costs.total_kib / 1024, 1), "modules": costs.modules})
    )
    # where the project or one package first reaches into another package
    entries = [
        r
        for r in costs.rows
        if r[0].split(".")[0] not in PROJECT_PACKAGES and r[0].split(".")[0] != r[1].split(".")[0]
    ]
    print("top first imports of other packages (inclusive KiB, module <- importer):")
    for module, importer, kib in sorted(entries, key=lambda r: -r[2])[: args.top]:
        print(f"  {kib:>7}  {module} <- {importer}")


if __name__ == "__main__":
    main()
