"""The building blocks of state resolution v2, checked against the spec's definitions.

Spec: rooms ``v2-state-res`` "Definitions" (auth chain, auth difference, iterative
auth checks) and "Algorithm" step 5; rooms v12 "Conflicted state subgraph".
"""

from __future__ import annotations

import pytest

from homeserver.events import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.state_res import EventCache, default_auth_chain_difference, events_fetcher
from homeserver.state_res.common import iterative_auth_checks
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


@pytest.mark.parametrize("version", ["11", "12"])
@pytest.mark.parametrize("join_rejected", [False, True])
async def test_iterative_auth_checks_skip_rejected_auth_events(
    version: str, join_rejected: bool
) -> None:
    """Bob's topic is checked on a state without Bob's membership, so his membership is
    taken from the topic's auth events; if that join was rejected it is not used
    ("the appropriate state event from the event's auth_events is used if the auth
    event is not rejected"): Bob is not joined and the topic is not applied."""
    rv = V[version]
    room = RoomBuilder(rv).create_room()
    room.power_levels(ALICE, users=_users(rv), events={"m.room.topic": 0})
    bob_join = room.join(BOB)
    topic = room.topic(BOB, "bob's topic")
    events = dict(room.events)
    if join_rejected:
        events[bob_join.event_id] = bob_join.with_rejection("rejected at receipt")
    base = {k: v for k, v in room.state.items() if k[0] != "m.room.topic" and k[1] != BOB}
    cache = EventCache(events_fetcher(events))
    await cache.load([topic.event_id])
    out = await iterative_auth_checks(cache, rv, [topic.event_id], base)
    assert (out.get(("m.room.topic", "")) == topic.event_id) is not join_rejected


def _users(rv: RoomVersion) -> dict[str, int]:
    return {} if rv.privileged_creators else {ALICE: 100}
