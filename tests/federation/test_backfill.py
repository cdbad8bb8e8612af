"""Backfill: a server that joins a room with history fetches the messages before its
join over federation when a client pages back with /messages (s2s "Backfilling and
retrieving missing events")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from federation.errors import FederationError
from tests.federation.membership_helpers import in_section, join_via, settled, sync_until
from tests.federation.rooms import fed_events, send_txn, settle, share_room
from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import User, make_user


async def page_back(user: User, room_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """Every event /messages gives, paging backwards from the end of the room."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(100):
        params = f"dir=b&limit={limit}" + (f"&from={quote(token)}" if token else "")
        page = await user.request("GET", f"/rooms/{quote(room_id)}/messages?{params}")
        events += page["chunk"]
        token = page.get("end")
        if token is None:
            return events
    raise AssertionError("/messages never reached the start of the room")


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["content"]["body"]
        for e in events
        if e["type"] == "m.room.message" and "body" in e["content"]
    ]


async def room_with_history(
    a: FederatingServer,
    b: FederatingServer,
    messages: list[str],
    visibility: str = "shared",
    **create: Any,
) -> tuple[str, User, User]:
    """alice on ``a`` makes a public room and sends ``messages``; then bob on ``b``
    joins it over federation."""
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat", **create)
    await alice.request(
        "PUT",
        f"/rooms/{quote(room_id)}/state/m.room.history_visibility",
        {"history_visibility": visibility},
    )
    for body in messages:
        await alice.send(room_id, body)
    await join_via(bob, room_id, a)
    await settled(a, b)
    return room_id, alice, bob


async def backfill_requests(server: FederatingServer) -> list[tuple[str, list[str]]]:
    """Record the /backfill requests ``server`` makes from now on."""
    fetcher = fed_events(server).backfiller._fetcher
    seen: list[tuple[str, list[str]]] = []
    original = fetcher.backfill

    async def recording(destination: str, room_id: str, event_ids: Any, limit: int) -> Any:
        seen.append((destination, list(event_ids)))
        return await original(destination, room_id, event_ids, limit)

    fetcher.backfill = recording
    return seen


