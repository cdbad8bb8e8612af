"""PUT /rooms/{roomId}/state with the content its sender already set sends nothing new:
the current event's ID is the answer (as Synapse deduplicates state)."""

from __future__ import annotations

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import make_user


async def _event_count(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events"))


async def test_same_content_same_sender_is_not_sent_again(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT", f"/rooms/{room}/state/m.room.power_levels/", {"users": {bob.user_id: 100}}
    )
    await bob.join(room)
    path = f"/rooms/{room}/state/m.room.topic/"
    first = (await alice.request("PUT", path, {"topic": "cats"}))["event_id"]
    before = await _event_count(hs)
    assert (await alice.request("PUT", path, {"topic": "cats"}))["event_id"] == first
    assert await _event_count(hs) == before
    # other content, or another sender, is a new event
    changed = (await alice.request("PUT", path, {"topic": "dogs"}))["event_id"]
    assert changed != first
    by_bob = (await bob.request("PUT", path, {"topic": "dogs"}))["event_id"]
    assert by_bob != changed
    assert await _event_count(hs) == before + 2
    # a state key is part of the identity
    other_key = (await alice.request("PUT", f"{path}x", {"topic": "dogs"}))["event_id"]
    assert other_key not in (changed, by_bob)


async def test_messages_are_never_deduplicated(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    assert await alice.send(room, "same") != await alice.send(room, "same")


async def test_joining_again_unchanged_sends_nothing(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    path = f"/rooms/{room}/state/m.room.member/{bob.user_id}?format=event"
    first = (await bob.request("GET", path))["event_id"]
    before = await _event_count(hs)
    await bob.join(room)
    assert (await bob.request("GET", path))["event_id"] == first
    assert await _event_count(hs) == before
    # a join with a reason is a change
    await bob.request("POST", f"/rooms/{room}/join", {"reason": "back"})
    assert (await bob.request("GET", path))["event_id"] != first
