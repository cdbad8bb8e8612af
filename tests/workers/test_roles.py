"""Roles across real processes: the pushers run on the pusher worker, woken over
Redis by the events the main process commits, and a pusher worker killed with
SIGKILL resumes its pushers from the database when it comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import PG_ADMIN
from tests.push.support import Gateway, pusher_body, serve_gateway
from tests.workers.client import call, create_room, join, register, send
from tests.workers.deployment import Deployment

DEADLINE_S = 30.0


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    runner = await serve_gateway(gw)
    yield gw
    gw.release.set()
    await runner.cleanup()


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    """main (the event writer) + a pusher worker."""
    deployment = Deployment(
        tmp_path,
        PG_ADMIN,
        workers=[("pusher1", ["client"])],
        extra="pusher_instances: [pusher1]\nip_range_whitelist: ['127.0.0.0/8']\n",
    )
    try:
        await deployment.start()
        yield deployment
    finally:
        deployment.stop()


async def received(gateway: Gateway, count: int, deployment: Deployment) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while len(gateway.received) < count:
        assert asyncio.get_running_loop().time() < deadline, deployment.log("pusher1")
        await asyncio.sleep(0.02)


async def test_pushers_run_on_the_pusher_worker(deployment: Deployment, gateway: Gateway) -> None:
    main = deployment.instances["master"].base_url
    async with aiohttp.ClientSession() as session:
        alice = await register(session, main, "alice")
        bob = await register(session, main, "bob")
        room_id = await create_room(session, main, alice, preset="public_chat")
        await join(session, main, bob, room_id)
        status, answer = await call(
            session,
            "POST",
            f"{main}/_matrix/client/v3/pushers/set",
            pusher_body(gateway.url),
            token=alice.token,
        )
        assert status == 200, answer
        first = await send(session, main, bob, room_id, "t1", "one")
        await received(gateway, 1, deployment)
        assert gateway.received[0]["notification"]["event_id"] == first
        # the pusher worker dies; what is committed meanwhile is pushed once it is back
        deployment.kill("pusher1")
        second = await send(session, main, bob, room_id, "t2", "two")
        deployment.spawn("pusher1")
        await deployment.wait_healthy("pusher1")
        await received(gateway, 2, deployment)
        assert [r["notification"].get("event_id") for r in gateway.received] == [first, second]
