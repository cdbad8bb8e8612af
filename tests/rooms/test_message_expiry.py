"""Self-destructing messages (MSC2228, ``enable_ephemeral_messages``): pruned for good
when their time comes, driven by the FakeClock."""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import User, make_user

KEY = "org.matrix.self_destruct_after"


async def _latest(user: User, room_id: str) -> dict[str, Any]:
    page = await user.request(
        "GET",
        f"/rooms/{room_id}/messages",
        params={"dir": "b", "limit": "1", "filter": '{"types": ["m.room.message"]}'},
    )
    return dict(page["chunk"][0])


async def _tick(hs: HomeserverHarness) -> None:
    assert hs.server.message_expiry is not None
    await hs.server.message_expiry.tick()


async def test_a_message_is_pruned_when_its_time_comes(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(enable_ephemeral_messages=True)
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    now = hs.clock.time_ms()
    event_id = await alice.send(room_id, "This is a message", **{KEY: now + 1000})
    kept = await alice.send(room_id, "kept", **{KEY: True})  # not a timestamp
    hs.clock.advance(0.5)
    await _tick(hs)
    event = await alice.request("GET", f"/rooms/{room_id}/event/{event_id}")
    assert event["content"]["body"] == "This is a message"
    hs.clock.advance(1)
    await _tick(hs)
    event = await alice.request("GET", f"/rooms/{room_id}/event/{event_id}")
    assert event["content"] == {} and event["type"] == "m.room.message"
    assert (await _latest(alice, room_id))["event_id"] == kept
    body = await alice.sync()
    timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
    expired = next(e for e in timeline if e["event_id"] == event_id)
    assert expired["content"] == {}
    kept_event = await alice.request("GET", f"/rooms/{room_id}/event/{kept}")
    assert kept_event["content"]["body"] == "kept"
    # a state event is not a message: it stays
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "stays", KEY: now})
    hs.clock.advance(60)
    await _tick(hs)
    assert (await alice.state(room_id, "m.room.topic"))["topic"] == "stays"


async def test_expiry_survives_a_restart(make_homeserver: HarnessFactory) -> None:
    first = await make_homeserver(enable_ephemeral_messages=True)
    alice = await make_user(first, "alice")
    room_id = await alice.create_room()
    soon = await alice.send(room_id, "soon", **{KEY: first.clock.time_ms() + 5_000})
    later = await alice.send(room_id, "later", **{KEY: first.clock.time_ms() + 60_000})
    second = await make_homeserver(enable_ephemeral_messages=True)
    alice.hs = second
    second.clock.advance(10)
    await _tick(second)
    assert (await alice.request("GET", f"/rooms/{room_id}/event/{soon}"))["content"] == {}
    got = await alice.request("GET", f"/rooms/{room_id}/event/{later}")
    assert got["content"]["body"] == "later"
    second.clock.advance(60)
    await _tick(second)
    assert (await alice.request("GET", f"/rooms/{room_id}/event/{later}"))["content"] == {}


async def test_off_by_default(hs: HomeserverHarness) -> None:
    assert hs.server.message_expiry is None
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    event_id = await alice.send(room_id, "stays", **{KEY: hs.clock.time_ms()})
    hs.clock.advance(10)
    assert hs.server.ephemeral is not None
    await hs.server.ephemeral.tick()
    got = await alice.request("GET", f"/rooms/{room_id}/event/{event_id}")
    assert got["content"]["body"] == "stays"
