"""The messaging workload against one process and against a deployment with workers,
both on PostgreSQL, in one run on this machine (issue 17's yardstick).

    python bench/workers_vs_one.py [--workers events=2,sync=2] [--messages 2000] ...

1. One process (``python -m homeserver``) on a new PostgreSQL database;
2. the same config on another new database, with Redis on, through
   ``generate-workers --workers <spec>`` and ``supervisord`` (nginx in front, on the
   same client port), every process started and stopped by supervisord.

Each is measured with ``bench_messaging.py`` (send throughput, send-to-sync delivery
latency, delivered share) and stopped before the other starts. Prints both side by
side; asserts nothing. Needs nginx, supervisord (``pip install -e '.[workers]'``),
PostgreSQL (``HOMESERVER_TEST_PG``, default 127.0.0.1:5432 user postgres) and Redis
on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg.conninfo import conninfo_to_dict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_client import print_result, print_side_by_side, side_by_side_rows
from bench_messaging import FIGURES
from bench_messaging import run as run_messaging
from bench_server import Instance

from homeserver.selfsigned import make_self_signed_certificate

PG_ADMIN = os.environ.get(
    "HOMESERVER_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


def new_database() -> tuple[str, dict[str, Any]]:
    name = f"hs_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    admin = conninfo_to_dict(PG_ADMIN)
    args = {
        "user": admin.get("user", "postgres"),
        "host": admin.get("host", "127.0.0.1"),
        "port": int(admin.get("port", 5432)),
        "dbname": name,
        "cp_min": 2,
        "cp_max": 10,
    }
    if admin.get("password"):
        args["password"] = admin["password"]
    return name, {"name": "psycopg", "args": args}


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def workload_args(args: argparse.Namespace, base: str, pid: int | None) -> argparse.Namespace:
    own = {k: v for k, v in vars(args).items() if k not in ("workers", "out")}
    return argparse.Namespace(**own, base=base, pid=pid, out=None)


async def wait_ready(base: str, deadline_s: float = 90.0) -> None:
    deadline = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{base}/_matrix/client/versions") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{base} did not start")
            await asyncio.sleep(0.2)


def one_process(args: argparse.Namespace, root: Path, tls: tuple[Path, Path]) -> dict[str, Any]:
    name, database = new_database()
    instance = Instance("one", root, tls, database)
    instance.configure(log_level="WARNING")
    instance.start()
    try:
        asyncio.run(wait_ready(instance.base))
        return asyncio.run(run_messaging(workload_args(args, instance.base, instance.pid)))
    finally:
        instance.stop()
        drop_database(name)


def with_workers(args: argparse.Namespace, root: Path, tls: tuple[Path, Path]) -> dict[str, Any]:
    name, database = new_database()
    instance = Instance("workers", root, tls, database)
    instance.configure(log_level="WARNING", redis={"enabled": True})
    out = instance.directory / "deploy"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "homeserver",
            "generate-workers",
            "--config",
            str(instance.config_path),
            "--workers",
            args.workers,
            "--out",
            str(out),
        ],
        check=True,
        cwd=instance.directory,
    )
    conf = str(out / "supervisord.conf")
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", conf],
        cwd=instance.directory,
        stdout=subprocess.DEVNULL,
    )
    try:
        asyncio.run(wait_ready(instance.base))
        return asyncio.run(run_messaging(workload_args(args, instance.base, None)))
    finally:
        subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", conf, "shutdown"],
            stdout=subprocess.DEVNULL,
        )
        supervisord.wait(timeout=60)
        drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="events=2,sync=2", help="generate-workers roles")
    parser.add_argument("--out", default=None, help="also write both results here (JSON)")
    parser.add_argument("--users", type=int, default=20, help="senders")
    parser.add_argument("--receivers", type=int, default=2, help="long-polling clients")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sync-rooms", type=int, default=50)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    try:
        tls = make_self_signed_certificate(root)
        one = one_process(args, root, tls)
        many = with_workers(args, root, tls)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_result({"one_process": one, "workers": many}, args.out)
    print(f"\none process vs main + workers ({args.workers}), both on PostgreSQL:")
    print_side_by_side(side_by_side_rows(FIGURES, one, many), ("one process", "workers"))


if __name__ == "__main__":
    main()
