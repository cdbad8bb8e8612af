"""Application service delivery, this homeserver beside Synapse, in one run.

Run: ``python bench/appservice_vs_synapse.py [--messages 200] [--warmup 5]``.
Prints both sets of figures side by side; asserts nothing.

Each server is started fresh on SQLite with the same registration (a service
interested in every room, ``url`` on a free loopback port), a user registers and
creates a room, and ``appservice_delivery.py`` sends the messages one after another,
timing each from the send request to the service receiving it. This server runs as
its own process (``bench_server.Instance``); Synapse through the reference harness
(``../shared/tools/synapse/start.sh`` with ``EXTRA_YAML`` naming the registration),
on port 18050. They never run at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appservice_delivery import run as run_delivery
from bench_client import call, print_result, print_side_by_side, register, side_by_side_rows
from bench_server import Instance, free_port, fresh_synapse, require_synapse_harness

SYNAPSE_NAME = "benchas"
SYNAPSE_PORT = 18050
HS_TOKEN = "bench_hs_token_0123456789"
AS_TOKEN = "bench_as_token_0123456789"

ROWS = [
    ("delivery p50 (ms)", "delivery_p50_ms"),
    ("delivery p95 (ms)", "delivery_p95_ms"),
    ("delivery p99 (ms)", "delivery_p99_ms"),
    ("delivery max (ms)", "delivery_max_ms"),
    ("transactions", "transactions"),
]


def write_registration(directory: Path, port: int) -> Path:
    path = directory / "bench-appservice.yaml"
    registration = {
        "id": "benchbridge",
        "url": f"http://127.0.0.1:{port}",
        "as_token": AS_TOKEN,
        "hs_token": HS_TOKEN,
        "sender_localpart": "benchbridge",
        "rate_limited": False,
        "namespaces": {
            "users": [{"regex": "@_bench_.*", "exclusive": True}],
            "aliases": [],
            "rooms": [{"regex": ".*", "exclusive": False}],
        },
    }
    path.write_text(json.dumps(registration, indent=2))  # JSON is YAML
    return path


async def measure(base: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        client = await register(session, base, "asbenchuser")
        status, room = await call(
            session,
            "POST",
            f"{base}/_matrix/client/v3/createRoom",
            json={"preset": "private_chat"},
            headers=client.headers,
        )
        if status != 200:
            raise RuntimeError(f"createRoom: {status} {room}")
    delivery_args = argparse.Namespace(
        homeserver=base,
        token=client.token,
        room=room["room_id"],
        port=port,
        listen="127.0.0.1",
        hs_token=HS_TOKEN,
        messages=args.messages,
        warmup=args.warmup,
        timeout=30.0,
    )
    return await run_delivery(delivery_args)


async def measure_ours(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    port = free_port()
    instance = Instance.on_sqlite("ours", root)
    instance.configure(app_service_config_files=[str(write_registration(root, port))])
    instance.start()
    try:
        async with aiohttp.ClientSession() as session:
            await instance.wait_ready(session)
        return await measure(instance.base, port, args)
    finally:
        instance.stop()


def measure_synapse(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    port = free_port()
    extra = root / "synapse-extra.yaml"
    extra.write_text(
        json.dumps({"app_service_config_files": [str(write_registration(root, port))]})
    )
    with fresh_synapse(SYNAPSE_NAME, SYNAPSE_PORT, extra) as (base, _pid):
        return asyncio.run(measure(base, port, args))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default=None, help="also write both results here (JSON)")
    args = parser.parse_args()
    require_synapse_harness()
    root = Path(tempfile.mkdtemp(prefix="bench-as-"))
    try:
        ours = asyncio.run(measure_ours(args, root))
        synapse = measure_synapse(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_result({"ours": ours, "synapse": synapse}, args.out)
    print_side_by_side(side_by_side_rows(ROWS, ours, synapse))


if __name__ == "__main__":
    main()
