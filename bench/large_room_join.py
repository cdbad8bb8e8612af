"""Joining a large room over federation: two homeserver processes on loopback HTTPS.

Run: ``python bench/large_room_join.py [--members N] [--state N] [--database sqlite|postgres]``.
Prints figures; asserts nothing.

1. Setup: instance A's database is opened in this process (``Homeserver.build``,
   no listener): a creator makes a public room, ``--members`` users join it (member
   events of users without accounts; the creator counts as one) and the creator
   sends as many ``bench.state`` events with distinct state keys as it takes for
   the room to hold ``--state`` state events in all. The persister's hooks (push
   evaluation, federation sending) are off while it is built: nobody is there to
   notify yet.
2. A and B run as separate processes (``python -m homeserver --config FILE``, the
   configs written here): federation on a TLS listener with a self-signed
   certificate, certificates not verified, 127.0.0.0/8 whitelisted (as the test
   fixture ``tests/federation/servers.py`` does); the client API on plain HTTP.
3. A user registered on B joins the room (``POST /join/{roomId}?server_name=A``):
   the join time is until that request returns, and until B's current state of
   the room (``GET /rooms/{roomId}/state``) holds every state event; the CPU time
   each server spent on the join request is printed too (on a busy machine it says
   more than the wall clock). Then the
   joining user's initial ``/sync`` is timed (with lazy-loaded members, and without).
   B's peak resident memory is its ``VmHWM`` from ``/proc``. With SQLite, the size
   of A's database (with its WAL) after setup and at the end is printed, and B's.

With ``--database postgres`` each instance gets a fresh database on
``--pg`` (dropped at the end).

With ``--profile DIR``, ``py-spy`` (``pip install py-spy``) samples A and B from their
start to their end and writes ``DIR/a.txt`` and ``DIR/b.txt`` (collapsed stacks, the
idle wait included; ``--idle`` off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_client import call, print_result, register, rss_kib
from bench_server import Instance

from homeserver.config import parse_config
from homeserver.rooms.creation import RoomCreationRequest
from homeserver.selfsigned import make_self_signed_certificate
from homeserver.server import Homeserver

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
JOIN_TIMEOUT_S = 900.0


async def build_room(instance: Instance, members: int, state: int) -> tuple[str, int]:
    """Make the room in A's database (in this process); returns its ID and state size."""
    config = parse_config(instance.raw, environ={})
    server = await Homeserver.build(config)
    # Built event by event before any server is in the room: push evaluation and
    # federation sending would walk every member for every event (quadratic in the
    # room's size), and nobody is there to notify.
    server.client.persister.txn_hooks.clear()
    server.client.persister.persisted_hooks.clear()
    try:
        creator, _ = await server.client.accounts.register("creator", None, login=False)
        room_id, _ = await server.client.room_creation.create_room(
            creator, RoomCreationRequest(visibility="public", preset="public_chat", name="Big")
        )
        send = server.client.creator.send
        for i in range(1, members):
            user = f"@member{i}:{instance.server_name}"
            await send(room_id, "m.room.member", user, {"membership": "join"}, state_key=user)
        current = await server.stores.state.get_current_state(room_id)
        for i in range(max(0, state - len(current))):
            await send(room_id, "bench.state", creator, {"n": i}, state_key=f"key{i}")
        size = len(await server.stores.state.get_current_state(room_id))
        return room_id, size
    finally:
        await server.close()


async def count_state(session: aiohttp.ClientSession, base: str, token: str, room_id: str) -> int:
    status, body = await call(
        session,
        "GET",
        f"{base}/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state",
        headers={"Authorization": f"Bearer {token}"},
    )
    return len(body) if status == 200 and isinstance(body, list) else -1


async def timed_sync(
    session: aiohttp.ClientSession, base: str, token: str, room_id: str, lazy: bool
) -> tuple[float, int]:
    """One initial /sync; (seconds, state events of the room in it)."""
    room_filter: dict[str, Any] = {"timeline": {"limit": 10}}
    if lazy:
        room_filter["state"] = {"lazy_load_members": True}
    params = {"filter": json.dumps({"room": room_filter})}
    start = time.monotonic()
    _, body = await call(
        session,
        "GET",
        f"{base}/_matrix/client/v3/sync",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )
    elapsed = time.monotonic() - start
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    return elapsed, len(room.get("state", {}).get("events", []))


