"""Helpers for room tests: users with tokens, and room actions through the HTTP API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tests.conftest import HomeserverHarness

V3 = "/_matrix/client/v3"
_txn = itertools.count()


@dataclass
class User:
    hs: HomeserverHarness
    user_id: str
    token: str
    device_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(
        self, method: str, path: str, body: Any = None, expect: int | None = 200, **kw: Any
    ) -> Any:
        resp = await self.hs.client.request(method, V3 + path, json=body, headers=self.auth, **kw)
        data = await resp.json()
        if expect is not None:
            assert resp.status == expect, f"{method} {path} -> {resp.status} {data}"
        return data

    async def create_room(self, **body: Any) -> str:
        return str((await self.request("POST", "/createRoom", body))["room_id"])

    async def send(
        self, room_id: str, body: str = "hello", event_type: str = "m.room.message", **content: Any
    ) -> str:
        txn = f"t{next(_txn)}"
        data = await self.request(
            "PUT",
            f"/rooms/{room_id}/send/{event_type}/{txn}",
            {"msgtype": "m.text", "body": body, **content},
        )
        return str(data["event_id"])

    async def join(self, room_id_or_alias: str) -> Any:
        return await self.request("POST", f"/join/{quote(room_id_or_alias, safe='')}", {})

    async def invite(self, room_id: str, user_id: str) -> Any:
        return await self.request("POST", f"/rooms/{room_id}/invite", {"user_id": user_id})

    async def leave(self, room_id: str) -> Any:
        return await self.request("POST", f"/rooms/{room_id}/leave", {})

    async def state(self, room_id: str, event_type: str, state_key: str = "") -> Any:
        return await self.request("GET", f"/rooms/{room_id}/state/{event_type}/{state_key}")

    async def sync(self, **params: Any) -> Any:
        return await self.request("GET", "/sync", params={k: str(v) for k, v in params.items()})


async def make_user(hs: HomeserverHarness, localpart: str) -> User:
    body = await hs.register(localpart)
    return User(hs, body["user_id"], body["access_token"], body["device_id"])
