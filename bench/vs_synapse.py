"""A client workload against this homeserver and against Synapse, in one run.

Run: ``python bench/vs_synapse.py messaging [--messages N] [--receivers N] ...`` or
``python bench/vs_synapse.py ephemeral [--users N] [--rounds N]``.
Prints both sets of figures side by side; asserts nothing.

Each server is started fresh on SQLite, measured with the same workload
(``bench_messaging.py``: send throughput, delivery latency to long-polls, initial
sync; ``bench_ephemeral.py``: typing and receipts in one room, every member
long-polling; the arguments are theirs), and stopped before the next one starts,
so they never share the machine:

- this homeserver as its own process (``python -m homeserver``, config written
  here: client API on plain HTTP, rate limits off, presence on as by default);
- Synapse through the reference harness (``../shared/tools/synapse/start.sh``,
  which turns its rate limits off and keeps presence on), on port 18050.

Registration is not measured (the two hash passwords at different costs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_client import print_result, print_side_by_side, side_by_side_rows
from bench_ephemeral import run as run_ephemeral
from bench_messaging import FIGURES as MESSAGING_FIGURES
from bench_messaging import run as run_messaging
from bench_server import Instance, fresh_synapse, require_synapse_harness

SYNAPSE_NAME = "benchvs"
SYNAPSE_PORT = 18050

Workload = Callable[[argparse.Namespace], Awaitable[dict[str, Any]]]

MESSAGING_ROWS = MESSAGING_FIGURES
EPHEMERAL_ROWS = [
    ("typing delivery p50 (ms)", "typing_p50_ms"),
    ("typing delivery p99 (ms)", "typing_p99_ms"),
    ("typing delivered (%)", "typing_delivered_pct"),
    ("receipt delivery p50 (ms)", "receipt_p50_ms"),
    ("receipt delivery p99 (ms)", "receipt_p99_ms"),
    ("receipt delivered (%)", "receipt_delivered_pct"),
    ("PUT typing / POST receipt p50 (ms)", "action_p50_ms"),
]


def workload_args(args: argparse.Namespace, base: str, pid: int | None) -> argparse.Namespace:
    """The workload's own arguments: ours, with the server's address and process."""
    own = {k: v for k, v in vars(args).items() if k not in ("workload", "out")}
    return argparse.Namespace(**own, base=base, pid=pid, out=None)


async def measure_ours(workload: Workload, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    instance = Instance.on_sqlite("ours", root)
    instance.start()
    try:
        async with aiohttp.ClientSession() as session:
            await instance.wait_ready(session)
        return await workload(workload_args(args, instance.base, instance.pid))
    finally:
        instance.stop()


def measure_synapse(workload: Workload, args: argparse.Namespace) -> dict[str, Any]:
    with fresh_synapse(SYNAPSE_NAME, SYNAPSE_PORT) as (base, pid):
        return asyncio.run(workload(workload_args(args, base, pid)))


def memory_mib(result: dict[str, Any], key: str) -> str:
    kib = result.get("rss_end_kib", {}).get(key)
    return "-" if kib is None else f"{kib / 1024:.0f}"


def print_table(
    labels: list[tuple[str, str]], ours: dict[str, Any], synapse: dict[str, Any]
) -> None:
    rows = side_by_side_rows(labels, ours, synapse)
    if "rss_end_kib" in ours:  # the workload measured memory
        for label, key in (("at end", "VmRSS"), ("peak", "VmHWM")):
            mine, theirs = memory_mib(ours, key), memory_mib(synapse, key)
            rows.append((f"resident memory, {label} (MiB)", mine, theirs))
    print_side_by_side(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=None, help="also write both results here (JSON)")
    workloads = parser.add_subparsers(dest="workload", required=True)
    messaging = workloads.add_parser("messaging", help="bench_messaging.py")
    messaging.add_argument("--users", type=int, default=20, help="senders")
    messaging.add_argument("--receivers", type=int, default=100, help="long-polling clients")
    messaging.add_argument("--rooms", type=int, default=10)
    messaging.add_argument("--messages", type=int, default=1000)
    messaging.add_argument("--concurrency", type=int, default=8)
    messaging.add_argument("--sync-rooms", type=int, default=200)
    ephemeral = workloads.add_parser("ephemeral", help="bench_ephemeral.py")
    ephemeral.add_argument("--users", type=int, default=100, help="members, typing and reading")
    ephemeral.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workload: Workload
    if args.workload == "messaging":
        workload, labels = run_messaging, MESSAGING_ROWS
    else:
        workload, labels = run_ephemeral, EPHEMERAL_ROWS
    require_synapse_harness()
    root = Path(tempfile.mkdtemp(prefix="bench-vs-"))
    try:
        ours = asyncio.run(measure_ours(workload, args, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    synapse = measure_synapse(workload, args)
    print_result({"ours": ours, "synapse": synapse}, args.out)
    print_table(labels, ours, synapse)


if __name__ == "__main__":
    main()
