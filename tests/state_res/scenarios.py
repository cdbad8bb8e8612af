"""Forked test rooms for state resolution: each returns the room and the two forks."""

from __future__ import annotations

from collections.abc import Callable

from homeserver.events import RoomVersion
from tests.events.room_builder import RoomBuilder

ALICE = "@alice:a.test"
BOB = "@bob:b.test"
CAROL = "@carol:c.test"
DAVE = "@dave:d.test"

Scenario = Callable[[RoomVersion], tuple[RoomBuilder, RoomBuilder, RoomBuilder]]


def base(rv: RoomVersion, bob_level: int = 50) -> RoomBuilder:
    room = RoomBuilder(rv).create_room()
    room.join(BOB)
    room.join(CAROL)
    users = {BOB: bob_level} if rv.privileged_creators else {ALICE: 100, BOB: bob_level}
    room.power_levels(ALICE, users=users, events={"m.room.topic": 0})
    room.topic(ALICE, "original")
    return room


def ban_vs_message(rv: RoomVersion) -> tuple[RoomBuilder, RoomBuilder, RoomBuilder]:
    room = base(rv)
    a, b = room.fork(), room.fork()
    a.ban(ALICE, CAROL)
    b.topic(CAROL, "carol's topic")
    b.message(CAROL, "hello")
    return room, a, b


def ban_vs_join(rv: RoomVersion) -> tuple[RoomBuilder, RoomBuilder, RoomBuilder]:
    room = base(rv)
    a, b = room.fork(), room.fork()
    a.ban(ALICE, DAVE)
    b.join(DAVE)
    return room, a, b


def demotion_vs_kick(rv: RoomVersion) -> tuple[RoomBuilder, RoomBuilder, RoomBuilder]:
    room = base(rv)
    a, b = room.fork(), room.fork()
    users = {BOB: 0} if rv.privileged_creators else {ALICE: 100, BOB: 0}
    a.power_levels(ALICE, users=users, events={"m.room.topic": 0})
    b.kick(BOB, CAROL)
    return room, a, b


def topics(rv: RoomVersion) -> tuple[RoomBuilder, RoomBuilder, RoomBuilder]:
    room = base(rv)
    a, b = room.fork(), room.fork()
    a.topic(ALICE, "alice's topic")
    b.topic(BOB, "bob's topic")
    return room, a, b


def join_rules_vs_join(rv: RoomVersion) -> tuple[RoomBuilder, RoomBuilder, RoomBuilder]:
    room = base(rv)
    a, b = room.fork(), room.fork()
    a.join_rules(ALICE, "invite")
    b.join(DAVE)
    return room, a, b


def ban_unban(rv: RoomVersion) -> tuple[RoomBuilder, RoomBuilder, RoomBuilder]:
    room = base(rv)
    a, b = room.fork(), room.fork()
    a.ban(ALICE, CAROL)
    a.kick(ALICE, CAROL)  # unban
    b.topic(CAROL, "carol's topic")
    return room, a, b


SCENARIOS: dict[str, Scenario] = {
    "ban_vs_message": ban_vs_message,
    "ban_vs_join": ban_vs_join,
    "demotion_vs_kick": demotion_vs_kick,
    "topics": topics,
    "join_rules_vs_join": join_rules_vs_join,
    "ban_unban": ban_unban,
}
