"""Helpers of the legacy API tests: the event stream, guests, room set-up."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User


async def events(user: User, expect: int = 200, **params: Any) -> Any:
    """GET /events; ``timeout`` defaults to 0 (no waiting) in tests."""
    params.setdefault("timeout", 0)
    return await user.request(
        "GET", "/events", params={k: str(v) for k, v in params.items()}, expect=expect
    )


async def stream_token(user: User, **params: Any) -> str:
    """The current end of the user's event stream."""
    return str((await events(user, **params))["end"])


def of_type(chunk: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in chunk if e["type"] == event_type]


async def make_guest(hs: HomeserverHarness, localpart: str) -> User:
    """A guest account with a session (guest registration is not under test here)."""
    user_id, session = await hs.server.client.accounts.register(localpart, None, guest=True)
    assert session is not None
    return User(hs, user_id, session.access_token, session.device_id)


async def world_readable_room(owner: User, **body: Any) -> str:
    room_id = await owner.create_room(preset="public_chat", **body)
    await owner.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility/",
        {"history_visibility": "world_readable"},
    )
    return room_id


async def settle() -> None:
    """Let a pending long-poll register with the notifier."""
    for _ in range(20):
        await asyncio.sleep(0.005)
