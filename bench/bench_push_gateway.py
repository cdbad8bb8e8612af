"""Offline push: how soon a push gateway hears of a message, end to end.

Run: ``python bench/bench_push_gateway.py [--messages N] [--members N]``.
Prints figures; asserts nothing.

A homeserver process (SQLite, config written here, loopback allowed for pushers with
``ip_range_whitelist``) and a push gateway (an aiohttp app in this process,
``POST /_matrix/push/v1/notify``). Alice sets an HTTP pusher and never syncs: her
phone is the gateway. Bob sends ``--messages`` messages one after another into their
room of ``--members`` members; each sample is the time from Bob's send request being
issued to the gateway receiving the notification for that event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_client import Client, call, percentile, print_result, register
from bench_server import Instance, free_port


class Gateway:
    """Notes when each event's notification arrives."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.events: dict[str, asyncio.Event] = {}

    def waiter(self, event_id: str) -> asyncio.Event:
        return self.events.setdefault(event_id, asyncio.Event())

    async def notify(self, request: web.Request) -> web.Response:
        body = await request.json()
        event_id = body["notification"].get("event_id")
        if event_id is not None:
            self.arrived.setdefault(event_id, time.monotonic())
            self.waiter(event_id).set()
        return web.json_response({"rejected": []})


async def run(args: argparse.Namespace, instance: Instance) -> dict[str, Any]:
    gateway = Gateway()
    app = web.Application()
    app.router.add_post("/_matrix/push/v1/notify", gateway.notify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = instance.base
    try:
        async with aiohttp.ClientSession() as session:
            await instance.wait_ready(session)
            alice = await register(session, base, "alice")
            bob = await register(session, base, "bob")
            others = [await register(session, base, f"m{n}") for n in range(args.members - 2)]
            _, room = await call(
                session,
                "POST",
                f"{base}/_matrix/client/v3/createRoom",
                json={"preset": "public_chat", "name": "Offline"},
                headers=alice.headers,
            )
            room_id = room["room_id"]
            for member in [bob, *others]:
                await call(
                    session,
                    "POST",
                    f"{base}/_matrix/client/v3/join/{room_id}",
                    json={},
                    headers=member.headers,
                )
            await call(
                session,
                "POST",
                f"{base}/_matrix/client/v3/pushers/set",
                json={
                    "kind": "http",
                    "app_id": "bench.app",
                    "pushkey": "bench-pushkey",
                    "app_display_name": "Bench",
                    "device_display_name": "Phone",
                    "lang": "en",
                    "data": {"url": f"http://127.0.0.1:{port}/_matrix/push/v1/notify"},
                },
                headers=alice.headers,
            )
            samples = [
                await one_message(session, base, bob, room_id, n, gateway)
                for n in range(args.messages)
            ]
    finally:
        await runner.cleanup()
    return {
        "members": args.members,
        "messages": args.messages,
        "push_p50_ms": round(percentile(samples, 50), 1),
        "push_p95_ms": round(percentile(samples, 95), 1),
        "push_p99_ms": round(percentile(samples, 99), 1),
        "push_max_ms": round(max(samples), 1),
    }


async def one_message(
    session: aiohttp.ClientSession,
    base: str,
    sender: Client,
    room_id: str,
    n: int,
    gateway: Gateway,
) -> float:
    start = time.monotonic()
    _, sent = await call(
        session,
        "PUT",
        f"{base}/_matrix/client/v3/rooms/{room_id}/send/m.room.message/push{n}",
        json={"msgtype": "m.text", "body": f"are you there? {n}"},
        headers=sender.headers,
    )
    event_id = sent["event_id"]
    await asyncio.wait_for(gateway.waiter(event_id).wait(), timeout=30)
    return (gateway.arrived[event_id] - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--members", type=int, default=20, help="room members, with alice and bob")
    parser.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-push-"))
    instance = Instance.on_sqlite("ours", root)
    instance.configure(ip_range_whitelist=["127.0.0.1/32"])
    instance.start()
    try:
        result = asyncio.run(run(args, instance))
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)
    print_result(result, args.out)


if __name__ == "__main__":
    main()
