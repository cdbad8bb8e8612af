"""Roles across real processes: the pushers run on the pusher worker, woken over
Redis by the events the main process commits; what the main process queues for a
remote server is sent by the federation sender worker. A worker killed with
SIGKILL resumes its pushers or queues from the database when it comes back."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from homeserver.selfsigned import make_self_signed_certificate
from tests.conftest import PG_ADMIN
from tests.push.support import Gateway, pusher_body
from tests.workers.client import User, call, create_room, join, register, send
from tests.workers.deployment import Deployment

DEADLINE_S = 30.0


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


async def pushed(gateway: Gateway, event_id: str, deployment: Deployment) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while event_id not in [r["notification"].get("event_id") for r in gateway.received]:
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
        await pushed(gateway, second, deployment)
        # at least once, in order: a push answered just before the kill may go again
        # (the pusher's position was not yet stored)
        pushes = [r["notification"].get("event_id") for r in gateway.received]
        assert list(dict.fromkeys(pushes)) == [first, second] and pushes[-1] == second


# -- federation sending ---------------------------------------------------------------------


@dataclass
class FakeRemote:
    """A remote homeserver over HTTPS on loopback: records every transaction."""

    name: str = ""
    transactions: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, request: web.Request) -> web.Response:
        self.transactions.append(await request.json())
        return web.json_response({"pdus": {}})

    def edus(self, edu_type: str) -> list[dict[str, Any]]:
        return [
            edu["content"]
            for txn in self.transactions
            for edu in txn.get("edus", [])
            if edu["edu_type"] == edu_type
        ]


@pytest.fixture
async def remote(tmp_path: Path) -> AsyncIterator[FakeRemote]:
    fake = FakeRemote()
    cert, key = make_self_signed_certificate(tmp_path / "remote-tls")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_put("/_matrix/federation/v1/send/{txn_id}", fake.send)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.name = f"127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def senders(tmp_path: Path) -> AsyncIterator[Deployment]:
    """main (queues) + a federation sender worker."""
    deployment = Deployment(
        tmp_path,
        PG_ADMIN,
        workers=[("sender1", ["client"])],
        extra=(
            "federation_sender_instances: [sender1]\n"
            "federation_verify_certificates: false\n"
            "ip_range_whitelist: ['127.0.0.0/8']\n"
        ),
    )
    try:
        await deployment.start()
        yield deployment
    finally:
        deployment.stop()


async def send_to_device(
    session: aiohttp.ClientSession, base: str, user: User, remote: FakeRemote, n: int
) -> None:
    url = f"{base}/_matrix/client/v3/sendToDevice/m.test/t{n}"
    body = {"messages": {f"@bob:{remote.name}": {"*": {"n": n}}}}
    status, answer = await call(session, "PUT", url, body, token=user.token)
    assert status == 200, answer


async def remote_got(
    remote: FakeRemote, count: int, deployment: Deployment, last: int | None = None
) -> None:
    """Wait for ``count`` to-device EDUs (and one numbered ``last`` among them)."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while len(remote.edus("m.direct_to_device")) < count or (
        last is not None and last not in numbers(remote)
    ):
        assert asyncio.get_running_loop().time() < deadline, deployment.log("sender1")
        await asyncio.sleep(0.02)


def numbers(remote: FakeRemote) -> list[int]:
    return [
        content["messages"][f"@bob:{remote.name}"]["*"]["n"]
        for content in remote.edus("m.direct_to_device")
    ]


async def test_edus_queued_on_main_are_sent_by_the_sender_worker(
    senders: Deployment, remote: FakeRemote
) -> None:
    main = senders.instances["master"].base_url
    async with aiohttp.ClientSession() as session:
        alice = await register(session, main, "alice")
        await send_to_device(session, main, alice, remote, 1)
        await remote_got(remote, 1, senders)
        # the sender dies; what is queued meanwhile goes once it is back
        senders.kill("sender1")
        await send_to_device(session, main, alice, remote, 2)
        senders.spawn("sender1")
        await senders.wait_healthy("sender1")
        await remote_got(remote, 2, senders, last=2)
    sent = numbers(remote)
    # at least once, in order: a transaction answered just before the kill may go
    # again (its rows were not yet deleted); the remote drops what it already has
    assert sorted(set(sent)) == [1, 2] and sent[-1] == 2
    assert all(txn["origin"] == senders.server_name for txn in remote.transactions)
