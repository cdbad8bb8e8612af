"""Authorisation rules: an allowed and a rejected case per rule and version."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    AuthError,
    Event,
    RoomVersion,
    check_auth,
    check_auth_events,
)

from .auth_helpers import ALICE, BOB, allowed, make, member, rejected
from .room_builder import RoomBuilder

V = KNOWN_ROOM_VERSIONS
ALL = list(V.values())
ids = [v.identifier for v in ALL]


def room_for(rv: RoomVersion, **kwargs: Any) -> RoomBuilder:
    return RoomBuilder(rv).create_room(**kwargs)


# -- m.room.create -------------------------------------------------------------


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_create_allowed_and_prev_events_rejected(rv: RoomVersion) -> None:
    room = RoomBuilder(rv)
    create = room.create()
    check_auth(create, {})
    bad = room.fork().add(
        "m.room.create", ALICE, dict(create.content), "", prev=[create.event_id], check=False
    )
    with pytest.raises(AuthError) as info:
        check_auth(bad, {})
    assert info.value.rule == "create.prev_events"


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_create_room_id_rule(rv: RoomVersion) -> None:
    if rv.room_id_from_create_event:
        room = RoomBuilder(rv)
        ev = room.create()
        pdu = dict(ev.pdu)
        pdu["room_id"] = "!x:a.test"
        with pytest.raises(AuthError, match="room_id"):
            check_auth(Event(pdu, rv), {})
    else:
        room = RoomBuilder(rv, room_id="!room:elsewhere.test")
        with pytest.raises(AuthError) as info:
            check_auth(room.add("m.room.create", ALICE, {"creator": ALICE}, "", check=False), {})
        assert info.value.rule == "create.room_id"


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_create_unknown_room_version(rv: RoomVersion) -> None:
    room = RoomBuilder(rv)
    content = {"room_version": "999", "creator": ALICE}
    with pytest.raises(AuthError, match="unknown room version"):
        check_auth(room.add("m.room.create", ALICE, content, "", check=False), {})


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_create_creator_property(rv: RoomVersion) -> None:
    room = RoomBuilder(rv)
    ev = room.add("m.room.create", ALICE, {"room_version": rv.identifier}, "", check=False)
    if rv.implicit_room_creator:
        check_auth(ev, {})
    else:
        with pytest.raises(AuthError, match="creator"):
            check_auth(ev, {})


@pytest.mark.parametrize("extra", [["@bob:b.test", "@carol:c.test"], []])
def test_v12_additional_creators_valid(extra: list[str]) -> None:
    room = RoomBuilder(V["12"])
    check_auth(room.create(additional_creators=extra), {})


@pytest.mark.parametrize("extra", ["@bob:b.test", [1], ["bob"], ["@bob"], [None]])
def test_v12_additional_creators_invalid(extra: Any) -> None:
    room = RoomBuilder(V["12"])
    ev = room.add("m.room.create", ALICE, {"additional_creators": extra}, "", check=False)
    with pytest.raises(AuthError) as info:
        check_auth(ev, {})
    assert info.value.rule == "create.additional_creators"


def test_v11_ignores_additional_creators() -> None:
    room = RoomBuilder(V["11"])
    check_auth(room.add("m.room.create", ALICE, {"additional_creators": 5}, ""), {})


# -- v12 rule 2: the room ID is the create event's ID ------------------------------


def test_v12_room_id_is_the_create_event_id() -> None:
    """Allowed: the event's room_id is the accepted create event's ID with ``!``."""
    room = room_for(V["12"])
    create = room.events[room.state[("m.room.create", "")]]
    msg = make(room, "m.room.message", ALICE, {"body": "hi"})
    assert msg.room_id == "!" + create.event_id[1:]
    allowed(room, msg)


def test_v12_room_id_of_another_create_event_rejected() -> None:
    """Rejected: the room_id names another room's create event than the state's."""
    room = room_for(V["12"])
    other = room_for(V["12"], other=True)
    assert other.room_id != room.room_id
    msg = make(other, "m.room.message", ALICE, {"body": "hi"})
    with pytest.raises(AuthError) as info:
        check_auth(msg, {**other.auth_state_for(msg), **_create_of(room)})
    assert info.value.rule == "room_id.create"


@pytest.mark.parametrize("suffix", [":a.test", "x"])
def test_v12_room_id_not_exactly_the_create_event_id_rejected(suffix: str) -> None:
    """Rejected: a room_id that is not exactly ``!`` + the create event's ID hash."""
    room = room_for(V["12"])
    msg = make(room, "m.room.message", ALICE, {"body": "hi"})
    pdu = dict(msg.pdu)
    pdu["room_id"] = msg.room_id + suffix
    with pytest.raises(AuthError) as info:
        check_auth(Event(pdu, V["12"]), room.auth_state_for(msg))
    assert info.value.rule == "room_id.create"


def test_v12_rejected_create_event_rejects_the_room() -> None:
    """Rejected: the create event the room_id names was itself rejected."""
    room = room_for(V["12"])
    msg = make(room, "m.room.message", ALICE, {"body": "hi"})
    state = room.auth_state_for(msg)
    create = state[("m.room.create", "")]
    state[("m.room.create", "")] = create.with_rejection("rejected at receipt")
    with pytest.raises(AuthError) as info:
        check_auth(msg, state)
    assert info.value.rule == "room_id.create"


