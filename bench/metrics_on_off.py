"""What Prometheus metrics cost: the messaging workload with ``enable_metrics`` off and on.

Run: ``python bench/metrics_on_off.py [--rounds N] [--messages N] [--receivers N] ...``
(the arguments of ``bench_messaging.py``). Prints both sets of figures side by side;
asserts nothing.

Each round starts a fresh instance of this homeserver on SQLite with metrics off,
runs ``bench_messaging.py`` against it and stops it, then does the same with
``enable_metrics: true`` and a ``type: metrics`` listener that is scraped every
``--scrape-interval`` seconds during the run (Prometheus' scraping is part of the
cost). Besides the workload's figures it reports the CPU seconds the server process
used (user + system, from /proc), which a busy machine disturbs less than throughput.
The server runs this checkout's code (its directory is put first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

_REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_REPO / "bench"))

from bench_messaging import FIGURES  # noqa: E402
from bench_messaging import run as run_messaging  # noqa: E402
from bench_server import Instance, free_port  # noqa: E402

ROWS = [
    *FIGURES,
    ("server CPU (s, user + system)", "server_cpu_s"),
    ("scrapes", "scrapes"),
]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scrape_until(url: str, interval_s: float, stop: asyncio.Event) -> int:
    """GET the metrics every ``interval_s`` until ``stop``; how many scrapes."""
    scrapes = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(url) as response:
                assert response.status == 200, response.status
                await response.read()
            scrapes += 1
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                pass
    return scrapes


async def measure(args: argparse.Namespace, root: Path, metrics: bool) -> dict[str, Any]:
    instance = Instance.on_sqlite("on" if metrics else "off", root)
    metrics_url = None
    if metrics:
        port = free_port()
        listener = {"port": port, "type": "metrics", "bind_addresses": ["127.0.0.1"]}
        instance.configure(enable_metrics=True, listeners=[*instance.raw["listeners"], listener])
        metrics_url = f"http://127.0.0.1:{port}/_synapse/metrics"
    instance.start()
    try:
        async with aiohttp.ClientSession() as session:
            await instance.wait_ready(session)
        assert instance.pid is not None
        workload = argparse.Namespace(
            **{k: v for k, v in vars(args).items() if k not in ("rounds", "scrape_interval")},
            base=instance.base,
            pid=instance.pid,
            out=None,
        )
        stop = asyncio.Event()
        scraper = None
        if metrics_url is not None:
            scraper = asyncio.create_task(scrape_until(metrics_url, args.scrape_interval, stop))
        try:
            result = await run_messaging(workload)
        finally:
            stop.set()
        result["scrapes"] = await scraper if scraper is not None else 0
        result["server_cpu_s"] = cpu_seconds(instance.pid)
        return result
    finally:
        instance.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1, help="off/on pairs, alternating")
    parser.add_argument("--scrape-interval", type=float, default=5.0, help="seconds")
    parser.add_argument("--users", type=int, default=20, help="senders")
    parser.add_argument("--receivers", type=int, default=100, help="long-polling clients")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sync-rooms", type=int, default=200)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(_REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    results: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    root = Path(tempfile.mkdtemp(prefix="metrics-on-off-"))
    try:
        for round_no in range(args.rounds):
            for metrics in (False, True):
                directory = root / f"{round_no}-{int(metrics)}"
                directory.mkdir()
                results[metrics].append(asyncio.run(measure(args, directory, metrics)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'':44} {'metrics off':>14} {'metrics on':>14}")
    for label, key in ROWS:
        off = statistics.median(r[key] for r in results[False])
        on = statistics.median(r[key] for r in results[True])
        print(f"{label:44} {off:>14} {on:>14}")


if __name__ == "__main__":
    main()
