"""State resolution v1, v2 and v2.1 on forked rooms."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.events import KNOWN_ROOM_VERSIONS, Event, RoomVersion
from homeserver.state_res import (
    EventCache,
    StateMap,
    default_auth_chain_difference,
    events_fetcher,
    resolve_state,
)
from homeserver.state_res.common import conflicted_subgraph, separate

from .scenarios import ALICE, BOB, CAROL, DAVE, SCENARIOS

V = KNOWN_ROOM_VERSIONS
ALL = list(V.values())
ids = [v.identifier for v in ALL]
V2_PLUS = [v for v in ALL if v.identifier != "1"]


async def resolve(rv: RoomVersion, events: Mapping[str, Event], sets: Sequence[StateMap]) -> dict:
    return await resolve_state(rv, sets, events_fetcher(events))


def membership(events: Mapping[str, Event], state: Mapping, user: str) -> str | None:
    eid = state.get(("m.room.member", user))
    return None if eid is None else events[eid].membership


def topic(events: Mapping[str, Event], state: Mapping) -> str:
    return str(events[state[("m.room.topic", "")]].content["topic"])


async def test_no_conflict_is_identity() -> None:
    room, a, _ = SCENARIOS["topics"](V["10"])
    assert await resolve(V["10"], room.events, [a.state, a.state]) == a.state
    assert await resolve(V["10"], room.events, [a.state]) == a.state


@pytest.mark.parametrize("rv", ALL, ids=ids)
async def test_ban_beats_message(rv: RoomVersion) -> None:
    room, a, b = SCENARIOS["ban_vs_message"](rv)
    out = await resolve(rv, room.events, [a.state, b.state])
    assert membership(room.events, out, CAROL) == "ban"
    if rv.identifier != "1":
        # the banned user's topic is rejected in the iterative auth checks
        assert topic(room.events, out) == "original"


@pytest.mark.parametrize("rv", ALL, ids=ids)
async def test_ban_beats_join(rv: RoomVersion) -> None:
    room, a, b = SCENARIOS["ban_vs_join"](rv)
    out = await resolve(rv, room.events, [a.state, b.state])
    assert membership(room.events, out, DAVE) == "ban"


@pytest.mark.parametrize("rv", V2_PLUS, ids=ids[1:])
async def test_demotion_beats_kick(rv: RoomVersion) -> None:
    room, a, b = SCENARIOS["demotion_vs_kick"](rv)
    out = await resolve(rv, room.events, [a.state, b.state])
    assert out[("m.room.power_levels", "")] == a.state[("m.room.power_levels", "")]
    assert membership(room.events, out, CAROL) == "join"


@pytest.mark.parametrize("rv", ALL, ids=ids)
async def test_conflicting_topics(rv: RoomVersion) -> None:
    room, a, b = SCENARIOS["topics"](rv)
    out = await resolve(rv, room.events, [a.state, b.state])
    if rv.identifier == "1":
        # same depth, both pass auth: the one with the lowest sha1(event_id)
        candidates = [a.state[("m.room.topic", "")], b.state[("m.room.topic", "")]]
        assert room.events[candidates[0]].depth == room.events[candidates[1]].depth
        lowest = min(candidates, key=lambda e: hashlib.sha1(e.encode("utf-8")).digest())
        assert out[("m.room.topic", "")] == lowest
    else:
        # same mainline position: ordered by (origin_server_ts, event_id), last applied wins
        def order_key(fork: object) -> tuple[int, str]:
            ev = room.events[fork.state[("m.room.topic", "")]]  # type: ignore[attr-defined]
            return ev.origin_server_ts, ev.event_id

        later = max((a, b), key=order_key)
        assert out[("m.room.topic", "")] == later.state[("m.room.topic", "")]


@pytest.mark.parametrize("rv", ALL, ids=ids)
async def test_join_rules_change_beats_join(rv: RoomVersion) -> None:
    room, a, b = SCENARIOS["join_rules_vs_join"](rv)
    out = await resolve(rv, room.events, [a.state, b.state])
    assert room.events[out[("m.room.join_rules", "")]].content["join_rule"] == "invite"
    if rv.identifier != "1":
        assert membership(room.events, out, DAVE) is None


@pytest.mark.parametrize("rv", V2_PLUS, ids=ids[1:])
async def test_ban_unban_chain(rv: RoomVersion) -> None:
    room, a, b = SCENARIOS["ban_unban"](rv)
    out = await resolve(rv, room.events, [a.state, b.state])
    # the ban and unban (power events) are applied in auth order, leaving carol out
    assert membership(room.events, out, CAROL) == "leave"
    assert topic(room.events, out) == "original"


async def test_v12_creator_outranks_everyone() -> None:
    rv = V["12"]
    from tests.events.room_builder import RoomBuilder

    room = RoomBuilder(rv).create_room(additional_creators=[BOB])
    room.join(BOB)
    room.join(CAROL)
    room.power_levels(ALICE, users={CAROL: 100})
    a, b = room.fork(), room.fork()
    a.power_levels(BOB, users={CAROL: 0})  # an additional creator demotes carol
    b.ban(CAROL, DAVE)
    b.power_levels(CAROL, users={CAROL: 100, DAVE: 50})
    out = await resolve(rv, room.events, [a.state, b.state])
    assert out[("m.room.power_levels", "")] == a.state[("m.room.power_levels", "")]
    assert membership(room.events, out, DAVE) is None  # carol's ban came after her demotion


async def test_custom_auth_chain_difference_is_used() -> None:
    rv = V["11"]
    room, a, b = SCENARIOS["ban_unban"](rv)
    calls: list[int] = []
    cache = EventCache(events_fetcher(room.events))

    async def diff(sets: Sequence[Collection[str]]) -> Collection[str]:
        calls.append(len(sets))
        return await default_auth_chain_difference(cache, sets)

    out = await resolve_state(
        rv, [a.state, b.state], events_fetcher(room.events), auth_chain_difference=diff
    )
    assert calls == [2]
    assert out == await resolve(rv, room.events, [a.state, b.state])


async def test_auth_difference_and_subgraph() -> None:
    rv = V["12"]
    room, a, b = SCENARIOS["ban_unban"](rv)
    unconflicted, conflicted = separate([a.state, b.state])
    assert ("m.room.member", CAROL) in conflicted and ("m.room.create", "") in unconflicted
    cache = EventCache(events_fetcher(room.events))
    diff = await default_auth_chain_difference(
        cache, [set(a.state.values()), set(b.state.values())]
    )
    ban_id = room.events[a.state[("m.room.member", CAROL)]].auth_event_ids
    assert set(ban_id) & diff  # the ban is only in fork a's auth chain
    conflicted_ids = set().union(*conflicted.values())
    sub = await conflicted_subgraph(cache, conflicted_ids)
    assert conflicted_ids <= sub
    # the ban lies between the unban and carol's original join
    ban = next(e for e in diff if room.events[e].membership == "ban")
    carol_join = b.state[("m.room.member", CAROL)]
    if carol_join in room.events[ban].auth_event_ids:
        assert ban in sub


async def test_missing_events_are_skipped() -> None:
    rv = V["10"]
    room, a, b = SCENARIOS["topics"](rv)
    events = dict(room.events)
    del events[b.state[("m.room.topic", "")]]
    out = await resolve(rv, events, [a.state, b.state])
    assert out[("m.room.topic", "")] == a.state[("m.room.topic", "")]


@settings(max_examples=40, deadline=None)
@given(
    scenario=st.sampled_from(sorted(SCENARIOS)),
    version=st.sampled_from(sorted(V, key=int)),
    order=st.permutations([0, 1, 2]),
    shuffle=st.randoms(use_true_random=False),
)
def test_result_independent_of_order(
    scenario: str, version: str, order: list[int], shuffle: object
) -> None:
    rv = V[version]
    room, a, b = SCENARIOS[scenario](rv)
    sets = [a.state, b.state, room.state]
    items = list(room.events.items())
    shuffle.shuffle(items)  # type: ignore[attr-defined]
    shuffled_events = dict(items)

    async def run() -> tuple[dict, dict]:
        first = await resolve(rv, room.events, sets)
        second = await resolve(
            rv, shuffled_events, [dict(reversed(list(sets[i].items()))) for i in order]
        )
        return first, second

    first, second = asyncio.run(run())
    assert first == second