def _create_of(room: RoomBuilder) -> dict[tuple[str, str], Event]:
    return {("m.room.create", ""): room.events[room.state[("m.room.create", "")]]}


# -- auth_events ------------------------------------------------------------------


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_auth_events_checks(rv: RoomVersion) -> None:
    room = room_for(rv)
    msg = room.message(ALICE, "hi")
    auth = [room.events[e] for e in msg.auth_event_ids]
    check_auth_events(msg, auth)
    with pytest.raises(AuthError, match="duplicate"):
        check_auth_events(msg, auth + auth[:1])
    join_rules = room.events[room.state[("m.room.join_rules", "")]]
    with pytest.raises(AuthError) as info:
        check_auth_events(msg, [*auth, join_rules])
    assert info.value.rule == "auth_events.selection"
    with pytest.raises(AuthError) as info:
        check_auth_events(msg, [auth[0].with_rejection("bad"), *auth[1:]])
    assert info.value.rule == "auth_events.rejected"
    create = room.events[room.state[("m.room.create", "")]]
    if rv.create_event_in_auth_events:
        with pytest.raises(AuthError) as info:
            check_auth_events(msg, [e for e in auth if e.type != "m.room.create"])
        assert info.value.rule == "auth_events.no_create"
    else:
        with pytest.raises(AuthError) as info:
            check_auth_events(msg, [*auth, create])
        assert info.value.rule == "auth_events.selection"


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_auth_events_from_other_room(rv: RoomVersion) -> None:
    room = room_for(rv)
    other = RoomBuilder(rv, room_id="!other:a.test").create_room(other=True)
    msg = room.message(ALICE, "hi")
    foreign = [other.events[other.state[k]] for k in (("m.room.power_levels", ""),)]
    auth = [room.events[e] for e in msg.auth_event_ids if room.events[e].type != foreign[0].type]
    with pytest.raises(AuthError) as info:
        check_auth_events(msg, [*auth, *foreign])
    assert info.value.rule == "auth_events.room_id"


# -- m.federate, aliases, general rules ----------------------------------------------


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_m_federate_false(rv: RoomVersion) -> None:
    room = room_for(rv, **{"m.federate": False})
    allowed(room, member(room, ALICE, "@zed:a.test", "invite"))
    rejected(room, member(room, BOB, BOB, "join"), "federate")


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_aliases_rule(rv: RoomVersion) -> None:
    room = room_for(rv)
    ev = make(room, "m.room.aliases", BOB, {"aliases": ["#a:b.test"]}, "b.test")
    wrong = make(room, "m.room.aliases", BOB, {"aliases": ["#a:b.test"]}, "a.test")
    if rv.aliases_auth_rule:
        allowed(room, ev)  # not even joined: the v1-v5 rule only checks the domain
        rejected(room, wrong, "aliases.domain")
    else:
        rejected(room, ev, "sender.joined")
        room.join(BOB)
        rejected(room, make(room, "m.room.aliases", BOB, {}, "b.test"), "event.level")
        allowed(room, make(room, "m.room.aliases", ALICE, {}, "a.test"))


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_sender_must_be_joined(rv: RoomVersion) -> None:
    room = room_for(rv)
    rejected(room, make(room, "m.room.message", BOB, {"body": "x"}), "sender.joined")
    room.join(BOB)
    allowed(room, make(room, "m.room.message", BOB, {"body": "x"}))


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_required_power_level(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.join(BOB)
    rejected(room, make(room, "m.room.topic", BOB, {"topic": "x"}, ""), "event.level")
    room.power_levels(
        ALICE,
        users={} if rv.privileged_creators else {ALICE: 100},
        events={"m.room.topic": 0, "m.custom": 10},
    )
    allowed(room, make(room, "m.room.topic", BOB, {"topic": "x"}, ""))
    rejected(room, make(room, "m.custom", BOB, {}), "event.level")


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_state_key_naming_user(rv: RoomVersion) -> None:
    room = room_for(rv)
    allowed(room, make(room, "m.custom.state", ALICE, {}, ALICE))
    rejected(room, make(room, "m.custom.state", ALICE, {}, BOB), "state_key.user")


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_third_party_invite_event_level(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.join(BOB)
    allowed(room, make(room, "m.room.third_party_invite", BOB, {}, "tok"))
    room.power_levels(ALICE, users={} if rv.privileged_creators else {ALICE: 100}, invite=10)
    rejected(
        room, make(room, "m.room.third_party_invite", BOB, {}, "tok"), "third_party_invite.level"
    )


# -- redactions ---------------------------------------------------------------------


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_redaction_rule(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.join(BOB)
    target = room.message(ALICE, "x")
    red = make(room, "m.room.redaction", BOB, {}, redacts=target.event_id)
    if rv.redaction_auth_rule:
        # v1-v2: BOB (level 0 < redact 50) may only redact events from his own server
        rejected(room, red, "redaction.level")
        own = room.message(BOB, "mine")
        allowed(room, make(room, "m.room.redaction", BOB, {}, redacts=own.event_id))
        allowed(room, make(room, "m.room.redaction", ALICE, {}, redacts=target.event_id))
    else:
        # v3+: allowed by the auth rules; the redact level is checked when applying it
        allowed(room, red)
