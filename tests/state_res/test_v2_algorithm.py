"""Handmade DAGs where the steps of state resolution v2 / v2.1 decide the result.

Spec: rooms ``v2-state-res`` "Algorithm" (room versions 2-11) and rooms v12 "State
resolution" (v2.1: iterative auth checks of step 2 start from an empty state map, and
the full conflicted set includes the conflicted state subgraph). Each scenario states
the result the spec gives for each version, worked out by hand in the docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from homeserver.events import KNOWN_ROOM_VERSIONS, Event, RoomVersion
from homeserver.state_res import StateMap, events_fetcher, resolve_state
from tests.events.room_builder import RoomBuilder

from .scenarios import ALICE, BOB, CAROL

V = KNOWN_ROOM_VERSIONS
PL = ("m.room.power_levels", "")
TOPIC = ("m.room.topic", "")


def member_key(user: str) -> tuple[str, str]:
    return ("m.room.member", user)


def levels(rv: RoomVersion, **users: int) -> dict[str, int]:
    """``users`` of a power levels event: Alice (the creator) has 100 before v12."""
    named = {ALICE: ALICE, "bob": BOB, "carol": CAROL}
    out = {named[k]: v for k, v in users.items()}
    if not rv.privileged_creators:
        out[ALICE] = 100
    return out


async def resolve(
    rv: RoomVersion, events: Mapping[str, Event], sets: Sequence[StateMap]
) -> dict[tuple[str, str], str]:
    out = await resolve_state(rv, sets, events_fetcher(events))
    # the result must not depend on the order of the state sets
    assert out == await resolve_state(rv, list(reversed(sets)), events_fetcher(events))
    return out


# -- step 2 starts from the unconflicted state (v2) or from nothing (v2.1) -----------


def kick_before_demotion(rv: RoomVersion) -> tuple[RoomBuilder, dict, dict, Event, Event]:
    """Bob (50) kicks Carol under PL1; Alice's PL2 then demotes Bob to 0.

    State A holds the kick and PL2; state B holds PL2 but Carol's join (it has the
    demotion but never accepted the kick). PL2 is unconflicted; Carol's membership is
    conflicted between her join and the kick.
    """
    room = RoomBuilder(rv).create_room()
    room.join(BOB)
    room.join(CAROL)
    room.power_levels(ALICE, users=levels(rv, bob=50))
    a, b = room.fork(), room.fork()
    kick = a.kick(BOB, CAROL)
    pl2 = a.power_levels(ALICE, users=levels(rv, bob=0))
    b.state[PL] = pl2.event_id
    return room, a.state, b.state, kick, pl2


@pytest.mark.parametrize("version", ["2", "11", "12"])
async def test_kick_checked_against_unconflicted_demotion_only_in_v2(version: str) -> None:
    """v2 step 2 checks the kick against the unconflicted PL2 (Bob at 0): rejected, so
    Carol stays joined. v2.1 starts from an empty map, so the kick is checked against
    its own auth events (PL1, Bob at 50): allowed, and Carol is out. Step 5 puts the
    unconflicted PL2 back in both."""
    rv = V[version]
    room, a_state, b_state, kick, pl2 = kick_before_demotion(rv)
    out = await resolve(rv, room.events, [a_state, b_state])
    assert out[PL] == pl2.event_id
    if rv.identifier == "12":
        assert out[member_key(CAROL)] == kick.event_id
    else:
        assert out[member_key(CAROL)] == b_state[member_key(CAROL)]


# -- v2.1: the conflicted state subgraph joins the full conflicted set ---------------


def displayname_under_newer_levels(rv: RoomVersion) -> tuple[RoomBuilder, dict, dict, Event, Event]:
    """Bob's join J, then Bob (given 100 by Alice) sends PL_mid, which cites J; a topic
    by Alice cites PL_mid, so PL_mid is in every state's auth chain. Fork B: Bob
    changes his display name (Y, citing PL_mid and J), from a server whose clock is
    behind: Y's origin_server_ts is before J's.

    Conflicted: Bob's membership, J (state A) against Y (state B). The auth difference
    is empty. Y -> PL_mid -> J is a path between conflicted events, so from v12 PL_mid
    is in the conflicted state subgraph.
    """
    room = RoomBuilder(rv).create_room()
    join = room.join(BOB)
    room.power_levels(ALICE, users=levels(rv, bob=100))
    pl_mid = room.power_levels(BOB, users=levels(rv, bob=100, carol=10))
    assert join.event_id in pl_mid.auth_event_ids
    room.topic(ALICE, "after PL_mid")
    a, b = room.fork(), room.fork()
    y = b.add("m.room.member", BOB, {"membership": "join", "displayname": "B"}, BOB, ts=1)
    assert pl_mid.event_id in y.auth_event_ids and y.origin_server_ts < join.origin_server_ts
    return room, a.state, b.state, join, y


@pytest.mark.parametrize("version", ["11", "12"])
async def test_conflicted_subgraph_replays_levels_between_conflicted_events(
    version: str,
) -> None:
    """v2: nothing is a power event; the mainline of the unconflicted PL_mid puts J
    (based on the room's first levels, position 2) before Y (based on PL_mid, position 0)
    whatever their timestamps, so Y is applied last and wins.

    v2.1: PL_mid is in the full conflicted set, a power event whose auth chain holds J:
    step 2 applies J then PL_mid on the empty map, step 4 applies Y on top. Y wins.
    Without the subgraph, step 2 would have no power events and no power levels,
    every mainline position would be infinite, and the timestamps would put Y first
    and J last: J would win.
    """
    rv = V[version]
    room, a_state, b_state, join, y = displayname_under_newer_levels(rv)
    assert a_state[member_key(BOB)] == join.event_id
    out = await resolve(rv, room.events, [a_state, b_state])
    assert out[member_key(BOB)] == y.event_id
    assert out[PL] == a_state[PL] == b_state[PL]


# -- step 3: mainline ordering --------------------------------------------------------


def topic_under_old_levels_vs_newer(rv: RoomVersion) -> tuple[RoomBuilder, dict, dict]:
    """Fork A: Bob sets a topic under PL1, with a late origin_server_ts. Fork B: Alice
    sends PL2, then Carol sets a topic under it, earlier by the clock."""
    room = RoomBuilder(rv).create_room()
    room.join(BOB)
    room.join(CAROL)
    room.power_levels(ALICE, users=levels(rv, bob=50), events={"m.room.topic": 0})
    a, b = room.fork(), room.fork()
    a.add("m.room.topic", BOB, {"topic": "bob's, under PL1"}, "", ts=10**13)
    b.power_levels(ALICE, users=levels(rv, bob=50, carol=10), events={"m.room.topic": 0})
    b.topic(CAROL, "carol's, under PL2")
    return room, a.state, b.state


@pytest.mark.parametrize("version", ["2", "6", "11", "12"])
async def test_mainline_order_puts_the_topic_on_newer_levels_last(version: str) -> None:
    """Step 2 resolves the levels to PL2 (PL1 then PL2, which cites it). The mainline of
    PL2 is [PL2, PL1, ...]: Bob's topic (its levels PL1 are P_1) has position 1, Carol's
    (PL2 = P_0) position 0. A greater position sorts first, so Bob's topic is applied
    first and Carol's last: Carol's wins, although Bob's has the later timestamp."""
    rv = V[version]
    room, a_state, b_state = topic_under_old_levels_vs_newer(rv)
    out = await resolve(rv, room.events, [a_state, b_state])
    assert out[PL] == b_state[PL]
    assert out[TOPIC] == b_state[TOPIC]
    bobs, carols = room.events[a_state[TOPIC]], room.events[b_state[TOPIC]]
    assert bobs.origin_server_ts > carols.origin_server_ts


# -- step 5: the unconflicted state map has the last word ----------------------------


@pytest.mark.parametrize("version", ["2", "11", "12"])
async def test_unconflicted_state_replaces_what_the_checks_applied(version: str) -> None:
    """Fork A: Bob renames himself "x" (J_X), then sets a topic citing J_X. Fork B: Bob
    renames himself "y" (J_Y). Both states hold J_Y for Bob (A took it in later), so
    Bob's membership is unconflicted; the topic is conflicted, and J_X, cited only in
    A's auth chain, is the auth difference.

    Steps 3-4 apply J_X (allowed: Bob is joined), which overwrites Bob's entry; step 5
    puts the unconflicted J_Y back. Every other unconflicted entry is kept too, also in
    v2.1 whose checks start from an empty map."""
    rv = V[version]
    room = RoomBuilder(rv).create_room()
    room.power_levels(ALICE, users=levels(rv), events={"m.room.topic": 0})
    room.join(BOB)
    room.topic(ALICE, "original")
    a, b = room.fork(), room.fork()
    j_x = a.add("m.room.member", BOB, {"membership": "join", "displayname": "x"}, BOB)
    bobs_topic = a.topic(BOB, "bob's")
    j_y = b.add("m.room.member", BOB, {"membership": "join", "displayname": "y"}, BOB)
    assert j_x.event_id in bobs_topic.auth_event_ids
    a.state[member_key(BOB)] = j_y.event_id

    out = await resolve(rv, room.events, [a.state, b.state])
    assert out[member_key(BOB)] == j_y.event_id
    assert out[TOPIC] == bobs_topic.event_id
    unconflicted = {k: v for k, v in a.state.items() if b.state.get(k) == v}
    assert unconflicted.items() <= out.items()
    assert out.keys() == a.state.keys() | b.state.keys()


# -- step 1: the auth chains of power events, within the full conflicted set ---------


def join_reached_only_through_unconflicted_events(
    rv: RoomVersion,
) -> tuple[RoomBuilder, dict, dict]:
    """An invite-only room where Carol has 100. Alice invites Bob, Bob joins (J1), Bob
    invites Carol, Carol joins (CJ, citing Bob's invite CI, which cites J1). Fork A:
    Carol makes the room public (P, citing CJ). Fork B: Bob leaves (J2), from a server
    whose clock is behind (J2's timestamp is before J1's).

    Conflicted: the join rules (P, the first rules) and Bob's membership (J1, J2). The
    auth difference is empty. J1 is in P's auth chain (P -> CJ -> CI -> J1) but CJ and
    CI are unconflicted, in every state's auth chain.
    """
    room = RoomBuilder(rv).create_room(public=False, users={CAROL: 100})
    room.invite(ALICE, BOB)
    room.join(BOB)
    room.invite(BOB, CAROL)
    room.join(CAROL)
    a, b = room.fork(), room.fork()
    a.join_rules(CAROL, "public")
    b.add("m.room.member", BOB, {"membership": "leave"}, BOB, ts=1)
    return room, a.state, b.state


SPEC_STEP_1 = """Step 1 adds to X "the events in the auth chain of P which also belong to
the full conflicted set", which includes J1 reached through CJ and CI. This resolver,
like Synapse and Ruma (add_event_and_auth_chain_to_graph), follows auth events only
while they are in the full conflicted set, so J1 is sorted by mainline with J2 in step
3 instead. Kept for agreement with deployed servers on room versions 2-11; from v12
the conflicted state subgraph holds every event on such a path, so the walk is
complete there."""


@pytest.mark.parametrize(
    "version",
    [
        pytest.param("11", marks=pytest.mark.xfail(strict=True, reason=SPEC_STEP_1)),
        "12",
    ],
)
async def test_power_event_auth_chain_reached_through_events_outside_the_set(
    version: str,
) -> None:
    """By the spec text: X = {the first rules, J1, P}, ordered by auth (rules, J1, P).
    J1 is applied in step 2 (Bob was invited), then P; step 4 applies J2: Bob has left.

    From v12, CJ and CI lie on the path P -> CJ -> CI -> J1 between conflicted events:
    they are in the conflicted state subgraph, hence in the full conflicted set.

    Following auth events only inside the full conflicted set (see SPEC_STEP_1) gives
    J1 to step 3 with J2, where the timestamps put J2 first and J1 (a join, allowed
    in the now public room) last: Bob would be joined."""
    rv = V[version]
    room, a_state, b_state = join_reached_only_through_unconflicted_events(rv)
    out = await resolve(rv, room.events, [a_state, b_state])
    assert out[("m.room.join_rules", "")] == a_state[("m.room.join_rules", "")]
    assert room.events[out[member_key(BOB)]].membership == "leave"
