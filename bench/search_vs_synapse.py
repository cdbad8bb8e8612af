"""Server-side search and the user directory: this homeserver beside Synapse.

Run: ``python bench/search_vs_synapse.py [--messages 10000] [--rooms 20]
[--users 5000] [--queries 200] [--only ours|synapse] [--out FILE]``. Prints both
sets of figures side by side (and as JSON); asserts nothing.

The workload, the same on each server (words drawn from one seeded generator, so
both servers hold the same text):

1. Search: ``owner`` creates ``--rooms`` rooms and sends ``--messages`` messages
   spread over them, each of eight words from a 2,000-word vocabulary. Then
   ``--queries`` searches (``POST /search``, one or two words of the vocabulary,
   half ordered by rank, half by recent, the default limit of 10) are timed one at a
   time: p50 and p99 of the whole request.
2. User directory: ``--users`` users are registered (each with a display name of two
   words); with ``search_all_users`` on, ``--queries`` prefix searches (the first
   two to four letters of a name, limit 10) are timed one at a time.

Each server is started fresh on SQLite and stopped before the next one starts:
this homeserver as its own process (via ``bench_server``), Synapse through the
reference harness (``../shared/tools/synapse/start.sh``) on port 18160 with
``user_directory.search_all_users`` set through ``EXTRA_YAML``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
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

SYNAPSE_NAME = "benchsearch"
SYNAPSE_PORT = 18160
SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "pi", "qua", "zen", "bri"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class Workload:
    def __init__(self, args: argparse.Namespace, base: str, session: aiohttp.ClientSession):
        self.args = args
        self.base = base
        self.session = session
        self.txn = 0
        self.rng = random.Random(args.seed)
        self.words = vocabulary(self.rng, 2000)

    async def v3(self, client: Client, method: str, path: str, body: Any = None) -> Any:
        status, data = await call(
            self.session,
            method,
            f"{self.base}/_matrix/client/v3{path}",
            json=body,
            headers=client.headers,
        )
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {data}")
        return data

    async def fill_rooms(self, owner: Client) -> list[str]:
        rooms = [
            str((await self.v3(owner, "POST", "/createRoom", {"name": f"room {i}"}))["room_id"])
            for i in range(self.args.rooms)
        ]
        texts = [
            " ".join(self.rng.choice(self.words) for _ in range(8))
            for _ in range(self.args.messages)
        ]

        async def send(n: int, text: str) -> None:
            self.txn += 1
            room_id = rooms[n % len(rooms)]
            path = f"/rooms/{quote(room_id)}/send/m.room.message/s{self.txn}"
            await self.v3(owner, "PUT", path, {"msgtype": "m.text", "body": text})

        await gather_limited(self.args.concurrency, [send(n, t) for n, t in enumerate(texts)])
        return rooms

    async def time_searches(self, owner: Client) -> dict[str, Any]:
        times: list[float] = []
        found = 0
        for n in range(self.args.queries):
            term = " ".join(self.rng.choice(self.words) for _ in range(1 + n % 2))
            body = {
                "search_categories": {
                    "room_events": {
                        "search_term": term,
                        "order_by": "rank" if n % 4 < 2 else "recent",
                    }
                }
            }
            started = time.monotonic()
            data = await self.v3(owner, "POST", "/search", body)
            times.append(time.monotonic() - started)
            found += len(data["search_categories"]["room_events"]["results"])
        return {
            "search_p50_ms": ms(percentile(times, 50)),
            "search_p99_ms": ms(percentile(times, 99)),
            "search_results_per_query": round(found / max(1, len(times)), 1),
        }

    async def fill_users(self, tag: str) -> list[str]:
        names = [
            f"{self.rng.choice(self.words).title()} {self.rng.choice(self.words).title()}"
            for _ in range(self.args.users)
        ]

        async def make(n: int, name: str) -> None:
            client = await register(self.session, self.base, f"u{tag}x{n}")
            await self.v3(
                client,
                "PUT",
                f"/profile/{quote(client.user_id)}/displayname",
                {"displayname": name},
            )

        await gather_limited(self.args.concurrency, [make(n, x) for n, x in enumerate(names)])
        return names

    async def time_directory(self, searcher: Client, names: list[str]) -> dict[str, Any]:
        times: list[float] = []
        found = 0
        for n in range(self.args.queries):
            name = self.rng.choice(names)
            term = name[: 2 + n % 3]
            started = time.monotonic()
            data = await self.v3(
                searcher, "POST", "/user_directory/search", {"search_term": term, "limit": 10}
            )
            times.append(time.monotonic() - started)
            found += len(data["results"])
        return {
            "directory_p50_ms": ms(percentile(times, 50)),
            "directory_p99_ms": ms(percentile(times, 99)),
            "directory_results_per_query": round(found / max(1, len(times)), 1),
        }

    async def run(self) -> dict[str, Any]:
        tag = f"{int(time.time())}"
        owner = await register(self.session, self.base, f"owner{tag}")
        started = time.monotonic()
        await self.fill_rooms(owner)
        result: dict[str, Any] = {
            "messages": self.args.messages,
            "rooms": self.args.rooms,
            "fill_messages_s": round(time.monotonic() - started, 1),
        }
        result.update(await self.time_searches(owner))
        started = time.monotonic()
        names = await self.fill_users(tag)
        result["users"] = len(names)
        result["fill_users_s"] = round(time.monotonic() - started, 1)
        result.update(await self.time_directory(owner, names))
        return result


async def run_against(args: argparse.Namespace, base: str) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=args.concurrency + 8)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await Workload(args, base, session).run()


async def measure_ours(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    instance = Instance.on_sqlite("ours", root)
    instance.configure(user_directory={"search_all_users": True})
    instance.start()
    try:
        async with aiohttp.ClientSession() as session:
            await instance.wait_ready(session)
        return await run_against(args, instance.base)
    finally:
        instance.stop()


def measure_synapse(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    extra = root / "synapse-extra.yaml"
    extra.write_text("user_directory:\n  search_all_users: true\nbcrypt_rounds: 4\n")
    with fresh_synapse(SYNAPSE_NAME, SYNAPSE_PORT, extra) as (base, _pid):
        return asyncio.run(run_against(args, base))


ROWS = [
    ("messages / rooms", "messages"),
    ("fill messages (s)", "fill_messages_s"),
    ("search p50 (ms)", "search_p50_ms"),
    ("search p99 (ms)", "search_p99_ms"),
    ("search results per query", "search_results_per_query"),
    ("users", "users"),
    ("fill users (s)", "fill_users_s"),
    ("directory prefix search p50 (ms)", "directory_p50_ms"),
    ("directory prefix search p99 (ms)", "directory_p99_ms"),
    ("directory results per query", "directory_results_per_query"),
]


def print_table(ours: dict[str, Any], synapse: dict[str, Any]) -> None:
    print_side_by_side(side_by_side_rows(ROWS, ours, synapse))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=["ours", "synapse"], default=None)
    parser.add_argument("--out", default=None, help="also write both results here (JSON)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-search-"))
    ours: dict[str, Any] = {}
    synapse: dict[str, Any] = {}
    try:
        if args.only != "synapse":
            ours = asyncio.run(measure_ours(args, root))
        if args.only != "ours":
            require_synapse_harness()
            synapse = measure_synapse(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_result({"ours": ours, "synapse": synapse}, args.out)
    print_table(ours, synapse)


if __name__ == "__main__":
    main()
