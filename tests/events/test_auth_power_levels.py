"""Authorisation rules for m.room.power_levels, incl. v10 integers and v12 creators."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events import KNOWN_ROOM_VERSIONS, RoomVersion, parse_power_level

from .auth_helpers import ALICE, BOB, CAROL, allowed, make, member, rejected
from .room_builder import RoomBuilder

V = KNOWN_ROOM_VERSIONS
ALL = list(V.values())
ids = [v.identifier for v in ALL]


def pl(room: RoomBuilder, sender: str, **content: Any) -> Any:
    return make(room, "m.room.power_levels", sender, content, "")


def setup(rv: RoomVersion) -> RoomBuilder:
    room = RoomBuilder(rv).create_room()
    room.join(BOB)
    room.join(CAROL)
    base = {} if rv.privileged_creators else {ALICE: 100}
    room.power_levels(ALICE, users={**base, BOB: 50, CAROL: 50}, ban=50)
    return room


def base_users(rv: RoomVersion) -> dict[str, Any]:
    return {} if rv.privileged_creators else {ALICE: 100}


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_first_power_levels_allowed(rv: RoomVersion) -> None:
    room = RoomBuilder(rv)
    room.create()
    room.join(ALICE)
    allowed(room, pl(room, ALICE, users={BOB: 1000}))  # no previous PL event: allow


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_string_values(rv: RoomVersion) -> None:
    room = setup(rv)
    ev = pl(room, ALICE, users={**base_users(rv), BOB: "50", CAROL: " +050 "}, ban="50")
    if rv.integer_only_power_levels:
        rejected(room, ev)
    else:
        allowed(room, ev)
    rejected(room, pl(room, ALICE, users={BOB: "fifty"}), "power_levels.users")
    rejected(room, pl(room, ALICE, users={BOB: "1_0"}), "power_levels.users")


@pytest.mark.parametrize("rv", [V["10"], V["11"], V["12"]], ids=["10", "11", "12"])
def test_v10_integer_only_scalars_and_maps(rv: RoomVersion) -> None:
    room = setup(rv)
    u = {**base_users(rv), BOB: 50, CAROL: 50}
    rejected(room, pl(room, ALICE, users=u, kick="50"), "power_levels.integers")
    rejected(room, pl(room, ALICE, users=u, events={"m.x": "1"}), "power_levels.integers")
    rejected(room, pl(room, ALICE, users=u, events=[]), "power_levels.integers")
    rejected(room, pl(room, ALICE, users=u, notifications={"room": True}), "power_levels.integers")
    allowed(room, pl(room, ALICE, users=u, kick=60, events={"m.x": 1}, notifications={"room": 1}))


def test_floats_before_v6() -> None:
    room = setup(V["5"])
    allowed(room, pl(room, ALICE, users={ALICE: 100, BOB: 50.57, CAROL: 50}))
    assert parse_power_level(float("inf"), V["5"]) is None
    assert parse_power_level(float("nan"), V["5"]) is None
    assert parse_power_level(5.114698e4, V["5"]) == 51146
    assert parse_power_level(50.5, V["6"]) is None
    assert parse_power_level(True, V["1"]) is None


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_users_must_be_user_ids(rv: RoomVersion) -> None:
    room = setup(rv)
    rejected(room, pl(room, ALICE, users={"bob": 10}), "power_levels.users")
    rejected(room, pl(room, ALICE, users=[]), "power_levels.users")


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_changes_relative_to_sender(rv: RoomVersion) -> None:
    room = setup(rv)
    u = {**base_users(rv), BOB: 50, CAROL: 50}
    # bob (50) may send PL events only if state_default allows; let him
    room.power_levels(ALICE, users=u, ban=50, events={"m.room.power_levels": 50})
    # raising someone above own level
    rejected(
        room,
        pl(room, BOB, users={**u, "@dave:d.test": 51}, ban=50, events={"m.room.power_levels": 50}),
        "power_levels.users_change",
    )
    # changing a peer at the same level
    rejected(
        room,
        pl(room, BOB, users={**u, CAROL: 10}, ban=50, events={"m.room.power_levels": 50}),
        "power_levels.users_change",
    )
    # lowering his own level is fine, as is adding someone at his level
    allowed(
        room,
        pl(
            room,
            BOB,
            users={**u, BOB: 10, "@dave:d.test": 50},
            ban=50,
            events={"m.room.power_levels": 50},
        ),
    )
    # scalar above own level
    rejected(
        room,
        pl(room, BOB, users=u, ban=51, events={"m.room.power_levels": 50}),
        "power_levels.change",
    )
    # events entry above own level
    rejected(
        room,
        pl(room, BOB, users=u, ban=50, events={"m.room.power_levels": 50, "m.x": 75}),
        "power_levels.events_change",
    )
    # removing a scalar whose current value is above own level (kick default 50 -> ok)
    room.power_levels(ALICE, users=u, ban=60, events={"m.room.power_levels": 50})
    rejected(
        room, pl(room, BOB, users=u, events={"m.room.power_levels": 50}), "power_levels.change"
    )


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_notifications_rule_from_v6(rv: RoomVersion) -> None:
    room = setup(rv)
    u = {**base_users(rv), BOB: 50, CAROL: 50}
    room.power_levels(
        ALICE, users=u, events={"m.room.power_levels": 50}, notifications={"room": 80}
    )
    ev = pl(room, BOB, users=u, events={"m.room.power_levels": 50}, notifications={"room": 10})
    if rv.notifications_power_levels:
        rejected(room, ev, "power_levels.notifications_change")
    else:
        allowed(room, ev)


# -- v12 creators ---------------------------------------------------------------------


def v12_room(**create: Any) -> RoomBuilder:
    room = RoomBuilder(V["12"]).create_room(**create)
    room.join(BOB)
    room.join(CAROL)
    return room


def test_v12_creators_cannot_be_in_users() -> None:
    room = v12_room(additional_creators=[BOB])
    rejected(room, pl(room, ALICE, users={ALICE: 100}), "power_levels.creators")
    rejected(room, pl(room, ALICE, users={BOB: 100}), "power_levels.creators")
    allowed(room, pl(room, ALICE, users={CAROL: 100}))


def test_v12_creators_have_infinite_power() -> None:
    room = v12_room(additional_creators=[BOB])
    room.power_levels(ALICE, users={CAROL: 10**15})
    # an additional creator outranks anyone listed
    allowed(room, member(room, BOB, CAROL, "ban"))
    allowed(room, pl(room, BOB, users={CAROL: 0}))
    # and cannot be kicked or banned, even by the other creator
    rejected(room, member(room, ALICE, BOB, "ban"), "member.ban.level")
    rejected(room, member(room, CAROL, ALICE, "leave"), "member.leave.kick_level")


def test_v11_equal_level_cannot_ban() -> None:
    room = RoomBuilder(V["11"]).create_room()
    room.join(BOB)
    room.power_levels(ALICE, users={ALICE: 100, BOB: 100})
    rejected(room, member(room, BOB, ALICE, "ban"), "member.ban.level")
    # the creator is an ordinary user: cannot demote a user at the same level
    rejected(room, pl(room, ALICE, users={ALICE: 100}), "power_levels.users_change")
