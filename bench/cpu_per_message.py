"""Server CPU per message: the shared harness workload against a fresh homeserver.

Starts this homeserver fresh on SQLite (``bench_server.Instance``: rate limits off),
runs the shared harness benchmark (``../shared/tools/synapse/bench.py``: 20 users,
10 rooms, 2,000 messages from 8 concurrent senders, 2 long-polling receivers by
default) with the server's PID, and prints the server's CPU seconds (utime + stime
from /proc) per message over the send phase, which is robust to a loaded machine,
beside the wall-clock figures (throughput, delivery p99, peak RSS), which are not.

    python bench/cpu_per_message.py [--runs 3] [--messages 2000] [--profile DIR]

With ``--against DIR`` (another checkout, e.g. ``git archive BASE | tar -x -C DIR``),
a server of each runs the workload at the same time, so that the two figures see the
same load of a shared machine. With ``--profile DIR``, each server runs under
``py-spy record`` (collapsed stacks, ``DIR/<this|against>/profile.txt``; sampling
costs CPU, so the CPU figures of that run are higher).
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
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_server import SYNAPSE_TOOLS, Instance


async def _ready(instance: Instance) -> None:
    async with aiohttp.ClientSession() as session:
        await instance.wait_ready(session)


def start_server(name: str, root: Path, code: str) -> Instance:
    """A fresh server running the code of checkout ``code``."""
    instance = Instance.on_sqlite(name, root)
    # The harness logs every user in: rate limits off there too, as for Synapse.
    unlimited = {"per_second": 10000, "burst_count": 10000}
    instance.configure(
        rc_login={"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
        rc_joins_per_room=unlimited,
    )
    # The server process imports that checkout's code, not an installed copy.
    instance.start(code)
    return instance


def start_profiler(instance: Instance, out: Path) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(instance.pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "-o",
            str(out / "profile.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_workload(
    args: argparse.Namespace, instance: Instance, result_path: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(SYNAPSE_TOOLS / "bench.py"),
            "--base",
            instance.base,
            "--pid",
            str(instance.pid),
            "--messages",
            str(args.messages),
            "--users",
            str(args.users),
            "--rooms",
            str(args.rooms),
            "--concurrency",
            str(args.concurrency),
            "--receivers",
            str(args.receivers),
            "--out",
            str(result_path),
        ],
        stdout=subprocess.DEVNULL,
    )


def one_run(args: argparse.Namespace, root: Path, checkouts: dict[str, str]) -> dict[str, Any]:
    """The workload against a fresh server per checkout, all at the same time (so
    that each sees the same machine load): each checkout's harness result."""
    instances = {name: start_server(name, root, code) for name, code in checkouts.items()}
    spies: list[subprocess.Popen[bytes]] = []
    try:
        for instance in instances.values():
            asyncio.run(_ready(instance))
        if args.profile:
            spies = [
                start_profiler(instance, Path(args.profile) / name)
                for name, instance in instances.items()
            ]
        workloads = {
            name: start_workload(args, instance, root / f"{name}.json")
            for name, instance in instances.items()
        }
        for name, workload in workloads.items():
            if workload.wait() != 0:
                sys.exit(f"the workload against {name} failed")
        return {name: json.loads((root / f"{name}.json").read_text()) for name in instances}
    finally:
        for spy in spies:
            spy.send_signal(2)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
        for instance in instances.values():
            instance.stop()


def summary(result: dict[str, Any]) -> dict[str, Any]:
    messages = result["messages"]
    count = messages["count"]
    cpu_send = messages.get("server_cpu_s_during_send") or 0.0
    cpu_drain = messages.get("server_cpu_s_incl_drain") or 0.0
    return {
        "cpu_ms_per_msg_send": round(1000 * cpu_send / count, 2),
        "cpu_ms_per_msg_incl_drain": round(1000 * cpu_drain / count, 2),
        "send_per_s": messages["send_per_s"],
        "delivery_p50_ms": messages["delivery_latency"].get("p50_ms"),
        "delivery_p99_ms": messages["delivery_latency"].get("p99_ms"),
        "delivered_pct": round(100 * messages["delivered"] / max(1, messages["expected"]), 1),
        "peak_rss_mib": round(result["server_after"].get("VmHWM_kB", 0) / 1024, 1),
        "errors": result.get("errors"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--profile", default=None, help="directory for a py-spy profile")
    parser.add_argument(
        "--against",
        default=None,
        help="another checkout (e.g. a `git archive` of the base commit): a server of "
        "each runs the workload at the same time, so both see the same machine load",
    )
    args = parser.parse_args()
    if not (SYNAPSE_TOOLS / "bench.py").exists():
        sys.exit(f"no shared harness benchmark at {SYNAPSE_TOOLS / 'bench.py'}")
    checkouts = {"this": str(Path(__file__).resolve().parent.parent)}
    if args.against:
        checkouts["against"] = str(Path(args.against).resolve())
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    for run in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="cpu-per-msg-"))
        try:
            results = one_run(args, root, checkouts)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        for name, result in results.items():
            row = summary(result)
            print(json.dumps({"code": name, "run": run, **row}), flush=True)
            rows[name].append(row)
    for name, done in rows.items():
        if len(done) > 1:
            best = min(done, key=lambda r: r["cpu_ms_per_msg_send"])
            median = sorted(r["cpu_ms_per_msg_send"] for r in done)[len(done) // 2]
            print(json.dumps({"code": name, "best_of": len(done), "median_cpu_ms": median, **best}))


if __name__ == "__main__":
    main()
