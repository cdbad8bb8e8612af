"""A small Matrix client for the benchmark scripts (registration, 429-aware requests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Client:
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def print_result(result: dict[str, Any], out: str | None) -> None:
    """Print a benchmark's figures as JSON, and write them to ``out`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        with open(out, "w") as file:
            file.write(text)


def print_side_by_side(
    rows: list[tuple[str, str, str]], headers: tuple[str, str] = ("ours", "Synapse")
) -> None:
    """A markdown table of (figure, ours, Synapse) rows (or other two columns)."""
    width = max(len(label) for label, _, _ in rows)
    print(f"\n| {'figure':<{width}} | {headers[0]} | {headers[1]} |")
    print(f"|{'-' * (width + 2)}|{'-' * (len(headers[0]) + 2)}|{'-' * (len(headers[1]) + 2)}|")
    for label, mine, theirs in rows:
        print(f"| {label:<{width}} | {mine} | {theirs} |")


def side_by_side_rows(
    labels: list[tuple[str, str]], ours: dict[str, Any], synapse: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """(figure, ours, Synapse) for each (label, result key); "-" where one is missing."""
    return [(label, str(ours.get(key, "-")), str(synapse.get(key, "-"))) for label, key in labels]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_kib(pid: int | None, keys: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """Memory lines of a process's ``/proc/PID/status`` (by default VmRSS and VmHWM),
    in KiB."""
    if pid is None:
        return {}
    result: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in keys:
                result[key] = int(value.split()[0])
    return result


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    on_rate_limited: Callable[[], None] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    """One request, obeying 429 (retry_after_ms) until it goes through."""
    while True:
        async with session.request(method, url, **kwargs) as resp:
            body = await resp.json(content_type=None)
            if resp.status == 429:
                if on_rate_limited is not None:
                    on_rate_limited()
                await asyncio.sleep(body.get("retry_after_ms", 100) / 1000)
                continue
            return resp.status, body


async def register(session: aiohttp.ClientSession, base: str, name: str) -> Client:
    """Register through user-interactive auth (m.login.dummy)."""
    url = f"{base}/_matrix/client/v3/register"
    body: dict[str, Any] = {"username": name, "password": "bench-password"}
    status, first = await call(session, "POST", url, json=body)
    if status == 200:
        return Client(first["user_id"], first["access_token"])
    body["auth"] = {"type": "m.login.dummy", "session": first["session"]}
    status, done = await call(session, "POST", url, json=body)
    if status != 200:
        raise RuntimeError(f"register {name}: {status} {done}")
    return Client(done["user_id"], done["access_token"])


async def gather_limited(limit: int, coros: list[Any]) -> list[Any]:
    """Await coroutines with at most ``limit`` running at once."""
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))
