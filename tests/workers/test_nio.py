"""A real client library (matrix-nio) through the nginx front of a deployment with
workers: it registers, logs in, creates a room, is joined by a second nio client,
and each receives the other's messages by /sync (served by the sync worker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN
from tests.workers.supervised import Supervised, nginx_binary

nio = pytest.importorskip("nio")


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Supervised]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    pytest.importorskip("supervisor")
    supervised = Supervised(tmp_path, PG_ADMIN, "events=2,sync=1,client=1")
    try:
        await supervised.start()
        yield supervised
    finally:
        supervised.stop()


async def _sync_until_message(client: object, room_id: str, body: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        response = await client.sync(timeout=5000)  # type: ignore[attr-defined]
        assert isinstance(response, nio.SyncResponse), response
        room = response.rooms.join.get(room_id)
        if room is not None and any(
            isinstance(e, nio.RoomMessageText) and e.body == body for e in room.timeline.events
        ):
            return
        assert loop.time() < deadline, f"{body!r} never arrived"


async def test_nio_clients_talk_through_nginx(deployment: Supervised, tmp_path: Path) -> None:
    base = deployment.base_url
    server = deployment.server_name
    alice = nio.AsyncClient(base, f"@alice:{server}", store_path=str(tmp_path))
    bob = nio.AsyncClient(base, f"@bob:{server}", store_path=str(tmp_path))
    try:
        for client, name in ((alice, "alice"), (bob, "bob")):
            registered = await client.register(name, "correct horse battery", "nio")
            assert isinstance(registered, nio.RegisterResponse), registered
            await client.logout()
            logged_in = await client.login("correct horse battery", device_name="nio again")
            assert isinstance(logged_in, nio.LoginResponse), logged_in
        created = await alice.room_create(name="nio room", invite=[bob.user_id])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        first = await bob.sync(timeout=0)
        assert isinstance(first, nio.SyncResponse), first
        joined = await bob.join(room_id)
        assert isinstance(joined, nio.JoinResponse), joined
        await alice.sync(timeout=0)
        sent = await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello from nio"}
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        await _sync_until_message(bob, room_id, "hello from nio")
        reply = await bob.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello back"}
        )
        assert isinstance(reply, nio.RoomSendResponse), reply
        await _sync_until_message(alice, room_id, "hello back")
        members = await alice.joined_members(room_id)
        assert isinstance(members, nio.JoinedMembersResponse), members
        assert {m.user_id for m in members.members} == {alice.user_id, bob.user_id}
    finally:
        await alice.close()
        await bob.close()
