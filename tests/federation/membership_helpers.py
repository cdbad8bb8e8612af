"""Helpers of the membership tests: waiting on /sync long-polls for what another
server sends, and reading a server's view of a room."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tests.federation.rooms import settle
from tests.federation.servers import FederatingServer
from tests.rooms.helpers import User

SYNC_WAIT_S = 20.0


async def sync_until(
    user: User, predicate: Callable[[dict[str, Any]], bool], since: str | None = None
) -> tuple[dict[str, Any], str]:
    """Long-poll /sync until a response satisfies ``predicate``; (response, next_batch)."""
    async with asyncio.timeout(SYNC_WAIT_S):
        while True:
            params: dict[str, Any] = {"timeout": 2000}
            if since is not None:
                params["since"] = since
            body = await user.sync(**params)
            if predicate(body):
                return body, body["next_batch"]
            since = body["next_batch"]


def timeline_bodies(sync: dict[str, Any], room_id: str) -> list[str]:
    room = sync.get("rooms", {}).get("join", {}).get(room_id, {})
    return [
        e["content"].get("body")
        for e in room.get("timeline", {}).get("events", [])
        if e.get("type") == "m.room.message"
    ]


def has_message(room_id: str, body: str) -> Callable[[dict[str, Any]], bool]:
    return lambda sync: body in timeline_bodies(sync, room_id)


def in_section(section: str, room_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda sync: room_id in sync.get("rooms", {}).get(section, {})


async def members(server: FederatingServer, room_id: str) -> dict[str, str]:
    return await server.server.stores.state.current_members(room_id)


async def settled(*servers: FederatingServer) -> None:
    await settle(*servers)


async def join_via(user: User, room_id: str, server: FederatingServer) -> None:
    """``user`` joins ``room_id`` through ``server`` (a remote join by room ID)."""
    path = f"/join/{quote(room_id)}?server_name={quote(server.server_name)}"
    assert (await user.request("POST", path, {}))["room_id"] == room_id
