"""Shared pieces of state resolution: types, the event cache, the conflicted split,
auth chains and the iterative auth checks.

Spec: rooms ``v2-state-res`` "Definitions" (unconflicted state map, conflicted state
set, auth chain, auth difference) and rooms v12 "Conflicted state subgraph".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import TypeAlias

from homeserver.events import (
    AuthError,
    Event,
    RoomVersion,
    auth_types_for_event,
    check_auth,
)

StateKey: TypeAlias = tuple[str, str]
StateMap: TypeAlias = Mapping[StateKey, str]
"""A room state: ``(type, state_key)`` -> event ID."""

FetchEvents: TypeAlias = Callable[[Collection[str]], Awaitable[Mapping[str, Event]]]
"""``await fetch_events(ids)`` -> the events it has among ``ids`` (missing ones omitted)."""

AuthChainDifference: TypeAlias = Callable[[Sequence[Collection[str]]], Awaitable[Collection[str]]]
"""``await auth_chain_difference(state_sets)`` -> the auth difference of the sets of state
event IDs. As the spec defines it, an event's auth chain is its auth events, recursively,
without the event itself: a state event is in a set's full auth chain only when another
event of that set (or of its chain) cites it."""


class EventCache:
    """Events fetched so far, filled in batches through the caller's ``fetch_events``."""

    __slots__ = ("_events", "_fetch", "_missing")

    def __init__(self, fetch: FetchEvents, known: Mapping[str, Event] | None = None) -> None:
        self._fetch = fetch
        self._events: dict[str, Event] = dict(known or {})
        self._missing: set[str] = set()

    async def load(self, event_ids: Iterable[str]) -> None:
        """Fetch those of ``event_ids`` not yet known (one callback per call)."""
        wanted = {e for e in event_ids if e not in self._events and e not in self._missing}
        if not wanted:
            return
        got = await self._fetch(wanted)
        for eid in wanted:
            ev = got.get(eid)
            if ev is None:
                self._missing.add(eid)
            else:
                self._events[eid] = ev

    def get(self, event_id: str) -> Event | None:
        """A loaded event, or None if it was never loaded or could not be fetched."""
        return self._events.get(event_id)

    async def fetch(self, event_id: str) -> Event | None:
        await self.load((event_id,))
        return self._events.get(event_id)


