"""Shared steps of the room admin tests: users, rooms and messages through the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import HomeserverHarness

ADMIN_V1 = "/_synapse/admin/v1"
ADMIN_V2 = "/_synapse/admin/v2"
CLIENT = "/_matrix/client/v3"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def q(value: str) -> str:
    return quote(value, safe="")


async def make_admin(hs: HomeserverHarness, localpart: str = "admin") -> str:
    token = str((await hs.register(localpart))["access_token"])
    await hs.server.stores.accounts.set_admin(f"@{localpart}:test.local", True)
    return token


async def make_user(hs: HomeserverHarness, localpart: str) -> str:
    return str((await hs.register(localpart))["access_token"])


async def create_room(hs: HomeserverHarness, token: str, **body: Any) -> str:
    response = await hs.client.post(f"{CLIENT}/createRoom", json=body, headers=auth(token))
    assert response.status == 200, await response.text()
    return str((await response.json())["room_id"])


async def send_text(hs: HomeserverHarness, token: str, room_id: str, body: str) -> str:
    response = await hs.client.post(
        f"{CLIENT}/rooms/{q(room_id)}/send/m.room.message",
        json={"msgtype": "m.text", "body": body},
        headers=auth(token),
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["event_id"])


async def join(hs: HomeserverHarness, token: str, room_id: str) -> None:
    response = await hs.client.post(f"{CLIENT}/join/{q(room_id)}", json={}, headers=auth(token))
    assert response.status == 200, await response.text()


async def invite(hs: HomeserverHarness, token: str, room_id: str, user_id: str) -> None:
    response = await hs.client.post(
        f"{CLIENT}/rooms/{q(room_id)}/invite", json={"user_id": user_id}, headers=auth(token)
    )
    assert response.status == 200, await response.text()


async def error_of(response: Any) -> tuple[int, str]:
    body = await response.json()
    return response.status, str(body.get("errcode"))


async def count_rows(hs: HomeserverHarness, table: str, where: str, *args: Any) -> int:
    value = await hs.server.db.fetchval(
        "test_count", f"SELECT COUNT(*) FROM {table} WHERE {where}", *args
    )
    return int(value or 0)
