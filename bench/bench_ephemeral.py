"""Typing and receipts workload against any homeserver (ours or Synapse), client API only.

``--users`` users (default 100) join one public room and each long-polls ``/sync``
(with presence filtered out). Then, per round:

  typing:   every user sets typing on at once; each member records the delay from the
            PUT being issued to the first /sync response showing that user typing;
            then everyone stops typing and the next round begins.
  receipts: one user sends a message; every user sends an ``m.read`` receipt for it at
            once; each member records the delay until the receipt appears in /sync.

Prints latency percentiles (one sample per action and member) and the request rate of
the PUT/POST calls. No assertions: this prints figures.

    python bench/bench_ephemeral.py --base http://127.0.0.1:8008
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from bench_client import Client, call, gather_limited, percentile, print_result, register

SYNC_FILTER = json.dumps({"presence": {"not_types": ["*"]}, "room": {"timeline": {"limit": 5}}})


@dataclass
class Samples:
    # (kind, round, user) -> when the action was issued
    sent_at: dict[tuple[str, int, str], float] = field(default_factory=dict)
    typing_ms: list[float] = field(default_factory=list)
    receipt_ms: list[float] = field(default_factory=list)
    errors: int = 0


class Member:
    """One long-polling member: remembers what it saw and samples latencies."""

    def __init__(self, client: Client, room_id: str, samples: Samples) -> None:
        self.client = client
        self.room_id = room_id
        self.samples = samples
        self.round = -1
        self.typing_seen: set[str] = set()
        self.receipts_seen: set[str] = set()
        self.changed = asyncio.Event()

    async def poll(self, session: aiohttp.ClientSession, base: str) -> None:
        url = f"{base}/_matrix/client/v3/sync"
        _, body = await call(
            session, "GET", url, params={"filter": SYNC_FILTER}, headers=self.client.headers
        )
        since = body["next_batch"]
        while True:
            params = {"since": since, "timeout": "30000", "filter": SYNC_FILTER}
            status, body = await call(
                session, "GET", url, params=params, headers=self.client.headers
            )
            now = time.monotonic()
            if status != 200:
                self.samples.errors += 1
                await asyncio.sleep(0.1)
                continue
            since = body["next_batch"]
            room = body.get("rooms", {}).get("join", {}).get(self.room_id, {})
            for event in room.get("ephemeral", {}).get("events", []):
                if event["type"] == "m.typing":
                    self._saw_typing(set(event["content"].get("user_ids", [])), now)
                elif event["type"] == "m.receipt":
                    self._saw_receipts(event["content"], now)

    def _saw_typing(self, typing: set[str], now: float) -> None:
        for user_id in typing - self.typing_seen:
            sent = self.samples.sent_at.get(("typing", self.round, user_id))
            if sent is not None:
                self.samples.typing_ms.append((now - sent) * 1000)
        self.typing_seen = typing
        self.changed.set()

    def _saw_receipts(self, content: dict[str, Any], now: float) -> None:
        for by_type in content.values():
            for user_id in by_type.get("m.read", {}):
                if user_id in self.receipts_seen:
                    continue
                sent = self.samples.sent_at.get(("receipt", self.round, user_id))
                if sent is not None:
                    self.receipts_seen.add(user_id)
                    self.samples.receipt_ms.append((now - sent) * 1000)
        self.changed.set()


async def wait_until(members: list[Member], done: Any, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while not all(done(m) for m in members):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = args.base.rstrip("/")
    run_id = secrets.token_hex(3)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        clients = await gather_limited(
            8, [register(session, base, f"e{run_id}u{i}") for i in range(args.users)]
        )
        _, body = await call(
            session,
            "POST",
            f"{base}/_matrix/client/v3/createRoom",
            json={"preset": "public_chat"},
            headers=clients[0].headers,
        )
        room_id = body["room_id"]
        room_path = quote(room_id, safe="")
        await gather_limited(
            8,
            [
                call(
                    session,
                    "POST",
                    f"{base}/_matrix/client/v3/join/{room_path}",
                    json={},
                    headers=c.headers,
                )
                for c in clients[1:]
            ],
        )
        samples = Samples()
        members = [Member(c, room_id, samples) for c in clients]
        polls = [asyncio.create_task(m.poll(session, base)) for m in members]
        await asyncio.sleep(2)  # every member reaches its long-poll
        everyone = {c.user_id for c in clients}
        action_ms: list[float] = []

        async def act(
            method: str, path: str, body: dict[str, Any], client: Client, key: tuple[str, int, str]
        ) -> None:
            start = time.monotonic()
            samples.sent_at[key] = start
            status, _ = await call(session, method, base + path, json=body, headers=client.headers)
            action_ms.append((time.monotonic() - start) * 1000)
            if status != 200:
                samples.errors += 1

        t0 = time.monotonic()
        for rnd in range(args.rounds):
            for m in members:
                m.round = rnd
            await asyncio.gather(
                *(
                    act(
                        "PUT",
                        f"/_matrix/client/v3/rooms/{room_path}/typing/{quote(c.user_id)}",
                        {"typing": True, "timeout": 30000},
                        c,
                        ("typing", rnd, c.user_id),
                    )
                    for c in clients
                )
            )
            await wait_until(members, lambda m: m.typing_seen >= everyone, 30)
            await asyncio.gather(
                *(
                    call(
                        session,
                        "PUT",
                        f"{base}/_matrix/client/v3/rooms/{room_path}/typing/{quote(c.user_id)}",
                        json={"typing": False},
                        headers=c.headers,
                    )
                    for c in clients
                )
            )
            await wait_until(members, lambda m: not m.typing_seen, 30)
        typing_wall = time.monotonic() - t0

        t0 = time.monotonic()
        for rnd in range(args.rounds):
            _, sent = await call(
                session,
                "PUT",
                f"{base}/_matrix/client/v3/rooms/{room_path}/send/m.room.message/{run_id}r{rnd}",
                json={"msgtype": "m.text", "body": f"read me {rnd}"},
                headers=clients[0].headers,
            )
            event_path = quote(sent["event_id"], safe="")
            for m in members:
                m.round = rnd
                m.receipts_seen = set()
            await asyncio.gather(
                *(
                    act(
                        "POST",
                        f"/_matrix/client/v3/rooms/{room_path}/receipt/m.read/{event_path}",
                        {},
                        c,
                        ("receipt", rnd, c.user_id),
                    )
                    for c in clients
                )
            )
            await wait_until(members, lambda m: m.receipts_seen >= everyone, 30)
        receipt_wall = time.monotonic() - t0

        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        expected = args.rounds * len(clients) * len(clients)
        return {
            "base": base,
            "users": len(clients),
            "rounds": args.rounds,
            "typing_p50_ms": round(percentile(samples.typing_ms, 50), 1),
            "typing_p99_ms": round(percentile(samples.typing_ms, 99), 1),
            "typing_delivered_pct": round(100 * len(samples.typing_ms) / expected, 1),
            "typing_wall_s": round(typing_wall, 2),
            "receipt_p50_ms": round(percentile(samples.receipt_ms, 50), 1),
            "receipt_p99_ms": round(percentile(samples.receipt_ms, 99), 1),
            "receipt_delivered_pct": round(100 * len(samples.receipt_ms) / expected, 1),
            "receipt_wall_s": round(receipt_wall, 2),
            "action_p50_ms": round(percentile(action_ms, 50), 1),
            "errors": samples.errors,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="client API base URL")
    parser.add_argument("--users", type=int, default=100, help="members, each typing and reading")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print_result(result, args.out)


if __name__ == "__main__":
    main()
