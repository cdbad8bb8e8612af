"""/messages asks for the history missing behind a gap that the event just after
its start cites: a sync's prev_batch stands just before that event, at the depth of
the event before it, while the gap is recorded at the citing event's depth
(SyTest: "Backfilled events whose prev_events are in a different room do not allow
cross-room back-pagination")."""

from __future__ import annotations

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import make_user


class RecordingBackfiller:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int, int]] = []

    async def backfill(self, room_id: str, min_depth: int, max_depth: int) -> bool:
        self.asked.append((room_id, min_depth, max_depth))
        return False


async def test_paging_back_from_a_sync_asks_for_the_gap_the_next_event_cites(
    hs: HomeserverHarness,
) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    for n in range(3):
        await alice.send(room, f"message {n}")
    last = await alice.send(room, "the one after the gap")
    stored = await hs.server.stores.events.get_event(last)
    assert stored is not None
    # the last event cites an event this server never received: a gap behind it
    await hs.server.db.execute(
        "test_gap",
        "INSERT INTO backward_extremities (room_id, event_id, depth) VALUES ($1, $2, $3)",
        room,
        "$missing",
        stored.depth,
    )
    recorder = RecordingBackfiller()
    hs.server.client.history.backfiller = recorder
    sync = await alice.sync(filter='{"room": {"timeline": {"limit": 1}}}')
    timeline = sync["rooms"]["join"][room]["timeline"]
    assert [e["event_id"] for e in timeline["events"]] == [last]
    page = await alice.request(
        "GET", f"/rooms/{room}/messages?dir=b&limit=2&from={timeline['prev_batch']}"
    )
    assert [e["content"]["body"] for e in page["chunk"]] == ["message 2", "message 1"]
    [(asked_room, _low, high)] = recorder.asked
    assert asked_room == room and high >= stored.depth
