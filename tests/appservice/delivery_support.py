"""Helpers of the delivery tests: ghosts acting through the AS token, waiting for
transactions, and homeservers with custom registrations."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from homeserver.appservice.delivery import AppServiceDelivery, ServiceQueue
from tests.appservice.conftest import AS_TOKEN, FakeAppService, registration
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import V3

WAIT_S = 10.0
_txn = itertools.count()


async def eventually(check: Callable[[], bool], within_s: float = WAIT_S) -> None:
    """Wait for real HTTP to happen (short polls, bounded)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def wait_for_events(
    service: FakeAppService, event_ids: list[str], within_s: float = WAIT_S
) -> None:
    def received(s: FakeAppService) -> bool:
        got = {e["event_id"] for e in s.events()}
        return all(event_id in got for event_id in event_ids)

    async with asyncio.timeout(within_s):
        await service.wait_for(received)


def delivery(hs: HomeserverHarness) -> AppServiceDelivery:
    assert hs.server.appservice_delivery is not None
    return hs.server.appservice_delivery


def queue(hs: HomeserverHarness, as_id: str = "bridge") -> ServiceQueue:
    return delivery(hs).queues[as_id]


async def caught_up(hs: HomeserverHarness, as_id: str = "bridge") -> None:
    """Until the service's queue has read every event persisted so far."""
    target = hs.server.client.persister.events_stream.current()
    one = queue(hs, as_id)
    await eventually(lambda: one.positions["events"] >= target and one.pending_txn_id is None)


def bridge(url: str, **overrides: Any) -> dict[str, Any]:
    return registration(url, **overrides)


class Ghost:
    """A user of the bridge's namespace, acting through the AS token."""

    def __init__(self, hs: HomeserverHarness, user_id: str, token: str = AS_TOKEN) -> None:
        self.hs = hs
        self.user_id = user_id
        self.token = token

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        resp = await self.hs.client.request(
            method,
            V3 + path,
            json=body,
            params={"user_id": self.user_id},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        data = await resp.json()
        assert resp.status == 200, f"{method} {path} -> {resp.status} {data}"
        return data

    async def join(self, room_id: str) -> None:
        await self.request("POST", f"/join/{room_id}", {})

    async def send(self, room_id: str, text: str) -> str:
        data = await self.request(
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/g{next(_txn)}",
            {"msgtype": "m.text", "body": text},
        )
        return str(data["event_id"])


async def make_ghost(hs: HomeserverHarness, localpart: str) -> Ghost:
    """Register a namespace user as the bridge would (the service creates it)."""
    accounts = hs.server.client.accounts
    owner = hs.server.client.appservices.exclusive_owner_of_user(accounts.user_id_for(localpart))
    user_id, _ = await accounts.register(localpart, None, login=False, app_service=owner)
    return Ghost(hs, user_id)
