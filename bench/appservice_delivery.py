"""Application service delivery: how soon a bridge hears of a message, end to end.

Run against a homeserver already running (this server or Synapse)::

    python bench/appservice_delivery.py --homeserver http://127.0.0.1:8008 \\
        --token <a user's access token> --room '!room:server' --port 9999 \\
        [--hs-token <the registration's hs_token>] [--messages 200]

It starts nothing itself: the homeserver must have an application service registered
whose ``url`` is ``http://127.0.0.1:<port>`` and which is interested in ``--room``
(a rooms namespace matching it, or one of its users joined there). This script
listens on ``--port`` as that service (``PUT /_matrix/app/v1/transactions/{txnId}``,
answering ``{}``), the user sends ``--messages`` messages one after another, and each
sample is the time from the send request being issued to the service receiving the
event in a transaction. Prints p50/p99 (and p95, max) in milliseconds as JSON;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web


class BridgeSide:
    """The service's HTTP side: notes when each event arrives."""

    def __init__(self, hs_token: str | None) -> None:
        self.hs_token = hs_token
        self.arrived: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Event] = {}
        self.transactions = 0

    def waiter(self, event_id: str) -> asyncio.Event:
        return self.waiters.setdefault(event_id, asyncio.Event())

    async def transaction(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        if self.hs_token is not None:
            given = request.headers.get("Authorization") or ""
            if (
                given != f"Bearer {self.hs_token}"
                and request.query.get("access_token") != self.hs_token
            ):
                return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        body = await request.json()
        self.transactions += 1
        for event in body.get("events", []):
            event_id = event.get("event_id")
            if isinstance(event_id, str):
                self.arrived.setdefault(event_id, now)
                self.waiter(event_id).set()
        return web.json_response({})

    async def other(self, request: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    side = BridgeSide(args.hs_token)
    app = web.Application()
    app.router.add_put(r"/_matrix/app/v1/transactions/{txn_id}", side.transaction)
    app.router.add_put(r"/transactions/{txn_id}", side.transaction)  # legacy path
    app.router.add_route("*", "/{tail:.*}", side.other)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.listen, args.port).start()
    base = args.homeserver.rstrip("/")
    headers = {"Authorization": f"Bearer {args.token}"}
    run_id = f"{int(time.time())}"
    counter = itertools.count()
    samples: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(args.warmup + args.messages):
                n = next(counter)
                start = time.monotonic()
                async with session.put(
                    f"{base}/_matrix/client/v3/rooms/{args.room}/send/m.room.message/"
                    f"asbench-{run_id}-{n}",
                    json={"msgtype": "m.text", "body": f"bridge bench {n}"},
                    headers=headers,
                ) as resp:
                    sent = await resp.json()
                    if resp.status != 200:
                        raise SystemExit(f"send failed: {resp.status} {sent}")
                event_id = sent["event_id"]
                await asyncio.wait_for(side.waiter(event_id).wait(), timeout=args.timeout)
                if n >= args.warmup:
                    samples.append((side.arrived[event_id] - start) * 1000)
    finally:
        await runner.cleanup()
    return {
        "messages": args.messages,
        "transactions": side.transactions,
        "delivery_p50_ms": round(percentile(samples, 50), 1),
        "delivery_p95_ms": round(percentile(samples, 95), 1),
        "delivery_p99_ms": round(percentile(samples, 99), 1),
        "delivery_max_ms": round(max(samples), 1) if samples else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--homeserver", required=True, help="client API base URL")
    parser.add_argument("--token", required=True, help="access token of the sending user")
    parser.add_argument("--room", required=True, help="room ID the service is interested in")
    parser.add_argument("--port", type=int, required=True, help="port to listen on as the AS")
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--hs-token", default=None, help="check the homeserver's hs_token")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5, help="messages sent first, not counted")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per message")
    parser.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as stream:
            stream.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
