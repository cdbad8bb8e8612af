"""The building blocks of state resolution v2, checked against the spec's definitions.

Spec: rooms ``v2-state-res`` "Definitions" (auth chain, auth difference, iterative
auth checks) and "Algorithm" step 5; rooms v12 "Conflicted state subgraph".
"""

from __future__ import annotations

from homeserver.events import KNOWN_ROOM_VERSIONS
from homeserver.state_res import EventCache, default_auth_chain_difference, events_fetcher
from tests.events.room_builder import RoomBuilder

from .scenarios import ALICE, BOB

V = KNOWN_ROOM_VERSIONS


async def test_auth_difference_excludes_the_state_events_themselves() -> None:
    """An event's auth chain is its auth events, recursively, without the event.

    Bob's join is in both states. Fork A holds Bob's topic, which cites the join; fork
    B holds Alice's topic, which does not. So the join is in A's full auth chain only,
    and is the whole auth difference; the two topics are in no auth chain at all.
    """
    rv = V["11"]
    room = RoomBuilder(rv).create_room()
    room.power_levels(ALICE, users={ALICE: 100}, events={"m.room.topic": 0})
    bob_join = room.join(BOB)
    a, b = room.fork(), room.fork()
    bobs_topic = a.topic(BOB, "bob's topic")
    alices_topic = b.topic(ALICE, "alice's topic")
    assert bob_join.event_id in bobs_topic.auth_event_ids
    assert bob_join.event_id not in alices_topic.auth_event_ids
    assert a.state[("m.room.member", BOB)] == b.state[("m.room.member", BOB)]

    cache = EventCache(events_fetcher(room.events))
    diff = await default_auth_chain_difference(
        cache, [set(a.state.values()), set(b.state.values())]
    )
    assert diff == {bob_join.event_id}
