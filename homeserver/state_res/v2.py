"""State resolution v2 (room versions 2-11) and v2.1 (room version 12).

Spec: rooms ``v2-state-res`` "Algorithm", and rooms v12 "State resolution" for the
v2.1 changes: iterative auth checks of the power events start from an empty state
map, and the full conflicted set also includes the conflicted state subgraph.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence

from homeserver.events import Event, PowerLevels, RoomVersion, StateResAlgorithm

from .common import (
    AuthChainDifference,
    EventCache,
    StateKey,
    StateMap,
    conflicted_subgraph,
    create_event_id_for,
    default_auth_chain_difference,
    is_power_event,
    iterative_auth_checks,
    separate,
)

_PL_KEY = ("m.room.power_levels", "")
_CREATE_KEY = ("m.room.create", "")


async def resolve_v2(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    cache: EventCache,
    auth_chain_difference: AuthChainDifference | None = None,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` with state resolution v2 / v2.1 (by ``room_version``)."""
    v2_1 = room_version.state_res is StateResAlgorithm.V2_1
    unconflicted, conflicted = separate(state_sets)
    if not conflicted:
        return unconflicted
    conflicted_ids: set[str] = set().union(*conflicted.values())
    id_sets = [set(s.values()) for s in state_sets]
    if auth_chain_difference is not None:
        auth_diff = set(await auth_chain_difference(id_sets))
    else:
        auth_diff = await default_auth_chain_difference(cache, id_sets)
    full = conflicted_ids | auth_diff
    if v2_1:
        full |= await conflicted_subgraph(cache, conflicted_ids)
    await cache.load(full)
    full = {e for e in full if cache.get(e) is not None}

    # Step 1: power events and their auth chains within the full conflicted set.
    power_ids = {e for e in full if is_power_event(_ev(cache, e))}
    graph = _auth_graph_within(cache, power_ids, full)
    sorted_power = await _reverse_topological_power_order(cache, room_version, graph)

    # Step 2: iterative auth checks from the unconflicted state (v2) or empty (v2.1).
    base: Mapping[StateKey, str] = {} if v2_1 else unconflicted
    partial = await iterative_auth_checks(cache, room_version, sorted_power, base)

    # Step 3: the remaining events by mainline order of the resolved power levels.
    power_set = set(sorted_power)
    leftover = [e for e in full if e not in power_set]
    pl_id = partial.get(_PL_KEY)
    sorted_rest = await _mainline_order(cache, leftover, pl_id)

    # Step 4 and 5.
    resolved = await iterative_auth_checks(cache, room_version, sorted_rest, partial)
    resolved.update(unconflicted)
    return resolved


def _ev(cache: EventCache, event_id: str) -> Event:
    ev = cache.get(event_id)
    assert ev is not None
    return ev


def _auth_graph_within(
    cache: EventCache, start: Collection[str], allowed: Collection[str]
) -> dict[str, set[str]]:
    """Event -> its auth events, for ``start`` and their auth ancestors in ``allowed``.

    The walk follows auth events only while they are in ``allowed`` (the full conflicted
    set). The spec's step 1 takes every event of P's auth chain in the set, including
    ones reached only through events outside it; deployed servers (Synapse, Ruma) stop
    as this does, and we keep agreeing with them on room versions 2-11. From v12 the
    conflicted state subgraph puts every event on such a path in the set, so nothing
    is missed (tests/state_res/test_v2_algorithm.py shows a case).
    """
    graph: dict[str, set[str]] = {}
    stack = list(start)
    while stack:
        eid = stack.pop()
        if eid in graph:
            continue
        edges: set[str] = set()
        graph[eid] = edges
        ev = cache.get(eid)
        if ev is None:
            continue
        for aid in ev.auth_event_ids:
            if aid in allowed:
                edges.add(aid)
                if aid not in graph:
                    stack.append(aid)
    return graph


async def sender_power_level(cache: EventCache, event: Event) -> float:
    """The sender's power level according to the event's own auth events.

    Used by the reverse topological power ordering. Without a power levels auth
    event the creator has 100 and others 0; from v12 creators are infinite.
    """
    rv = event.room_version
    await cache.load(event.auth_event_ids)
    pl_event: Event | None = None
    create: Event | None = None
    for aid in event.auth_event_ids:
        aev = cache.get(aid)
        if aev is None:
            continue
        if aev.state_tuple == _PL_KEY:
            pl_event = aev
        elif aev.state_tuple == _CREATE_KEY:
            create = aev
    create_id = create_event_id_for(event)
    if create is None and create_id is not None:
        create = await cache.fetch(create_id)
    return float(PowerLevels(create, pl_event, rv).user_level(event.sender))


async def _reverse_topological_power_order(
    cache: EventCache, room_version: RoomVersion, graph: Mapping[str, set[str]]
) -> list[str]:
    """Kahn's algorithm taking the smallest candidate by (-power, ts, event_id)."""
    keys: dict[str, tuple[float, int, str]] = {}
    for eid in graph:
        ev = _ev(cache, eid)
        level = await sender_power_level(cache, ev)
        keys[eid] = (-level, ev.origin_server_ts, eid)
    remaining = {eid: len(edges) for eid, edges in graph.items()}
    cited_by: dict[str, list[str]] = {}
    for eid, edges in graph.items():
        for aid in edges:
            cited_by.setdefault(aid, []).append(eid)
    heap = [keys[eid] for eid, n in remaining.items() if n == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, _, eid = heapq.heappop(heap)
        order.append(eid)
        for child in cited_by.get(eid, ()):
            remaining[child] -= 1
            if remaining[child] == 0:
                heapq.heappush(heap, keys[child])
    return order


async def _pl_in_auth_events(cache: EventCache, event: Event) -> Event | None:
    await cache.load(event.auth_event_ids)
    for aid in event.auth_event_ids:
        aev = cache.get(aid)
        if aev is not None and aev.state_tuple == _PL_KEY:
            return aev
    return None


async def _mainline_order(
    cache: EventCache, event_ids: Sequence[str], pl_id: str | None
) -> list[str]:
    """Sort by mainline position (older base first), then ``origin_server_ts``, then ID."""
    mainline: list[str] = []
    current = await cache.fetch(pl_id) if pl_id is not None else None
    while current is not None:
        mainline.append(current.event_id)
        current = await _pl_in_auth_events(cache, current)
    # depth 0 = no mainline event found (position infinity); P_n (oldest) = 1.
    depth_of = {eid: len(mainline) - i for i, eid in enumerate(mainline)}
    memo: dict[str, int] = {}
    keyed: list[tuple[int, int, str]] = []
    for eid in event_ids:
        ev = _ev(cache, eid)
        chain: list[str] = []
        depth = 0
        pl = await _pl_in_auth_events(cache, ev)
        while pl is not None:
            if pl.event_id in depth_of:
                depth = depth_of[pl.event_id]
                break
            if pl.event_id in memo:
                depth = memo[pl.event_id]
                break
            chain.append(pl.event_id)
            pl = await _pl_in_auth_events(cache, pl)
        for visited in chain:
            memo[visited] = depth
        keyed.append((depth, ev.origin_server_ts, eid))
    keyed.sort()
    return [eid for _, _, eid in keyed]
