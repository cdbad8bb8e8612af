"""Round trips to PostgreSQL per message sent, and the time a send takes.

Builds a homeserver (from a config dict, as the tests do) on a new PostgreSQL
database, registers a user, creates a room and sends messages one after the other
through ``EventCreator.send`` (no HTTP), in this one process:

* a timed phase: ``--messages`` sends straight to PostgreSQL, ms per send;
* a counted phase: ``--counted`` sends through a small TCP proxy that reads the
  frontend protocol going by, and counts per send the statements (``Execute`` and
  simple ``Query`` messages, so a statement run for three rows counts three) and the
  round trips (each time the client sends again after PostgreSQL has answered, on
  any connection), background work of the server included. The proxy adds latency,
  so that phase is not timed.

Also printed: this process's CPU time per send (``time.process_time``), which a
loaded machine disturbs less than the wall clock.

Run it on this checkout, or on another one (``--code DIR``, e.g. a ``git archive`` of
main), or on both with ``--against DIR``: their runs then alternate (each in its own
process), so that both see about the same load of a shared machine::

    python bench/pg_round_trips.py [--messages 300] [--counted 50] [--runs 3]
                                   [--conninfo "host=127.0.0.1 port=5432 user=postgres"]
                                   [--code DIR] [--against DIR]

Each run uses a new database, dropped at the end; the best run (by ms per send) of
each checkout is printed last. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class WireCounts:
    """What the proxy saw: statements sent and round trips made, on all connections."""

    statements: int = 0
    round_trips: int = 0
    connections: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def snapshot(self) -> tuple[int, int]:
        return self.statements, self.round_trips


class FrontendReader:
    """Counts the statements of one client connection's byte stream (the PostgreSQL
    frontend protocol: a startup packet without a type byte, then typed messages)."""

    def __init__(self, counts: WireCounts) -> None:
        self._counts = counts
        self._buffer = b""
        self._started = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if not self._started:
                if len(self._buffer) < 8:
                    return
                (length,) = struct.unpack("!I", self._buffer[:4])
                if len(self._buffer) < length:
                    return
                (code,) = struct.unpack("!I", self._buffer[4:8])
                self._buffer = self._buffer[length:]
                # An SSL or GSS request is answered with one byte; the startup
                # packet itself follows.
                self._started = code not in (80877103, 80877104)
                continue
            if len(self._buffer) < 5:
                return
            kind = self._buffer[:1]
            (length,) = struct.unpack("!I", self._buffer[1:5])
            if len(self._buffer) < 1 + length:
                return
            if kind in (b"E", b"Q"):
                self._counts.statements += 1
            self._buffer = self._buffer[1 + length :]


async def start_proxy(upstream_host: str, upstream_port: int, counts: WireCounts) -> asyncio.Server:
    """A TCP proxy to PostgreSQL that counts what goes through it."""

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(upstream_host, upstream_port)
        counts.connections += 1
        reader = FrontendReader(counts)
        answered = True  # the client's first bytes open the first round trip

        async def client_to_server() -> None:
            nonlocal answered
            while data := await client_r.read(65536):
                if answered:
                    counts.round_trips += 1
                    answered = False
                reader.feed(data)
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def server_to_client() -> None:
            nonlocal answered
            while data := await server_r.read(65536):
                answered = True
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        await asyncio.gather(client_to_server(), server_to_client(), return_exceptions=True)

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def make_config(tmp: Path, host: str, port: int, user: str, dbname: str) -> Any:
    from homeserver.config import parse_config

    unlimited = {"per_second": 100000, "burst_count": 100000}
    raw: dict[str, Any] = {
        "server_name": "bench.local",
        "listeners": [{"port": 8008, "resources": [{"names": ["client"]}]}],
        "signing_key_path": str(tmp / "signing.key"),
        "media_store_path": str(tmp / "media"),
        "bcrypt_rounds": 4,
        "rc_message": unlimited,
        "database": {
            "name": "psycopg",
            "args": {"host": host, "port": port, "user": user, "dbname": dbname},
        },
    }
    return parse_config(raw, environ={})


async def send_messages(server: Any, room_id: str, user_id: str, count: int) -> list[float]:
    """Send ``count`` messages one after the other; the seconds each took."""
    durations: list[float] = []
    for n in range(count):
        start = time.perf_counter()
        await server.client.creator.send(
            room_id, "m.room.message", user_id, {"msgtype": "m.text", "body": f"message {n}"}
        )
        durations.append(time.perf_counter() - start)
    return durations


async def one_run(args: argparse.Namespace, params: dict[str, str]) -> dict[str, float]:
    import psycopg

    from homeserver.clock import Clock
    from homeserver.rooms.creation import RoomCreationRequest
    from homeserver.server import Homeserver

    host = params.get("host", "127.0.0.1")
    port = int(params.get("port", "5432"))
    user = params.get("user", "postgres")
    dbname = f"bench_rt_{secrets.token_hex(4)}"
    admin = f"host={host} port={port} user={user} dbname={params.get('dbname', 'postgres')}"
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    counts = WireCounts()
    proxy = await start_proxy(host, port, counts)
    proxy_port = proxy.sockets[0].getsockname()[1]
    try:
        with tempfile.TemporaryDirectory(prefix="pg-round-trips-") as tmp:
            # The counted phase first: it also migrates the database and makes the room.
            config = make_config(Path(tmp), "127.0.0.1", proxy_port, user, dbname)
            server = await Homeserver.build(config, clock=Clock())
            try:
                user_id, _ = await server.client.accounts.register("bench", "bench password")
                room_id, _ = await server.client.room_creation.create_room(
                    user_id, RoomCreationRequest(preset="private_chat")
                )
                await send_messages(server, room_id, user_id, 5)  # warm caches
                before = counts.snapshot()
                await send_messages(server, room_id, user_id, args.counted)
                after = counts.snapshot()
            finally:
                await server.close()
            config = make_config(Path(tmp), host, port, user, dbname)
            server = await Homeserver.build(config, clock=Clock())
            try:
                await send_messages(server, room_id, user_id, 20)  # warm caches and pool
                cpu_start = time.process_time()
                durations = await send_messages(server, room_id, user_id, args.messages)
                cpu = time.process_time() - cpu_start
            finally:
                await server.close()
    finally:
        proxy.close()
        await proxy.wait_closed()
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return {
        "ms_per_send": round(1000 * statistics.fmean(durations), 2),
        "median_ms": round(1000 * statistics.median(durations), 2),
        "cpu_ms_per_send": round(1000 * cpu / args.messages, 2),
        "statements_per_send": round((after[0] - before[0]) / args.counted, 1),
        "round_trips_per_send": round((after[1] - before[1]) / args.counted, 1),
    }


def run_in_process(args: argparse.Namespace, code: str) -> dict[str, float]:
    """One run on ``code``'s checkout, in a process of its own (its modules apart)."""
    command = [sys.executable, os.path.abspath(__file__), "--runs", "1", "--code", code]
    command += ["--messages", str(args.messages), "--counted", str(args.counted)]
    command += ["--conninfo", args.conninfo]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1])["best"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300, help="timed sends per run")
    parser.add_argument("--counted", type=int, default=50, help="sends counted on the wire")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--conninfo", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--code", default=ROOT, help="the checkout whose code runs")
    parser.add_argument("--against", default=None, help="another checkout, run in turn")
    args = parser.parse_args()
    code = str(Path(args.code).resolve())
    if args.against:
        checkouts = [code, str(Path(args.against).resolve())]
        results: dict[str, list[dict[str, float]]] = {c: [] for c in checkouts}
        for run in range(args.runs):
            for checkout in checkouts:
                row = run_in_process(args, checkout)
                print(json.dumps({"code": checkout, "run": run, **row}), flush=True)
                results[checkout].append(row)
        for checkout, done in results.items():
            best = min(done, key=lambda r: r["ms_per_send"])
            print(json.dumps({"code": checkout, "best": best}))
        return
    sys.path.insert(0, code)
    from psycopg.conninfo import conninfo_to_dict

    params = {k: str(v) for k, v in conninfo_to_dict(args.conninfo).items()}
    rows = []
    for run in range(args.runs):
        row = asyncio.run(one_run(args, params))
        print(json.dumps({"run": run, **row}), flush=True)
        rows.append(row)
    best = min(rows, key=lambda r: r["ms_per_send"])
    print(json.dumps({"code": code, "best": best}))


if __name__ == "__main__":
    main()
