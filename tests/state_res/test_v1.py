"""State resolution of room version 1, pass by pass.

Spec: rooms v1 "State resolution": R starts as the union of the states without the
conflicting events; conflicts between power levels, then join rules, then member
events are resolved by sorting by ascending depth then descending sha1(event_id),
adding the first event to R and each following one while the authorisation rules
allow it in R, stopping at the first that is not allowed; every other conflict takes
the event with the highest depth and lowest sha1(event_id) that passes auth in R.
"""

from __future__ import annotations

import hashlib

from homeserver.events import KNOWN_ROOM_VERSIONS
from homeserver.state_res import events_fetcher, resolve_state
from tests.events.room_builder import RoomBuilder

from .scenarios import ALICE, BOB, CAROL, DAVE

RV = KNOWN_ROOM_VERSIONS["1"]
PL = ("m.room.power_levels", "")
TOPIC = ("m.room.topic", "")
CAROL_KEY = ("m.room.member", CAROL)


def room_with_bob_and_carol(**levels: object) -> RoomBuilder:
    room = RoomBuilder(RV).create_room()
    room.join(BOB)
    room.join(CAROL)
    room.power_levels(ALICE, users={ALICE: 100, BOB: 50}, events={"m.room.topic": 0}, **levels)
    return room


async def test_other_keys_take_the_highest_depth() -> None:
    """Alice's topic comes after three messages in her fork: it is deeper than Bob's,
    and both pass auth, so hers is picked whatever the sha1 of the IDs."""
    room = room_with_bob_and_carol()
    a, b = room.fork(), room.fork()
    for i in range(3):
        a.message(ALICE, f"message {i}")
    deep = a.topic(ALICE, "deep")
    shallow = b.topic(BOB, "shallow")
    assert deep.depth > shallow.depth
    for sets in ([a.state, b.state], [b.state, a.state]):
        out = await resolve_state(RV, sets, events_fetcher(room.events))
        assert out[TOPIC] == deep.event_id


async def test_other_keys_skip_events_failing_auth_in_r() -> None:
    """Carol's topic is the deepest, but the member pass puts her ban (by Alice, which
    passes in R) after her join: in R she is banned, so her topic fails auth and the
    next one, Alice's, is picked."""
    room = room_with_bob_and_carol()
    a, b = room.fork(), room.fork()
    for i in range(3):
        a.message(CAROL, f"message {i}")
    carols = a.topic(CAROL, "carol's")
    b.ban(ALICE, CAROL)
    alices = b.topic(ALICE, "alice's")
    assert carols.depth > alices.depth
    out = await resolve_state(RV, [a.state, b.state], events_fetcher(room.events))
    assert room.events[out[CAROL_KEY]].membership == "ban"
    assert out[TOPIC] == alices.event_id


async def test_auth_passes_stop_at_the_first_event_not_allowed() -> None:
    """Three states. PL1 (Bob 50, ban 60) is the shallowest levels event. Fork 2: Alice
    raises Bob to 100 (PL_x), Bob bans Carol and sends PL_b keeping himself at 100.
    Fork 3: two topics, Carol leaves, then Alice sends PL_c.

    Power levels, by depth: PL1, PL_b, PL_c. PL1 goes into R; PL_b changes Bob's level
    from 50 to 100, which Bob (50 in R) may not do: the pass stops there, and PL_c,
    which Alice could send, is never considered. R keeps PL1.

    Carol's membership, by depth: her join, Bob's ban, her leave. The join goes into
    R; Bob's ban needs 60 and he has 50 in R: the pass stops, and her leave (allowed
    in R) is never considered. Carol stays joined.
    """
    room = room_with_bob_and_carol(ban=60)
    pl1 = room.state[PL]
    carol_join = room.state[CAROL_KEY]
    f2, f3 = room.fork(), room.fork()
    f2.power_levels(ALICE, users={ALICE: 100, BOB: 100}, events={"m.room.topic": 0}, ban=60)
    ban = f2.ban(BOB, CAROL)
    pl_b = f2.power_levels(
        BOB, users={ALICE: 100, BOB: 100, DAVE: 10}, events={"m.room.topic": 0}, ban=60
    )
    f3.topic(ALICE, "one")
    f3.topic(ALICE, "two")
    leave = f3.leave(CAROL)
    pl_c = f3.power_levels(
        ALICE, users={ALICE: 100, BOB: 50, DAVE: 10}, events={"m.room.topic": 0}, ban=60
    )
    depth = {e.event_id: e.depth for e in room.events.values()}
    assert depth[pl1] < pl_b.depth < pl_c.depth
    assert depth[carol_join] < ban.depth < leave.depth

    sets = [room.state, f2.state, f3.state]
    for order in (sets, sets[::-1], [sets[1], sets[2], sets[0]]):
        out = await resolve_state(RV, order, events_fetcher(room.events))
        assert out[PL] == pl1
        assert out[CAROL_KEY] == carol_join


async def test_auth_passes_order_equal_depths_by_descending_sha1() -> None:
    """Two levels events by Alice at the same depth, each allowed after the other: the
    list is sorted by descending sha1(event_id), so the one with the lower sha1 comes
    second, is applied over the first, and is kept."""
    room = room_with_bob_and_carol()
    a, b = room.fork(), room.fork()
    p = a.power_levels(ALICE, users={ALICE: 100, BOB: 50, DAVE: 10}, events={"m.room.topic": 0})
    q = b.power_levels(ALICE, users={ALICE: 100, BOB: 50, DAVE: 20}, events={"m.room.topic": 0})
    assert p.depth == q.depth
    lower = min((p, q), key=lambda e: hashlib.sha1(e.event_id.encode("utf-8")).digest())
    for sets in ([a.state, b.state], [b.state, a.state]):
        out = await resolve_state(RV, sets, events_fetcher(room.events))
        assert out[PL] == lower.event_id


async def test_a_key_in_one_state_only_is_not_a_conflict() -> None:
    """ "A conflict occurs between states where those states have different event_ids
    for the same (event_type, state_key)": a key that only one state has is not
    conflicting, so its event is in R from the start, without an auth check in R.

    Fork A: Carol sets the room's first topic. Fork B: Alice bans Carol. Carol's
    membership is conflicted and resolves to the ban; the topic only fork A has is
    kept, although Carol could not set it in R."""
    room = room_with_bob_and_carol()
    assert TOPIC not in room.state
    a, b = room.fork(), room.fork()
    carols = a.topic(CAROL, "carol's")
    b.ban(ALICE, CAROL)
    for sets in ([a.state, b.state], [b.state, a.state]):
        out = await resolve_state(RV, sets, events_fetcher(room.events))
        assert room.events[out[CAROL_KEY]].membership == "ban"
        assert out[TOPIC] == carols.event_id
