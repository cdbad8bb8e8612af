"""Helpers for ephemeral stream tests: incremental syncs and long-polls."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.rooms.helpers import User


async def sync_token(user: User) -> str:
    return str((await user.sync())["next_batch"])


def ephemeral(body: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    room = body["rooms"]["join"].get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


def presence_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["sender"]: e["content"] for e in body["presence"]["events"]}


def long_poll(user: User, since: str, timeout_ms: int = 10_000) -> asyncio.Task[Any]:
    """Start an incremental /sync that waits for news; await the task for its body."""
    task = asyncio.ensure_future(user.sync(since=since, timeout=timeout_ms))
    return task


async def settle() -> None:
    """Let the long-poll register with the notifier."""
    for _ in range(20):
        await asyncio.sleep(0.005)
