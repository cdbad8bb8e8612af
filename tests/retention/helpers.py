"""Shared steps of the message retention tests, through the client API."""

from __future__ import annotations

from typing import Any

from tests.admin.rooms.helpers import CLIENT, auth, count_rows, q, send_text
from tests.conftest import HomeserverHarness

DAY_S = 86_400
DAY_MS = DAY_S * 1000


async def set_policy(hs: HomeserverHarness, token: str, room_id: str, **content: Any) -> str:
    response = await hs.client.put(
        f"{CLIENT}/rooms/{q(room_id)}/state/m.room.retention/", json=content, headers=auth(token)
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["event_id"])


async def send_texts(hs: HomeserverHarness, token: str, room_id: str, *bodies: str) -> list[str]:
    return [await send_text(hs, token, room_id, body) for body in bodies]


async def message_ids(hs: HomeserverHarness, token: str, room_id: str) -> list[str]:
    """The m.room.message events /messages gives, newest first."""
    response = await hs.client.get(
        f"{CLIENT}/rooms/{q(room_id)}/messages?dir=b&limit=100", headers=auth(token)
    )
    assert response.status == 200, await response.text()
    chunk = (await response.json())["chunk"]
    return [e["event_id"] for e in chunk if e["type"] == "m.room.message"]


async def messages_types(hs: HomeserverHarness, token: str, room_id: str) -> set[str]:
    response = await hs.client.get(
        f"{CLIENT}/rooms/{q(room_id)}/messages?dir=b&limit=100", headers=auth(token)
    )
    assert response.status == 200, await response.text()
    return {e["type"] for e in (await response.json())["chunk"]}


async def sync(
    hs: HomeserverHarness, token: str, since: str | None = None
) -> tuple[dict[str, Any], str]:
    path = f"{CLIENT}/sync?timeout=0" + (f"&since={since}" if since else "")
    response = await hs.client.get(path, headers=auth(token))
    assert response.status == 200, await response.text()
    body = await response.json()
    return body, str(body["next_batch"])


def timeline_ids(body: dict[str, Any], room_id: str) -> list[str]:
    room = body.get("rooms", {}).get("join", {}).get(room_id)
    if room is None:
        return []
    return [e["event_id"] for e in room["timeline"]["events"]]


async def stored(hs: HomeserverHarness, event_ids: list[str]) -> list[str]:
    """Which of ``event_ids`` have a row in the events table."""
    return [e for e in event_ids if await count_rows(hs, "events", "event_id = $1", e)]


async def get_status(hs: HomeserverHarness, token: str, path: str) -> int:
    response = await hs.client.get(f"{CLIENT}{path}", headers=auth(token))
    await response.read()
    return response.status
