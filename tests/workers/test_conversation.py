"""Several real processes of one homeserver: a conversation whose sender and
receivers are served by different processes, rooms shared out between two event
writers, and a change made on one process seen by every other."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import aiohttp
import pytest

from homeserver.config.workers import room_writer_index
from tests.conftest import PG_ADMIN
from tests.workers.client import (
    call,
    create_room,
    join,
    register,
    send,
    sync,
    sync_until,
    timeline_bodies,
)
from tests.workers.deployment import Deployment

WRITERS = ("writer1", "writer2")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """main + two event writers + two sync workers, shared by this module's tests
    (each registers users of its own)."""
    deployment = Deployment(
        tmp_path_factory.mktemp("workers"),
        PG_ADMIN,
        workers=[
            ("writer1", ["client"]),
            ("writer2", ["client"]),
            ("sync1", ["client"]),
            ("sync2", ["client"]),
        ],
        events=WRITERS,
    )
    try:
        asyncio.run(deployment.start())
        yield deployment
    finally:
        deployment.stop()


def _url(deployment: Deployment, name: str) -> str:
    return deployment.instances[name].base_url


async def test_conversation_across_processes(deployment: Deployment) -> None:
    """Alice sends through both writers (one of them forwards to the room's writer);
    Bob long-polls on one sync worker and Carol on another; both see every message,
    once, in the order sent."""
    async with aiohttp.ClientSession() as session:
        main = _url(deployment, "master")
        alice = await register(session, main, "conv-alice")
        bob = await register(session, main, "conv-bob")
        carol = await register(session, main, "conv-carol")
        room = await create_room(session, _url(deployment, "writer1"), alice, preset="public_chat")
        await join(session, _url(deployment, "writer2"), bob, room)
        await join(session, _url(deployment, "sync1"), carol, room)
        receivers = {}
        for user, worker in ((bob, "sync1"), (carol, "sync2")):
            first = await sync(session, _url(deployment, worker), user)
            receivers[user.user_id] = (worker, first["next_batch"])
        texts = [f"message {i}" for i in range(12)]
        for i, text in enumerate(texts):
            via = WRITERS[i % 2]
            await send(session, _url(deployment, via), alice, room, f"t{i}", text)
        for user in (bob, carol):
            worker, since = receivers[user.user_id]

            def got_all(responses: list[dict[str, object]]) -> bool:
                seen = [b for r in responses for b in timeline_bodies(r, room)]  # type: ignore[arg-type]
                return len(seen) >= len(texts)

            _, responses = await sync_until(session, _url(deployment, worker), user, since, got_all)
            seen = [b for r in responses for b in timeline_bodies(r, room)]
            assert seen == texts


async def test_rooms_shared_out_between_two_writers(deployment: Deployment) -> None:
    """Rooms are persisted by the writer their ID hashes to; a sync worker serves the
    events of rooms of both writers in one timeline each, and /messages on any
    process returns every room's history."""
    async with aiohttp.ClientSession() as session:
        main = _url(deployment, "master")
        alice = await register(session, main, "split-alice")
        rooms: dict[str, list[str]] = {w: [] for w in WRITERS}
        while not all(len(v) >= 2 for v in rooms.values()):
            room = await create_room(session, main, alice)
            rooms[WRITERS[room_writer_index(room, len(WRITERS))]].append(room)
            assert sum(len(v) for v in rooms.values()) < 40, "room IDs all hash to one writer"
        first = await sync(session, _url(deployment, "sync1"), alice)
        since = first["next_batch"]
        chosen = [rooms[w][i] for w in WRITERS for i in range(2)]
        for n, room in enumerate(chosen):
            # sent through the room's own writer and through the other one
            for k, via in enumerate(WRITERS):
                await send(session, _url(deployment, via), alice, room, f"{n}-{k}", f"{n}-{k}")

        def got_all(responses: list[dict[str, object]]) -> bool:
            return all(
                len([b for r in responses for b in timeline_bodies(r, room)]) >= 2  # type: ignore[arg-type]
                for room in chosen
            )

        _, responses = await sync_until(session, _url(deployment, "sync1"), alice, since, got_all)
        for n, room in enumerate(chosen):
            assert [b for r in responses for b in timeline_bodies(r, room)] == [
                f"{n}-0",
                f"{n}-1",
            ]
            for worker in ("sync2", "writer1", "writer2", "master"):
                url = f"{_url(deployment, worker)}/_matrix/client/v3/rooms/{quote(room)}/messages"
                status, answer = await call(
                    session, "GET", url, token=alice.token, params={"dir": "b", "limit": "5"}
                )
                assert status == 200, answer
                bodies = [
                    e["content"]["body"] for e in answer["chunk"] if e["type"] == "m.room.message"
                ]
                assert bodies == [f"{n}-1", f"{n}-0"], worker


async def test_display_name_change_seen_by_every_process(deployment: Deployment) -> None:
    """A display name set on the main process is what every process answers next:
    the profile, the member event in the room's state, and the sync of a member."""
    async with aiohttp.ClientSession() as session:
        main = _url(deployment, "master")
        alice = await register(session, main, "name-alice")
        bob = await register(session, main, "name-bob")
        room = await create_room(session, main, alice, preset="public_chat")
        await join(session, main, bob, room)
        # every process reads (and caches) the old state first
        for name in deployment.instances:
            url = f"{_url(deployment, name)}/_matrix/client/v3/rooms/{quote(room)}/state"
            status, _ = await call(session, "GET", url, token=bob.token)
            assert status == 200
        since = (await sync(session, _url(deployment, "sync2"), bob))["next_batch"]
        new_name = f"Alice {secrets.token_hex(3)}"
        url = f"{main}/_matrix/client/v3/profile/{quote(alice.user_id)}/displayname"
        status, answer = await call(
            session, "PUT", url, {"displayname": new_name}, token=alice.token
        )
        assert status == 200, answer

        def renamed(responses: list[dict[str, object]]) -> bool:
            for response in responses:
                room_data = response.get("rooms", {}).get("join", {}).get(room, {})  # type: ignore[union-attr]
                for event in room_data.get("timeline", {}).get("events", []):
                    if event["type"] == "m.room.member" and event["state_key"] == alice.user_id:
                        return bool(event["content"].get("displayname") == new_name)
            return False

        await sync_until(session, _url(deployment, "sync2"), bob, since, renamed)
        for name in deployment.instances:
            base = _url(deployment, name)
            status, answer = await call(
                session,
                "GET",
                f"{base}/_matrix/client/v3/profile/{quote(alice.user_id)}/displayname",
                token=bob.token,
            )
            assert (status, answer) == (200, {"displayname": new_name}), name
            status, answer = await call(
                session,
                "GET",
                f"{base}/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/"
                f"{quote(alice.user_id)}",
                token=bob.token,
            )
            assert status == 200 and answer["displayname"] == new_name, (name, answer)
