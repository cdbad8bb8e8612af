"""A worker killed with SIGKILL mid-traffic, in a deployment run as an admin runs it
(generate-workers, nginx, supervisord): no acknowledged message is lost, none is
stored twice, supervisord starts the worker again and it catches up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from homeserver.config.workers import room_writer_index
from tests.conftest import PG_ADMIN
from tests.workers.client import (
    User,
    call,
    create_room,
    join,
    register,
    sync,
    sync_until,
    timeline_bodies,
)
from tests.workers.supervised import Supervised, nginx_binary

WRITERS = ("events1", "events2")
SENDERS = 4
MESSAGES_PER_SENDER = 40


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Supervised]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    pytest.importorskip("supervisor")
    supervised = Supervised(tmp_path, PG_ADMIN, "events=2,sync=1")
    try:
        await supervised.start()
        yield supervised
    finally:
        supervised.stop()


async def _send_until_acknowledged(
    session: aiohttp.ClientSession, base: str, user: User, room_id: str, txn: str, body: str
) -> str:
    """What a client does: the same transaction ID again until the server answers 200."""
    url = f"{base}/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while True:
        try:
            status, answer = await call(
                session, "PUT", url, {"msgtype": "m.text", "body": body}, token=user.token
            )
            if status == 200:
                return str(answer["event_id"])
        except aiohttp.ClientError:
            pass
        assert loop.time() < deadline, f"{txn} never acknowledged"
        await asyncio.sleep(0.05)


async def test_event_writer_killed_mid_traffic(deployment: Supervised) -> None:
    base = deployment.base_url
    async with aiohttp.ClientSession() as session:
        users = [await register(session, base, f"user{i}") for i in range(SENDERS + 1)]
        reader = users[-1]
        # a room of each writer, so the killed one holds one of them
        rooms: dict[str, str] = {}
        while len(rooms) < len(WRITERS):
            room = await create_room(session, base, users[0], preset="public_chat")
            rooms.setdefault(WRITERS[room_writer_index(room, len(WRITERS))], room)
        for user in users[1:]:
            for room in rooms.values():
                await join(session, base, user, room)
        since = (await sync(session, base, reader))["next_batch"]
        acknowledged: dict[str, tuple[str, str]] = {}  # body -> (room, event ID)
        killed = asyncio.Event()

        async def sender(n: int) -> None:
            user = users[n]
            for i in range(MESSAGES_PER_SENDER):
                room = rooms[WRITERS[i % len(WRITERS)]]
                body = f"{n}-{i}"
                event_id = await _send_until_acknowledged(
                    session, base, user, room, f"txn-{n}-{i}", body
                )
                acknowledged[body] = (room, event_id)
                if n == 0 and i == MESSAGES_PER_SENDER // 3:
                    killed.set()

        async def killer() -> int:
            await killed.wait()
            return deployment.kill("events1")

        _, old_pid = await asyncio.gather(
            asyncio.gather(*(sender(n) for n in range(SENDERS))), killer()
        )
        assert len(acknowledged) == SENDERS * MESSAGES_PER_SENDER
        # supervisord started it again
        await deployment.wait_ready()
        assert deployment.pid("events1") not in (0, old_pid)
        # every acknowledged message is stored once, in its room's history
        for writer, room in rooms.items():
            url = f"{base}/_matrix/client/v3/rooms/{quote(room)}/messages"
            status, answer = await call(
                session, "GET", url, token=reader.token, params={"dir": "b", "limit": "1000"}
            )
            assert status == 200, answer
            stored = [
                (e["content"]["body"], e["event_id"])
                for e in answer["chunk"]
                if e["type"] == "m.room.message"
            ]
            bodies = [b for b, _ in stored]
            assert len(bodies) == len(set(bodies)), f"a message stored twice in {writer}'s room"
            expected = {b: e for b, (r, e) in acknowledged.items() if r == room}
            assert dict(stored) == expected
        # a long-poll on the sync worker catches up with both writers' rooms

        def all_seen(responses: list[dict[str, object]]) -> bool:
            seen = {
                b for r in responses for room in rooms.values() for b in timeline_bodies(r, room)
            }  # type: ignore[arg-type]
            return seen >= set(acknowledged)

        await sync_until(session, base, reader, since, all_seen, deadline_s=60)