async def test_a_joiner_pages_back_into_history_before_its_join(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    requests = await backfill_requests(b)
    sent = [f"message {i}" for i in range(35)]
    room_id, alice, bob = await room_with_history(a, b, sent)
    everything = await page_back(bob, room_id)

    # Newest first, every message before the join, and the room's creation.
    assert bodies(everything) == list(reversed(sent))
    types = [e["type"] for e in everything]
    assert types[-1] == "m.room.create"
    assert types[0] == "m.room.member" and everything[0]["state_key"] == bob.user_id
    ids = [e["event_id"] for e in everything]
    assert len(ids) == len(set(ids))
    # The same events, in the same order, as the room's own server gives alice.
    assert ids == [e["event_id"] for e in await page_back(alice, room_id)]
    assert requests and all(dest == a.server_name for dest, _ in requests)

    # Paging again reads what is now held: no more requests.
    made = len(requests)
    assert [e["event_id"] for e in await page_back(bob, room_id, limit=50)] == ids
    assert len(requests) == made


async def test_backfilled_history_stays_out_of_sync_and_state(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Old name")
    await alice.request(
        "PUT",
        f"/rooms/{quote(room_id)}/state/m.room.history_visibility",
        {"history_visibility": "shared"},
    )
    await alice.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.name", {"name": "New"})
    for i in range(5):
        await alice.send(room_id, f"early {i}")
    await join_via(bob, room_id, a)
    await settled(a, b)
    _sync, since = await sync_until(bob, in_section("join", room_id))
    state_before = await b.server.stores.state.get_current_state(room_id)
    extremities = await b.server.stores.events.get_forward_extremities(room_id)

    assert bodies(await page_back(bob, room_id)) == [f"early {i}" for i in reversed(range(5))]
    # Nothing new for /sync, the same current state and forward extremities.
    after = await bob.sync(since=since, timeout=0)
    assert room_id not in after.get("rooms", {}).get("join", {})
    assert await b.server.stores.state.get_current_state(room_id) == state_before
    assert await b.server.stores.events.get_forward_extremities(room_id) == extremities
    assert (await bob.state(room_id, "m.room.name"))["name"] == "New"
    # Each backfilled state event carries its own state: the old name came first.
    names = [
        e["content"].get("name")
        for e in await page_back(bob, room_id)
        if e["type"] == "m.room.name"
    ]
    assert names == ["New", "Old name"]
    # a live message after the backfill still arrives through /sync
    await alice.send(room_id, "live")
    body, _ = await sync_until(
        bob,
        lambda s: any(
            e.get("content", {}).get("body") == "live"
            for e in s.get("rooms", {})
            .get("join", {})
            .get(room_id, {})
            .get("timeline", {})
            .get("events", [])
        ),
        since,
    )
    assert body


async def test_history_visibility_is_respected_for_backfilled_events(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await room_with_history(a, b, ["before bob"], "joined")
    await alice.send(room_id, "after bob")
    await settled(a, b)

    seen = await page_back(bob, room_id)
    # a serves b only what b's users may see ("joined": nothing before the join), and
    # b filters for bob as well: the message before his join is not shown.
    assert bodies(seen) == ["after bob"]
    assert "before bob" in bodies(await page_back(alice, room_id))


async def test_an_unreachable_history_server_is_not_asked_again_at_once(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, _alice, bob = await room_with_history(a, b, [f"old {i}" for i in range(3)])
    requests = await backfill_requests(b)
    fetcher = fed_events(b).backfiller._fetcher
    recording = fetcher.backfill

    async def failing(destination: str, room_id: str, event_ids: Any, limit: int) -> Any:
        await recording(destination, room_id, event_ids, limit)
        return []

    fetcher.backfill = failing
    # The page ends at the join; the failed attempt is remembered, not repeated.
    first = await page_back(bob, room_id)
    assert bodies(first) == []
    assert len(requests) == 1
    await page_back(bob, room_id)
    assert len(requests) == 1
    # After the retry interval, it is asked again, and now answers.
    fetcher.backfill = recording
    b.clock.advance(61)
    assert bodies(await page_back(bob, room_id)) == ["old 2", "old 1", "old 0"]
    assert len(requests) == 2


async def test_bad_events_in_a_backfill_answer_are_not_stored(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, _alice, bob = await room_with_history(a, b, [f"old {i}" for i in range(3)])
    fetcher = fed_events(b).backfiller._fetcher
    original = fetcher.backfill
    tampered: list[str] = []

    async def tampering(destination: str, room_id: str, event_ids: Any, limit: int) -> Any:
        pdus = await original(destination, room_id, event_ids, limit)
        out = []
        for pdu in pdus:
            if pdu.get("content", {}).get("body") == "old 1":
                pdu = dict(pdu, content={"msgtype": "m.text", "body": "forged"})
                pdu["signatures"] = {}
                tampered.append(pdu["event_id"] if "event_id" in pdu else "")
            out.append(pdu)
        return out

    fetcher.backfill = tampering
    seen = bodies(await page_back(bob, room_id))
    assert tampered
    assert "forged" not in seen
    assert "old 1" not in seen and seen == ["old 2", "old 0"]


class DownTransport:
    """A federation sender's transport to a destination that never answers."""

    def __init__(self, destination: str) -> None:
        self.destination = destination

    async def put_json(self, *_args: Any, **_kwargs: Any) -> Any:
        raise FederationError(self.destination, "connection refused")


async def test_a_gap_in_the_middle_of_history_is_filled_when_paged_over(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    await alice.send(room_id, "before the gap")
    await settle(a, b)

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise FederationError(b.server_name, "connection refused")

    # b misses 25 messages (more than /get_missing_events closes; a's queue to b is
    # down: b's requests to a while it pages back would otherwise end a's backoff and
    # deliver them) and the next event reaches b on its own, with a gap before it.
    real_put = a.fed.client.put_json
    monkeypatch.setattr(a.fed.client, "put_json", down)
    monkeypatch.setattr(fed_events(a).sender, "_transport", DownTransport(b.server_name))
    missed = [f"missed {i}" for i in range(25)]
    for body in missed:
        await alice.send(room_id, body)
    last_id = await alice.send(room_id, "after the gap")
    await settle(a)
    monkeypatch.setattr(a.fed.client, "put_json", real_put)
    last = await a.server.stores.events.get_event(last_id)
    assert last is not None
    assert await send_txn(a, b, [last.event.pdu]) == {"pdus": {last_id: {}}}
    held = await b.server.stores.events.backward_extremities(room_id, 0, 10**9, 10)
    assert held, "the gap is known as a backward extremity"

    seen = bodies(await page_back(bob, room_id))
    assert seen[0] == "after the gap"
    assert seen == ["after the gap", *reversed(missed), "before the gap"]
    assert await b.server.stores.events.backward_extremities(room_id, 0, 10**9, 10) == []
