"""Long-polling /sync: woken by relevant commits only; concurrent senders, one order."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


async def _settle() -> None:
    """Give a pending long-poll time to register and any wake-up time to run."""
    for _ in range(5):
        await asyncio.sleep(0.02)


async def test_long_poll_wakes_on_own_room_not_on_unrelated(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room_a = await alice.create_room(preset="public_chat")
    await carol.join(room_a)
    room_b = await bob.create_room()
    since = (await alice.sync())["next_batch"]

    poll = asyncio.create_task(alice.sync(since=since, timeout=10_000))
    await _settle()
    await bob.send(room_b, "unrelated")
    await bob.request("PUT", f"/rooms/{room_b}/state/m.room.topic/", {"topic": "b"})
    await _settle()
    assert not poll.done()

    event_id = await carol.send(room_a, "relevant")
    body = await asyncio.wait_for(poll, 5)
    events = body["rooms"]["join"][room_a]["timeline"]["events"]
    assert [e["event_id"] for e in events] == [event_id]
    assert room_b not in body["rooms"]["join"]


async def test_long_poll_times_out_empty(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.create_room()
    since = (await alice.sync())["next_batch"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    body = await alice.sync(since=since, timeout=150)
    assert loop.time() - started >= 0.1
    assert body["rooms"]["join"] == {} and body["rooms"]["invite"] == {}
    assert body["next_batch"] == since


async def test_long_poll_wakes_on_invite_and_on_leave(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room()
    since = (await bob.sync())["next_batch"]
    poll = asyncio.create_task(bob.sync(since=since, timeout=10_000))
    await _settle()
    assert not poll.done()
    await alice.invite(room_id, bob.user_id)
    body = await asyncio.wait_for(poll, 5)
    assert room_id in body["rooms"]["invite"]

    await bob.join(room_id)
    since = (await bob.sync(since=body["next_batch"]))["next_batch"]
    poll = asyncio.create_task(bob.sync(since=since, timeout=10_000))
    await _settle()
    await alice.request("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id})
    body = await asyncio.wait_for(poll, 5)
    assert room_id in body["rooms"]["leave"]


async def test_full_state_does_not_wait(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    since = (await alice.sync())["next_batch"]
    body = await asyncio.wait_for(alice.sync(since=since, timeout=10_000, full_state="true"), 5)
    assert room_id in body["rooms"]["join"]


async def _collect(user: User, room_id: str, since: str, stop: asyncio.Event) -> list[str]:
    """Incremental syncs until ``stop`` is set and a final sync is empty."""
    seen: list[str] = []
    flt = '{"room": {"timeline": {"limit": 1000, "types": ["m.room.message"]}}}'
    while True:
        stopping = stop.is_set()
        body = await user.sync(since=since, timeout=50, filter=flt)
        room: dict[str, Any] = body["rooms"]["join"].get(room_id, {})
        events = room.get("timeline", {}).get("events", [])
        assert not room.get("timeline", {}).get("limited", False)
        seen += [e["event_id"] for e in events]
        since = body["next_batch"]
        if stopping and not events:
            return seen


async def _page_through(user: User, room_id: str, direction: str, start: str | None) -> list[str]:
    """Every m.room.message of /messages in ``direction``, read 7 at a time."""
    seen: list[str] = []
    params = {"dir": direction, "limit": "7", "filter": '{"types": ["m.room.message"]}'}
    if start is not None:
        params["from"] = start
    for _ in range(100):
        page = await user.request("GET", f"/rooms/{room_id}/messages", params=params)
        seen += [e["event_id"] for e in page["chunk"]]
        if "end" not in page:
            return seen
        params["from"] = page["end"]
    raise AssertionError("/messages did not come to an end")


async def test_concurrent_senders_one_order_for_everyone(hs: HomeserverHarness) -> None:
    owner = await make_user(hs, "owner")
    room_id = await owner.create_room(preset="public_chat")
    users = [await make_user(hs, f"user{i}") for i in range(5)]
    for user in users:
        await user.join(room_id)
    starts = [(await u.sync())["next_batch"] for u in users]
    stop = asyncio.Event()
    collectors = [
        asyncio.create_task(_collect(u, room_id, s, stop))
        for u, s in zip(users, starts, strict=True)
    ]

    async def sender(user: User) -> list[str]:
        return [await user.send(room_id, f"{user.user_id} {i}") for i in range(8)]

    sent = await asyncio.gather(*(sender(u) for u in users))
    stop.set()
    seen = await asyncio.wait_for(asyncio.gather(*collectors), 30)
    everything = {e for batch in sent for e in batch}
    assert len(everything) == 40
    assert set(seen[0]) == everything and len(seen[0]) == 40
    for other in seen[1:]:
        assert other == seen[0]
    # each sender's own messages keep their sending order
    for batch in sent:
        assert [e for e in seen[0] if e in set(batch)] == batch
    # and an initial sync shows the same order
    flt = '{"room": {"timeline": {"limit": 100, "types": ["m.room.message"]}}}'
    body = await users[0].sync(filter=flt)
    assert [e["event_id"] for e in body["rooms"]["join"][room_id]["timeline"]["events"]] == seen[0]
    # and every client's /messages has that order too: forwards from the sync token it
    # started from, and backwards from the end of the room
    for user, start in zip(users, starts, strict=True):
        assert await _page_through(user, room_id, "f", start) == seen[0]
        assert await _page_through(user, room_id, "b", None) == seen[0][::-1]
