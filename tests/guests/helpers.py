"""Helpers of the guest tests: guest accounts through ``POST /register?kind=guest``."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import V3, User

GUEST_CONFIG: dict[str, Any] = {"allow_guest_access": True}


async def make_guest(hs: HomeserverHarness) -> User:
    resp = await hs.client.post(V3 + "/register?kind=guest", json={})
    body = await resp.json()
    assert resp.status == 200, body
    return User(hs, body["user_id"], body["access_token"], body["device_id"])


async def set_guest_access(user: User, room_id: str, value: str) -> str:
    body = await user.request(
        "PUT", f"/rooms/{room_id}/state/m.room.guest_access/", {"guest_access": value}
    )
    return str(body["event_id"])


async def membership(user: User, room_id: str, target: str) -> str | None:
    """``target``'s membership as ``user`` reads the room state (None: none)."""
    resp = await user.request("GET", f"/rooms/{room_id}/state/m.room.member/{target}", expect=None)
    value = resp.get("membership")
    return value if isinstance(value, str) else None
