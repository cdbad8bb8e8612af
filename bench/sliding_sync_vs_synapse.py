"""Simplified sliding sync (MSC4186) on a large account: this homeserver beside Synapse.

Run: ``python bench/sliding_sync_vs_synapse.py [--rooms 5000] [--runs 10]
[--messages 50] [--only ours|synapse] [--out FILE]``. Prints both sets of figures
side by side (and as JSON); asserts nothing.

The workload, the same on each server:

1. ``owner`` creates ``--rooms`` rooms (``--concurrency`` at once), each named, and
   sends ``--fill-messages`` messages into each; ``poster`` joins the first room.
2. First window: ``--runs`` times, a new connection (fresh ``conn_id``, no ``pos``)
   asks for the 20 most recent rooms::

       {"lists": {"all": {"ranges": [[0, 19]], "timeline_limit": 1,
        "required_state": [["m.room.name", ""], ["m.room.avatar", ""],
                           ["m.room.member", "$LAZY"]]}}}

   and the time to the whole response is taken (the first, cold, run apart; then
   median and p95 over all runs).
3. Live latency: one connection long-polls (``timeout`` 30 s, next ``pos`` each
   time) while ``poster`` sends ``--messages`` messages into the first room one at a
   time; each one's latency runs from just before its PUT to the moment the
   long-poll returns it (p50, p99).

Each server is started fresh on SQLite and stopped before the next one starts:

- this homeserver as its own process (``python -m homeserver``, via ``bench_server``);
- Synapse through the reference harness (``../shared/tools/synapse/start.sh``) on
  port 18150. Synapse 1.163 serves the endpoint without any experimental flag.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_client import (
    Client,
    call,
    gather_limited,
    percentile,
    print_result,
    print_side_by_side,
    register,
    side_by_side_rows,
)
from bench_server import Instance, fresh_synapse, require_synapse_harness

SYNAPSE_NAME = "benchslidingsync"
SYNAPSE_PORT = 18150
SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
WINDOW = 20


def window_body(conn_id: str) -> dict[str, Any]:
    return {
        "conn_id": conn_id,
        "lists": {
            "all": {
                "ranges": [[0, WINDOW - 1]],
                "timeline_limit": 1,
                "required_state": [
                    ["m.room.name", ""],
                    ["m.room.avatar", ""],
                    ["m.room.member", "$LAZY"],
                ],
            }
        },
    }


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Workload:
    def __init__(self, args: argparse.Namespace, base: str, session: aiohttp.ClientSession):
        self.args = args
        self.base = base
        self.session = session
        self.txn = 0

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def v3(self, client: Client, method: str, path: str, body: Any = None) -> Any:
        status, data = await call(
            self.session,
            method,
            self.url(f"/_matrix/client/v3{path}"),
            json=body,
            headers=client.headers,
        )
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {data}")
        return data

    async def send(self, client: Client, room_id: str, body: str) -> None:
        self.txn += 1
        content = {"msgtype": "m.text", "body": body}
        path = f"/rooms/{quote(room_id)}/send/m.room.message/b{self.txn}"
        await self.v3(client, "PUT", path, content)

    async def sliding_sync(
        self, client: Client, body: dict[str, Any], pos: str | None = None, timeout_ms: int = 0
    ) -> tuple[int, Any]:
        params = {"timeout": str(timeout_ms)}
        if pos is not None:
            params["pos"] = pos
        return await call(
            self.session,
            "POST",
            self.url(SLIDING_SYNC),
            json=body,
            params=params,
            headers=client.headers,
            timeout=aiohttp.ClientTimeout(total=timeout_ms / 1000 + 60),
        )

    async def setup(self) -> tuple[Client, Client, list[str], float]:
        started = time.monotonic()
        tag = f"{int(time.time())}"
        owner = await register(self.session, self.base, f"owner{tag}")
        poster = await register(self.session, self.base, f"poster{tag}")

        async def make(i: int) -> str:
            preset = "public_chat" if i == 0 else "private_chat"
            data = await self.v3(
                owner, "POST", "/createRoom", {"name": f"room {i}", "preset": preset}
            )
            room_id = str(data["room_id"])
            for n in range(self.args.fill_messages):
                await self.send(owner, room_id, f"fill {i}.{n}")
            return room_id

        rooms = await gather_limited(
            self.args.concurrency, [make(i) for i in range(self.args.rooms)]
        )
        server = rooms[0].partition(":")[2]
        join = f"/join/{quote(rooms[0])}" + (f"?server_name={quote(server)}" if server else "")
        await self.v3(poster, "POST", join, {})
        return owner, poster, rooms, time.monotonic() - started

    async def first_window(self, owner: Client) -> dict[str, Any]:
        times: list[float] = []
        count: Any = None
        returned = 0
        for run in range(self.args.runs):
            started = time.monotonic()
            status, data = await self.sliding_sync(owner, window_body(f"first-{run}-{time.time()}"))
            elapsed = time.monotonic() - started
            if status != 200:
                return {"error": f"sliding sync answered {status} {data}"}
            times.append(elapsed)
            count = data.get("lists", {}).get("all", {}).get("count")
            returned = len(data.get("rooms", {}))
        return {
            "first_window_cold_ms": ms(times[0]),
            "first_window_median_ms": ms(statistics.median(times)),
            "first_window_p95_ms": ms(percentile(times, 95)),
            "list_count": count,
            "rooms_returned": returned,
        }

    async def live_latency(self, owner: Client, poster: Client, room_id: str) -> dict[str, Any]:
        body = window_body(f"live-{time.time()}")
        status, data = await self.sliding_sync(owner, body)
        if status != 200:
            return {"error": f"{status} {data}"}
        pos: str = data["pos"]
        seen: dict[str, float] = {}
        arrived = asyncio.Event()
        stop = False

        async def poll() -> None:
            nonlocal pos
            while not stop:
                status, data = await self.sliding_sync(owner, body, pos, timeout_ms=30_000)
                now = time.monotonic()
                if status != 200:
                    raise RuntimeError(f"long-poll: {status} {data}")
                pos = data["pos"]
                room = data.get("rooms", {}).get(room_id, {})
                for event in room.get("timeline", []):
                    text = event.get("content", {}).get("body")
                    if isinstance(text, str) and text.startswith("live ") and text not in seen:
                        seen[text] = now
                        arrived.set()

        poller = asyncio.create_task(poll())
        latencies: list[float] = []
        lost = 0
        try:
            for i in range(self.args.messages):
                await asyncio.sleep(0.05)  # let the long-poll park again
                text = f"live {i}"
                arrived.clear()
                started = time.monotonic()
                await self.send(poster, room_id, text)
                try:
                    async with asyncio.timeout(10):
                        while text not in seen:
                            await arrived.wait()
                            arrived.clear()
                except TimeoutError:
                    lost += 1
                    continue
                latencies.append(seen[text] - started)
        finally:
            stop = True
            poller.cancel()
            try:
                await poller
            except (asyncio.CancelledError, RuntimeError, aiohttp.ClientError):
                pass
        return {
            "live_p50_ms": ms(percentile(latencies, 50)),
            "live_p99_ms": ms(percentile(latencies, 99)),
            "live_delivered": f"{len(latencies)}/{self.args.messages}",
            "live_lost": lost,
        }

    async def run(self) -> dict[str, Any]:
        owner, poster, rooms, setup_s = await self.setup()
        result: dict[str, Any] = {"rooms": len(rooms), "setup_s": round(setup_s, 1)}
        first = await self.first_window(owner)  # its first run is the cold one
        result.update(first)
        if "error" in first:
            return result
        result.update(await self.live_latency(owner, poster, rooms[0]))
        return result


async def run_against(args: argparse.Namespace, base: str) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=args.concurrency + 8)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await Workload(args, base, session).run()


async def measure_ours(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    instance = Instance.on_sqlite("ours", root)
    instance.start()
    try:
        async with aiohttp.ClientSession() as session:
            await instance.wait_ready(session)
        return await run_against(args, instance.base)
    finally:
        instance.stop()


def measure_synapse(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_synapse(SYNAPSE_NAME, SYNAPSE_PORT) as (base, _pid):
        return asyncio.run(run_against(args, base))


ROWS = [
    ("rooms in the account", "rooms"),
    ("setup: create rooms + fill (s)", "setup_s"),
    ("list count reported", "list_count"),
    ("rooms in the first response", "rooms_returned"),
    ("first window, cold (ms)", "first_window_cold_ms"),
    ("first window, median (ms)", "first_window_median_ms"),
    ("first window, p95 (ms)", "first_window_p95_ms"),
    ("new message to long-poll, p50 (ms)", "live_p50_ms"),
    ("new message to long-poll, p99 (ms)", "live_p99_ms"),
    ("messages delivered", "live_delivered"),
]


def print_table(ours: dict[str, Any], synapse: dict[str, Any]) -> None:
    print_side_by_side(side_by_side_rows(ROWS, ours, synapse))
    for name, result in (("ours", ours), ("Synapse", synapse)):
        if "error" in result:
            print(f"\n{name}: {result['error']}")
    mine, theirs = ours.get("first_window_median_ms"), synapse.get("first_window_median_ms")
    if isinstance(mine, float) and isinstance(theirs, float) and mine > 0:
        print(f"\nfirst window: {theirs / mine:.1f}x Synapse's speed")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=5000, help="rooms the account is in")
    parser.add_argument("--fill-messages", type=int, default=1, help="messages per room")
    parser.add_argument("--concurrency", type=int, default=16, help="rooms created at once")
    parser.add_argument("--runs", type=int, default=10, help="first-window requests")
    parser.add_argument("--messages", type=int, default=50, help="live messages timed")
    parser.add_argument("--only", choices=["ours", "synapse"], default=None)
    parser.add_argument("--out", default=None, help="also write both results here (JSON)")
    args = parser.parse_args()
    ours: dict[str, Any] = {}
    synapse: dict[str, Any] = {}
    if args.only != "synapse":
        root = Path(tempfile.mkdtemp(prefix="bench-ss-"))
        try:
            ours = asyncio.run(measure_ours(args, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if args.only != "ours":
        require_synapse_harness()
        synapse = measure_synapse(args)
    print_result({"ours": ours, "synapse": synapse}, args.out)
    print_table(ours, synapse)


if __name__ == "__main__":
    main()
