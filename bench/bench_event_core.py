"""Benchmark of the pure event core: state resolution and auth checks.

Run: ``python bench/bench_event_core.py [--state N] [--conflicts M]``. Prints figures;
asserts nothing. Builds signed rooms with the test room builder (setup time is not
measured), then times:

* resolving two state sets of N state events each, with about M conflicted events
  (room versions 11 = state res v2, and 12 = v2.1);
* auth-checking N events (``check_auth`` against their auth state);
* building (hash + sign + event ID) and signature-verifying events.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    Event,
    RoomVersion,
    check_auth,
    verify_event_signatures,
)
from homeserver.state_res import events_fetcher, resolve_state
from tests.events.room_builder import RoomBuilder, key_lookup

ALICE = "@alice:a.test"


def build_room(rv: RoomVersion, n_state: int, n_conflicts: int) -> tuple[RoomBuilder, ...]:
    room = RoomBuilder(rv).create_room()
    n_users = n_state // 2
    for i in range(n_users):
        room.join(f"@user{i}:s{i % 50}.test")
    while len(room.state) < n_state:
        room.add("m.custom.state", ALICE, {"v": 0}, f"key{len(room.state)}")
    a, b = room.fork(), room.fork()
    half = n_conflicts // 2
    users = {} if rv.privileged_creators else {ALICE: 100}
    a.power_levels(ALICE, users={**users, "@user0:s0.test": 50})
    for i in range(half):
        a.add("m.custom.state", ALICE, {"v": 1}, f"key{n_state - 1 - i}")
        b.add("m.custom.state", ALICE, {"v": 2}, f"key{n_state - 1 - i}")
    for i in range(1, half // 4):
        b.leave(f"@user{i}:s{i % 50}.test")
    return room, a, b


def timed(label: str, fn: object, *args: object) -> object:
    start = time.perf_counter()
    result = fn(*args)  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    print(f"  {label:<52} {elapsed * 1000:9.1f} ms")
    return result


def bench_resolution(rv: RoomVersion, n_state: int, n_conflicts: int) -> None:
    t0 = time.perf_counter()
    room, a, b = build_room(rv, n_state, n_conflicts)
    setup = time.perf_counter() - t0
    conflicted = sum(1 for k in a.state.keys() | b.state.keys() if a.state.get(k) != b.state.get(k))
    print(
        f"room v{rv.identifier} ({rv.state_res.value}): {len(a.state)} / {len(b.state)} state "
        f"events, {conflicted} conflicted keys, {len(room.events)} events (setup {setup:.1f} s)"
    )
    fetch = events_fetcher(room.events)

    def run() -> dict[tuple[str, str], str]:
        return asyncio.run(resolve_state(rv, [a.state, b.state], fetch))

    for attempt in (1, 2):
        timed(f"resolve 2 state sets (run {attempt})", run)


def bench_auth(rv: RoomVersion, n_events: int) -> None:
    room = RoomBuilder(rv).create_room()
    for i in range(200):
        room.join(f"@user{i}:s{i % 20}.test")
    start = time.perf_counter()
    events: list[Event] = [
        room.message(f"@user{i % 200}:s{i % 20}.test", f"message {i}") for i in range(n_events)
    ]
    build = time.perf_counter() - start
    states = [room.auth_state_for(ev) for ev in events]
    print(f"room v{rv.identifier}: {n_events} messages")
    print(
        f"  {'build (hash, sign, event ID) + auth-check, per event':<52} "
        f"{build / n_events * 1e6:9.1f} us"
    )

    def check_all() -> None:
        for ev, state in zip(events, states, strict=True):
            check_auth(ev, state)

    timed(f"check_auth x {n_events}", check_all)

    def verify_all() -> None:
        for ev in events:
            assert not verify_event_signatures(ev, key_lookup)

    timed(f"verify_event_signatures x {n_events}", verify_all)

    def parse_all() -> None:
        for ev in events:
            Event(dict(ev.pdu), rv)

    timed(f"Event from PDU incl. event ID x {n_events}", parse_all)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=int, default=10_000)
    parser.add_argument("--conflicts", type=int, default=400)
    args = parser.parse_args()
    for version in ("11", "12"):
        bench_resolution(KNOWN_ROOM_VERSIONS[version], args.state, args.conflicts)
    bench_auth(KNOWN_ROOM_VERSIONS["12"], args.state)


if __name__ == "__main__":
    main()