def sqlite_bytes(instance: Instance) -> int:
    """Size of an instance's SQLite database with its write-ahead log."""
    path = Path(instance.raw["database"]["args"]["database"])
    files = [path, path.with_name(path.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists())


def cpu_s(pid: int | None) -> float:
    """User and system CPU time a process has used (all its threads), from /proc."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_profiler(instance: Instance, directory: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling an instance's process until it exits."""
    directory.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--pid", str(instance.pid), "--format", "raw", "--rate", "250"]
    command += ["--output", str(directory / f"{instance.name}.txt")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def database_config(engine: str, name: str, pg: str) -> dict[str, Any]:
    if engine == "sqlite":
        return {"name": "sqlite3", "args": {"database": "homeserver.db"}}
    import psycopg

    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = dict(part.split("=", 1) for part in pg.split())
    args: dict[str, Any] = {k: v for k, v in params.items() if k in ("host", "user", "password")}
    if "port" in params:
        args["port"] = int(params["port"])
    return {"name": "psycopg", "args": {**args, "dbname": name}}


def drop_databases(names: list[str], pg: str) -> None:
    import psycopg

    with psycopg.connect(pg, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(args: argparse.Namespace, root: Path, pg_names: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"database": args.database}
    tls = make_self_signed_certificate(root)
    instances = []
    for name in ("a", "b"):
        db_name = f"bench_join_{name}_{secrets.token_hex(4)}"
        if args.database == "postgres":
            pg_names.append(db_name)
        instance = Instance(name, root, tls, database_config(args.database, db_name, args.pg))
        # The sqlite path in the config is relative to the instance's directory.
        if args.database == "sqlite":
            instance.raw["database"]["args"]["database"] = str(instance.directory / "hs.db")
            instance.config_path.write_text(json.dumps(instance.raw, indent=2))
        instances.append(instance)
    a, b = instances

    start = time.monotonic()
    room_id, state_size = await build_room(a, args.members, args.state)
    result["setup_s"] = round(time.monotonic() - start, 1)
    result["room_state_events"] = state_size
    print(f"setup: {result['setup_s']} s for {state_size} state events", flush=True)
    if args.database == "sqlite":
        result["a_sqlite_bytes_after_setup"] = sqlite_bytes(a)

    profilers: list[subprocess.Popen[bytes]] = []
    try:
        a.start()
        b.start()
        if args.profile:
            profilers = [start_profiler(i, Path(args.profile)) for i in (a, b)]
        timeout = aiohttp.ClientTimeout(total=JOIN_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await a.wait_ready(session)
            await b.wait_ready(session)
            joiner = await register(session, b.base, "joiner")
            result["b_rss_before_join_kib"] = rss_kib(b.pid)

            cpu_before = cpu_s(a.pid), cpu_s(b.pid)
            start = time.monotonic()
            status, body = await call(
                session,
                "POST",
                f"{b.base}/_matrix/client/v3/join/{quote(room_id, safe='')}",
                params={"server_name": a.server_name},
                json={},
                headers=joiner.headers,
            )
            result["join_request_s"] = round(time.monotonic() - start, 2)
            # CPU the join cost each server (a fairer figure on a busy machine)
            result["a_cpu_join_s"] = round(cpu_s(a.pid) - cpu_before[0], 2)
            result["b_cpu_join_s"] = round(cpu_s(b.pid) - cpu_before[1], 2)
            if status != 200:
                result["join_error"] = {"status": status, "body": body}
                return result
            expected = state_size + 1  # and the joiner's own membership
            held = await count_state(session, b.base, joiner.token, room_id)
            while held < expected and time.monotonic() - start < JOIN_TIMEOUT_S:
                await asyncio.sleep(0.2)
                held = await count_state(session, b.base, joiner.token, room_id)
            result["join_until_full_state_s"] = round(time.monotonic() - start, 2)
            result["b_state_events"] = held
            result["b_peak_rss_after_join_kib"] = rss_kib(b.pid).get("VmHWM")

            lazy_s, lazy_n = await timed_sync(session, b.base, joiner.token, room_id, lazy=True)
            full_s, full_n = await timed_sync(session, b.base, joiner.token, room_id, lazy=False)
            result["initial_sync_lazy_s"] = round(lazy_s, 2)
            result["initial_sync_lazy_state_events"] = lazy_n
            result["initial_sync_full_s"] = round(full_s, 2)
            result["initial_sync_full_state_events"] = full_n
            result["b_rss_end_kib"] = rss_kib(b.pid)
            result["a_rss_end_kib"] = rss_kib(a.pid)
    finally:
        b.stop()
        a.stop()
        for profiler in profilers:
            profiler.wait(timeout=60)  # py-spy writes its output when its process exits
    if args.database == "sqlite":
        result["a_sqlite_bytes_end"] = sqlite_bytes(a)
        result["b_sqlite_bytes_end"] = sqlite_bytes(b)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000, help="joined members of the room")
    parser.add_argument("--state", type=int, default=20_000, help="state events in all")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg", default=PG_ADMIN, help="libpq conninfo of an admin database")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--profile", default=None, help="py-spy both servers into this dir")
    parser.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="large_room_join_"))
    pg_names: list[str] = []
    try:
        result = asyncio.run(run(args, root, pg_names))
    finally:
        if pg_names:
            drop_databases(pg_names, args.pg)
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_result(result, args.out)


if __name__ == "__main__":
    main()