def separate(
    state_sets: Sequence[StateMap],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """Split into the unconflicted state map and the conflicted events per key.

    A key is unconflicted when every state set has it with the same event.
    """
    if not state_sets:
        return {}, {}
    first, rest = state_sets[0], state_sets[1:]
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    keys: set[StateKey] = set(first)
    for s in rest:
        keys.update(s)
    for key in keys:
        value = first.get(key)
        if value is not None and all(s.get(key) == value for s in rest):
            unconflicted[key] = value
        else:
            conflicted[key] = {s[key] for s in state_sets if key in s}
    return unconflicted, conflicted


async def auth_closure(
    cache: EventCache, start: Iterable[str], stop: Collection[str] = ()
) -> set[str]:
    """``start`` and every event reachable through ``auth_events``, not entering ``stop``.

    Walks breadth-first, loading each level with one fetch. Events that cannot be
    fetched are kept (they are IDs in the chain) but not walked further.
    """
    seen: set[str] = {e for e in start if e not in stop}
    frontier = list(seen)
    while frontier:
        await cache.load(frontier)
        nxt: list[str] = []
        for eid in frontier:
            ev = cache.get(eid)
            if ev is None:
                continue
            for aid in ev.auth_event_ids:
                if aid not in seen and aid not in stop:
                    seen.add(aid)
                    nxt.append(aid)
        frontier = nxt
    return seen


async def default_auth_chain_difference(
    cache: EventCache, state_sets: Sequence[Collection[str]]
) -> set[str]:
    """The auth difference, computed by walking ``auth_events`` of fetched events.

    Spec: ``v2-state-res`` "Auth chain" and "Auth difference": C_i is the union of the
    auth chains of the events of S_i, an event's auth chain being its auth events
    recursively (not the event itself); the difference is the union of the C_i minus
    their intersection.

    With U the events in every set, C_i = chain(U) | chain(S_i - U). chain(U) is in
    every C_i and closed under ``auth_events``, so each chain(S_i - U) is walked without
    entering it, and the difference is the union minus the intersection of those parts.
    """
    if not state_sets:
        return set()
    common = set(state_sets[0]).intersection(*state_sets[1:])
    base = await auth_closure(cache, await _auth_events_of(cache, common))
    parts = [
        await auth_closure(cache, await _auth_events_of(cache, set(s) - common), base)
        for s in state_sets
    ]
    union: set[str] = set().union(*parts)
    inter: set[str] = set(parts[0]).intersection(*parts[1:])
    return union - inter


async def _auth_events_of(cache: EventCache, event_ids: Collection[str]) -> set[str]:
    """The auth events cited by ``event_ids`` (those that cannot be fetched cite none)."""
    await cache.load(event_ids)
    out: set[str] = set()
    for eid in event_ids:
        ev = cache.get(eid)
        if ev is not None:
            out.update(ev.auth_event_ids)
    return out


async def conflicted_subgraph(cache: EventCache, conflicted: Collection[str]) -> set[str]:
    """Events on ``auth_events`` paths between conflicted events (rooms v12 definition).

    Walks forward from the conflicted set recording reverse edges, then keeps the
    events from which some conflicted event is reachable.
    """
    reverse: dict[str, list[str]] = {}
    seen: set[str] = set(conflicted)
    frontier = list(seen)
    while frontier:
        await cache.load(frontier)
        nxt: list[str] = []
        for eid in frontier:
            ev = cache.get(eid)
            if ev is None:
                continue
            for aid in ev.auth_event_ids:
                reverse.setdefault(aid, []).append(eid)
                if aid not in seen:
                    seen.add(aid)
                    nxt.append(aid)
        frontier = nxt
    # ``reverse`` maps an event to the events citing it. Events that reach a conflicted
    # event are found by walking those edges backwards from the conflicted set; only
    # events reachable from the conflicted set (``seen``) ever appear there.
    result: set[str] = set(conflicted)
    stack = list(conflicted)
    while stack:
        eid = stack.pop()
        for child in reverse.get(eid, ()):
            if child not in result:
                result.add(child)
                stack.append(child)
    # ``result``: events reachable from a conflicted event that also reach one, i.e.
    # exactly the events lying on a path between two conflicted events.
    return result


def is_power_event(event: Event) -> bool:
    """Power events (v2 definitions): power levels, join rules, and kicks/bans of others."""
    if event.state_key is None:
        return False
    if event.type in ("m.room.power_levels", "m.room.join_rules"):
        return event.state_key == ""
    if event.type == "m.room.member":
        return event.membership in ("leave", "ban") and event.sender != event.state_key
    return False


def create_event_id_for(event: Event) -> str | None:
    """The create event ID implied by a v12 room ID (``!hash`` -> ``$hash``)."""
    if event.room_version.room_id_from_create_event:
        return "$" + event.room_id[1:]
    return None


async def iterative_auth_checks(
    cache: EventCache,
    room_version: RoomVersion,
    ordered: Sequence[str],
    base: Mapping[StateKey, str],
) -> dict[StateKey, str]:
    """Apply ``ordered`` state events on ``base`` where the auth rules allow them.

    Spec: v2 "Iterative auth checks": auth state is the event's non-rejected auth
    events, overridden by the partially resolved state for the keys the event needs.
    From v12 the create event (no longer cited) is taken from the room ID.
    """
    resolved = dict(base)
    needed: set[str] = set()
    for eid in ordered:
        ev = cache.get(eid)
        if ev is None:
            continue
        needed.update(ev.auth_event_ids)
        create_id = create_event_id_for(ev)
        if create_id is not None:
            needed.add(create_id)
        for key in auth_types_for_event(room_version, ev.type, ev.sender, ev.state_key, ev.content):
            if key in resolved:
                needed.add(resolved[key])
    await cache.load(needed)
    for eid in ordered:
        ev = cache.get(eid)
        if ev is None or ev.state_key is None:
            continue
        auth_state: dict[StateKey, Event] = {}
        for aid in ev.auth_event_ids:
            aev = cache.get(aid)
            if aev is not None and aev.rejected_reason is None and aev.state_key is not None:
                auth_state[(aev.type, aev.state_key)] = aev
        keys = auth_types_for_event(room_version, ev.type, ev.sender, ev.state_key, ev.content)
        missing = [resolved[k] for k in keys if k in resolved and cache.get(resolved[k]) is None]
        if missing:
            await cache.load(missing)
        for key in keys:
            sid = resolved.get(key)
            if sid is not None:
                sev = cache.get(sid)
                if sev is not None:
                    auth_state[key] = sev
        create_id = create_event_id_for(ev)
        if create_id is not None and ("m.room.create", "") not in auth_state:
            cev = cache.get(create_id)
            if cev is not None:
                auth_state[("m.room.create", "")] = cev
        try:
            check_auth(ev, auth_state, room_version)
        except AuthError:
            continue
        resolved[(ev.type, ev.state_key)] = eid
    return resolved
