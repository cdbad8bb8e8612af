"""A minimal Matrix client for the multi-process tests: plain HTTP to any process."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

# every message of the tests in one response: no limited timelines
TIMELINE_FILTER = json.dumps({"room": {"timeline": {"limit": 100}}})


@dataclass
class User:
    user_id: str
    token: str


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, url, json=body, headers=headers, params=params) as r:
        raw = await r.read()
        return r.status, json.loads(raw) if raw else None


async def register(session: aiohttp.ClientSession, base: str, localpart: str) -> User:
    url = f"{base}/_matrix/client/v3/register"
    body = {"username": localpart, "password": "secret-password", "auth": {"type": "m.login.dummy"}}
    status, answer = await call(session, "POST", url, body)
    if status == 401:
        body["auth"]["session"] = answer["session"]
        status, answer = await call(session, "POST", url, body)
    assert status == 200, answer
    return User(answer["user_id"], answer["access_token"])


async def create_room(session: aiohttp.ClientSession, base: str, user: User, **body: Any) -> str:
    status, answer = await call(
        session, "POST", f"{base}/_matrix/client/v3/createRoom", body, token=user.token
    )
    assert status == 200, answer
    return str(answer["room_id"])


async def join(session: aiohttp.ClientSession, base: str, user: User, room_id: str) -> None:
    url = f"{base}/_matrix/client/v3/join/{quote(room_id)}"
    status, answer = await call(session, "POST", url, {}, token=user.token)
    assert status == 200, answer


async def send(
    session: aiohttp.ClientSession, base: str, user: User, room_id: str, txn: str, text: str
) -> str:
    url = f"{base}/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{quote(txn)}"
    status, answer = await call(
        session, "PUT", url, {"msgtype": "m.text", "body": text}, token=user.token
    )
    assert status == 200, answer
    return str(answer["event_id"])


async def sync(
    session: aiohttp.ClientSession,
    base: str,
    user: User,
    since: str | None = None,
    timeout_ms: int = 0,
) -> dict[str, Any]:
    params = {"timeout": str(timeout_ms), "filter": TIMELINE_FILTER}
    if since is not None:
        params["since"] = since
    status, answer = await call(
        session, "GET", f"{base}/_matrix/client/v3/sync", token=user.token, params=params
    )
    assert status == 200, answer
    return dict(answer)


def timeline_bodies(response: dict[str, Any], room_id: str) -> list[str]:
    room = response.get("rooms", {}).get("join", {}).get(room_id, {})
    return [
        e["content"]["body"]
        for e in room.get("timeline", {}).get("events", [])
        if e.get("type") == "m.room.message"
    ]


async def sync_until(
    session: aiohttp.ClientSession,
    base: str,
    user: User,
    since: str | None,
    done: Any,
    deadline_s: float = 30.0,
) -> tuple[str, list[dict[str, Any]]]:
    """Long-poll until ``done(responses)`` holds; the last token and every response."""
    responses: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not done(responses):
        assert loop.time() < deadline, f"sync did not see what was expected: {responses[-3:]}"
        response = await sync(session, base, user, since, timeout_ms=5000)
        responses.append(response)
        since = response["next_batch"]
    assert since is not None
    return since, responses
