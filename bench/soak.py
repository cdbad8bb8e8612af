"""Soak: the messaging workload kept running for a long time against a fresh
homeserver process, printing one line of figures per minute.

Run: ``python bench/soak.py [--minutes 30] [--rate 100] [--users 20] [--rooms 10]
[--receivers 20] [--database sqlite|postgres]``. Prints figures; asserts nothing.

The server is started here as its own process (``python -m homeserver``, SQLite by
default, config as ``bench_server.Instance`` writes it: rate limits off). Senders
send at a bounded rate (``--rate`` messages per second in all, round-robin over
users and rooms) so that the load is the same from minute to minute; receivers
long-poll ``/sync`` and send a read receipt for the newest event they saw every
``--receipt-every`` messages, as clients do. Each minute prints the messages sent,
the delivery latency (send to a receiver's /sync) p50/p99 of that minute, errors,
the server's resident memory (VmRSS) and its peak (VmHWM), and the database size
(SQLite file with its WAL, or ``pg_database_size``). Once caches are warm, RSS and
p99 should stay flat; the database grows with the messages, no faster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_client import Client, call, gather_limited, percentile, register, rss_kib
from bench_server import Instance

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@dataclass
class Minute:
    sent: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class Soak:
    sent_at: dict[str, float] = field(default_factory=dict)
    minutes: list[Minute] = field(default_factory=lambda: [Minute()])

    @property
    def now(self) -> Minute:
        return self.minutes[-1]


async def receiver(
    session: aiohttp.ClientSession,
    base: str,
    client: Client,
    soak: Soak,
    receipt_every: int,
    stop: asyncio.Event,
) -> None:
    url = f"{base}/_matrix/client/v3/sync"
    flt = json.dumps({"room": {"timeline": {"limit": 100}}, "presence": {"not_types": ["*"]}})
    _, body = await call(session, "GET", url, params={"filter": flt}, headers=client.headers)
    since = body["next_batch"]
    unreceipted = 0
    while not stop.is_set():
        params = {"since": since, "timeout": "30000", "filter": flt}
        status, body = await call(session, "GET", url, params=params, headers=client.headers)
        now = time.monotonic()
        if status != 200:
            soak.now.errors += 1
            continue
        since = body["next_batch"]
        for room_id, room in body.get("rooms", {}).get("join", {}).items():
            events = room.get("timeline", {}).get("events", [])
            for event in events:
                tag = event.get("content", {}).get("bench_id")
                sent = soak.sent_at.pop(tag, None) if tag else None
                if sent is not None:
                    soak.now.latencies_ms.append((now - sent) * 1000)
            unreceipted += len(events)
            if events and unreceipted >= receipt_every:
                unreceipted = 0
                last = quote(events[-1]["event_id"], safe="")
                receipt = f"{base}/_matrix/client/v3/rooms/{quote(room_id, safe='')}/receipt/m.read/{last}"
                await call(session, "POST", receipt, json={}, headers=client.headers)


def database_size(instance: Instance, pg_name: str | None) -> int:
    if pg_name is not None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            row = conn.execute("SELECT pg_database_size(%s)", (pg_name,)).fetchone()
            return int(row[0]) if row else 0
    return sum(
        path.stat().st_size for path in instance.directory.glob("homeserver.db*") if path.is_file()
    )


async def soak_run(args: argparse.Namespace, instance: Instance, pg_name: str | None) -> None:
    base = instance.base
    run_id = secrets.token_hex(3)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await instance.wait_ready(session)
        senders = await gather_limited(
            8, [register(session, base, f"s{run_id}u{i}") for i in range(args.users)]
        )
        receivers = await gather_limited(
            8, [register(session, base, f"s{run_id}r{i}") for i in range(args.receivers)]
        )
        rooms = []
        for _ in range(args.rooms):
            _, body = await call(
                session,
                "POST",
                f"{base}/_matrix/client/v3/createRoom",
                json={"preset": "public_chat"},
                headers=senders[0].headers,
            )
            rooms.append(body["room_id"])
        joins = [(c, r) for c in senders[1:] for r in rooms] + [
            (c, rooms[i % len(rooms)]) for i, c in enumerate(receivers)
        ]
        await gather_limited(
            8,
            [
                call(
                    session,
                    "POST",
                    f"{base}/_matrix/client/v3/join/{quote(r, safe='')}",
                    json={},
                    headers=c.headers,
                )
                for c, r in joins
            ],
        )
        soak = Soak()
        stop = asyncio.Event()
        polls = [
            asyncio.create_task(receiver(session, base, c, soak, args.receipt_every, stop))
            for c in receivers
        ]
        await asyncio.sleep(2)  # every receiver in its long-poll
        print("minute  sent  msg/s  p50_ms  p99_ms  errors  rss_mib  hwm_mib  db_mib", flush=True)
        interval = 1.0 / args.rate
        start = time.monotonic()
        deadline = start + args.minutes * 60
        next_report = start + 60
        minute_start = start
        n = 0
        inflight: set[asyncio.Task[None]] = set()

        async def send(n: int) -> None:
            client = senders[n % len(senders)]
            room = rooms[n % len(rooms)]
            tag = f"{run_id}-{n}"
            url = f"{base}/_matrix/client/v3/rooms/{quote(room, safe='')}/send/m.room.message/{tag}"
            soak.sent_at[tag] = time.monotonic()
            status, _ = await call(
                session,
                "PUT",
                url,
                json={"msgtype": "m.text", "body": f"message {n}", "bench_id": tag},
                headers=client.headers,
            )
            soak.now.sent += 1
            if status != 200:
                soak.now.errors += 1

        while time.monotonic() < deadline:
            due = start + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(inflight) < args.max_inflight:
                task = asyncio.create_task(send(n))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            n += 1
            now = time.monotonic()
            if now >= next_report:
                minute = soak.now
                soak.minutes.append(Minute())
                rss = rss_kib(instance.pid)
                elapsed = now - minute_start
                minute_start = now
                lat = minute.latencies_ms
                print(
                    f"{len(soak.minutes) - 1:>6}  {minute.sent:>4}  {minute.sent / elapsed:>5.1f}"
                    f"  {percentile(lat, 50) if lat else 0:>6.1f}"
                    f"  {percentile(lat, 99) if lat else 0:>6.1f}  {minute.errors:>6}"
                    f"  {rss.get('VmRSS', 0) / 1024:>7.1f}  {rss.get('VmHWM', 0) / 1024:>7.1f}"
                    f"  {database_size(instance, pg_name) / 2**20:>6.1f}",
                    flush=True,
                )
                next_report += 60
        await asyncio.gather(*inflight, return_exceptions=True)
        stop.set()
        await asyncio.sleep(1)
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        undelivered = len(soak.sent_at)
        print(f"messages sent: {n}; not seen by a receiver at the end: {undelivered}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100, help="messages per second in all")
    parser.add_argument("--max-inflight", type=int, default=64, help="sends awaiting an answer")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--receivers", type=int, default=20)
    parser.add_argument("--receipt-every", type=int, default=20)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the server's directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    pg_name: str | None = None
    if args.database == "postgres":
        import psycopg

        pg_name = f"soak_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        from homeserver.selfsigned import make_self_signed_certificate

        instance = Instance(
            "soak",
            root,
            make_self_signed_certificate(root),
            {
                "name": "psycopg2",
                "args": {"host": "127.0.0.1", "user": "postgres", "database": pg_name},
            },
        )
    else:
        instance = Instance.on_sqlite("soak", root)
    instance.start()
    try:
        asyncio.run(soak_run(args, instance, pg_name))
    finally:
        instance.stop()
        if pg_name is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}"')
        if args.keep:
            print(f"server directory kept: {instance.directory}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
