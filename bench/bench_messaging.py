"""Messaging workload against any homeserver (ours or Synapse), through the client API only.

Phases:
  1. register ``--users`` senders and ``--receivers`` long-polling clients (UIA dummy flow);
  2. user 0 creates ``--rooms`` public rooms; senders join every room, each receiver one;
  3. receivers start long-polling ``/sync``; ``--messages`` messages are sent by
     ``--concurrency`` concurrent senders, round-robin over users and rooms;
  4. a separate user joins ``--sync-rooms`` rooms and times its initial ``/sync``.

Prints send throughput, send-to-sync delivery latency percentiles (one sample per
message and receiver), initial sync time, and the server's resident memory (with
``--pid``). No assertions: this prints figures.

    python bench/bench_messaging.py --base http://127.0.0.1:8008 --pid $(pgrep -f 'homeserver --config')
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from bench_client import Client, call, gather_limited, percentile, print_result, register, rss_kib

# (label, result key) of the figures ``run`` returns, for the side-by-side tables
FIGURES = [
    ("send throughput (msg/s)", "send_throughput_msg_s"),
    ("PUT send p50 (ms)", "put_p50_ms"),
    ("PUT send p99 (ms)", "put_p99_ms"),
    ("delivery p50 (ms)", "delivery_p50_ms"),
    ("delivery p95 (ms)", "delivery_p95_ms"),
    ("delivery p99 (ms)", "delivery_p99_ms"),
    ("delivered (%)", "delivered_pct"),
    ("initial sync, user in N rooms (ms, median)", "initial_sync_ms_median"),
]


@dataclass
class Stats:
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    rate_limited: int = 0

    def count_rate_limited(self) -> None:
        self.rate_limited += 1


async def receiver(
    session: aiohttp.ClientSession,
    base: str,
    client: Client,
    stats: Stats,
    expected: int,
    done: asyncio.Event,
) -> None:
    url = f"{base}/_matrix/client/v3/sync"
    flt = json.dumps({"room": {"timeline": {"limit": 1000}}, "presence": {"not_types": ["*"]}})
    status, body = await call(session, "GET", url, params={"filter": flt}, headers=client.headers)
    since = body["next_batch"]
    seen = 0
    while seen < expected and not done.is_set():
        params = {"since": since, "timeout": "30000", "filter": flt}
        status, body = await call(session, "GET", url, params=params, headers=client.headers)
        now = time.monotonic()
        if status != 200:
            stats.errors += 1
            continue
        since = body["next_batch"]
        for room in body.get("rooms", {}).get("join", {}).values():
            for event in room.get("timeline", {}).get("events", []):
                tag = event.get("content", {}).get("bench_id")
                sent = stats.sent_at.get(tag) if tag else None
                if sent is not None:
                    stats.latencies_ms.append((now - sent) * 1000)
                    seen += 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = args.base.rstrip("/")
    run_id = secrets.token_hex(3)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        result: dict[str, Any] = {"base": base, "rss_start_kib": rss_kib(args.pid)}
        t0 = time.monotonic()
        senders = await gather_limited(
            8, [register(session, base, f"b{run_id}s{i}") for i in range(args.users)]
        )
        receivers = await gather_limited(
            8, [register(session, base, f"b{run_id}r{i}") for i in range(args.receivers)]
        )
        result["register_s"] = round(time.monotonic() - t0, 2)

        creator = senders[0]
        rooms: list[str] = []
        for _ in range(args.rooms):
            _status, body = await call(
                session,
                "POST",
                f"{base}/_matrix/client/v3/createRoom",
                json={"preset": "public_chat"},
                headers=creator.headers,
            )
            rooms.append(body["room_id"])
        # Senders are in every room; each receiver long-polls one room, so a message
        # wakes the receivers of its room only (receivers / rooms of them).
        receiver_room = {c.user_id: rooms[i % len(rooms)] for i, c in enumerate(receivers)}
        join_url = f"{base}/_matrix/client/v3/join/"
        joins = [
            call(session, "POST", join_url + quote(r, safe=""), json={}, headers=c.headers)
            for c in senders[1:]
            for r in rooms
        ] + [
            call(
                session,
                "POST",
                join_url + quote(receiver_room[c.user_id], safe=""),
                json={},
                headers=c.headers,
            )
            for c in receivers
        ]
        t_join = time.monotonic()
        await gather_limited(8, joins)
        result["join_per_s"] = round(len(joins) / max(1e-9, time.monotonic() - t_join), 1)

        stats = Stats()
        done = asyncio.Event()
        per_room = {
            r: sum(1 for n in range(args.messages) if rooms[n % len(rooms)] == r) for r in rooms
        }
        polls = [
            asyncio.create_task(
                receiver(session, base, c, stats, per_room[receiver_room[c.user_id]], done)
            )
            for c in receivers
        ]
        await asyncio.sleep(2)  # let every receiver reach its long-poll

        counter = iter(range(args.messages))

        async def sender_loop(worker: int) -> list[float]:
            put_ms: list[float] = []
            for n in counter:
                client = senders[n % len(senders)]
                room = rooms[n % len(rooms)]
                tag = f"{run_id}-{n}"
                url = f"{base}/_matrix/client/v3/rooms/{quote(room, safe='')}/send/m.room.message/{tag}"
                start = time.monotonic()
                stats.sent_at[tag] = start
                status, _ = await call(
                    session,
                    "PUT",
                    url,
                    on_rate_limited=stats.count_rate_limited,
                    json={"msgtype": "m.text", "body": f"message {n}", "bench_id": tag},
                    headers=client.headers,
                )
                put_ms.append((time.monotonic() - start) * 1000)
                if status != 200:
                    stats.errors += 1
            return put_ms

        t_send = time.monotonic()
        put_lists = await asyncio.gather(*(sender_loop(w) for w in range(args.concurrency)))
        send_wall = time.monotonic() - t_send
        expected_samples = sum(per_room[receiver_room[c.user_id]] for c in receivers)
        # Receivers finish once they saw every message of their room.
        await asyncio.wait(polls, timeout=30)
        done.set()
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        puts = [p for lst in put_lists for p in lst]
        result.update(
            messages=args.messages,
            concurrency=args.concurrency,
            receivers=len(receivers),
            send_throughput_msg_s=round(args.messages / send_wall, 1),
            put_p50_ms=round(percentile(puts, 50), 1),
            put_p99_ms=round(percentile(puts, 99), 1),
            delivery_p50_ms=round(percentile(stats.latencies_ms, 50), 1),
            delivery_p95_ms=round(percentile(stats.latencies_ms, 95), 1),
            delivery_p99_ms=round(percentile(stats.latencies_ms, 99), 1),
            delivered_pct=round(100 * len(stats.latencies_ms) / max(1, expected_samples), 1),
            errors=stats.errors,
            rate_limited=stats.rate_limited,
        )

        if args.sync_rooms:
            syncer = await register(session, base, f"b{run_id}big")
            many: list[str] = []
            for _ in range(args.sync_rooms):
                _, body = await call(
                    session,
                    "POST",
                    f"{base}/_matrix/client/v3/createRoom",
                    json={"preset": "private_chat", "name": "bench"},
                    headers=syncer.headers,
                )
                many.append(body["room_id"])
            timings = []
            for attempt in range(3):
                flt = json.dumps(
                    {"room": {"timeline": {"limit": 20}, "not_types": [f"nonce.{attempt}"]}}
                )
                start = time.monotonic()
                _, body = await call(
                    session,
                    "GET",
                    f"{base}/_matrix/client/v3/sync",
                    params={"filter": flt},
                    headers=syncer.headers,
                )
                timings.append((time.monotonic() - start) * 1000)
                assert len(body["rooms"]["join"]) >= args.sync_rooms, "initial sync missed rooms"
            result["initial_sync_rooms"] = args.sync_rooms
            result["initial_sync_ms_median"] = round(statistics.median(timings), 1)
        result["rss_end_kib"] = rss_kib(args.pid)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="client API base URL")
    parser.add_argument("--users", type=int, default=20, help="senders")
    parser.add_argument("--receivers", type=int, default=100, help="long-polling clients")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--sync-rooms", type=int, default=200, help="rooms of the initial-sync user"
    )
    parser.add_argument("--pid", type=int, default=None, help="server process, for memory figures")
    parser.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print_result(result, args.out)


if __name__ == "__main__":
    main()
