"""POST /createRoom: the events it makes and their order, and the requests it refuses.

Client-server API "Creation" (create_room.yaml): the events implied by the request,
in the prescribed order; a request whose initial state would be invalid gets 400
M_INVALID_ROOM_STATE and leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


async def timeline(user: User, room_id: str) -> list[dict[str, Any]]:
    page = await user.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "f", "limit": "100"}
    )
    return list(page["chunk"])


def keys(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], e.get("state_key")) for e in events]


async def test_events_come_in_the_order_the_spec_gives(hs: HomeserverHarness) -> None:
    alice, bob, carol = [await make_user(hs, n) for n in ("alice", "bob", "carol")]
    room_id = await alice.create_room(
        preset="private_chat",
        room_alias_name="ordered",
        name="Ordered",
        topic="Steps",
        invite=[bob.user_id, carol.user_id],
        is_direct=True,
        initial_state=[
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
            {"type": "org.example.custom", "state_key": "k", "content": {"n": 1}},
        ],
    )
    assert keys(await timeline(alice, room_id)) == [
        ("m.room.create", ""),  # 1
        ("m.room.member", alice.user_id),  # 2: the creator joins
        ("m.room.power_levels", ""),  # 3
        ("m.room.canonical_alias", ""),  # 4
        ("m.room.join_rules", ""),  # 5: the preset's events
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
        ("m.room.encryption", ""),  # 6: initial_state, in its order
        ("org.example.custom", "k"),
        ("m.room.name", ""),  # 7
        ("m.room.topic", ""),
        ("m.room.member", bob.user_id),  # 8: the invites
        ("m.room.member", carol.user_id),
    ]


async def test_fewest_events_without_optional_parameters(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    events = await timeline(alice, room_id)
    assert keys(events) == [
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
    ]
    # visibility private gives the private_chat preset
    assert [e["content"] for e in events[3:]] == [
        {"join_rule": "invite"},
        {"history_visibility": "shared"},
        {"guest_access": "can_join"},
    ]


async def test_power_level_content_override_is_applied(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(
        room_version="11",
        power_level_content_override={
            "users": {alice.user_id: 100, bob.user_id: 50},
            "events": {"m.room.name": 75},
            "events_default": 10,
            "kick": 20,
        },
    )
    pl = await alice.state(room_id, "m.room.power_levels")
    assert pl["users"] == {alice.user_id: 100, bob.user_id: 50}
    assert pl["events"] == {"m.room.name": 75}  # the override replaces the whole key
    assert (pl["events_default"], pl["kick"]) == (10, 20)
    assert (pl["state_default"], pl["ban"], pl["redact"]) == (50, 50, 50)  # defaults kept
    # Only one power levels event: the override goes into the default one.
    assert keys(await timeline(alice, room_id)).count(("m.room.power_levels", "")) == 1


@pytest.mark.parametrize("version", [str(v) for v in range(1, 12)])
async def test_trusted_private_chat_invitees_get_the_creators_level(
    hs: HomeserverHarness, version: str
) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(
        room_version=version, preset="trusted_private_chat", invite=[bob.user_id]
    )
    pl = await alice.state(room_id, "m.room.power_levels")
    assert pl["users"] == {alice.user_id: 100, bob.user_id: 100}


async def test_trusted_private_chat_v12_makes_invitees_creators(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(
        room_version="12", preset="trusted_private_chat", invite=[bob.user_id]
    )
    pl = await alice.state(room_id, "m.room.power_levels")
    assert pl["users"] == {}  # creators have infinite power and are not listed
    assert pl["events"]["m.room.tombstone"] > pl["state_default"]
    create = await alice.state(room_id, "m.room.create")
    assert create["additional_creators"] == [bob.user_id]


async def test_private_chat_invitees_get_no_level(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(
        room_version="11", preset="private_chat", invite=[bob.user_id]
    )
    pl = await alice.state(room_id, "m.room.power_levels")
    assert pl["users"] == {alice.user_id: 100}


async def test_is_direct_is_set_on_the_invites(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    direct = await alice.create_room(invite=[bob.user_id], is_direct=True)
    invite = await alice.state(direct, "m.room.member", bob.user_id)
    assert invite["membership"] == "invite"
    assert invite["is_direct"] is True
    # bob sees it on the invite in his sync
    sync = await bob.sync()
    member = [
        e
        for e in sync["rooms"]["invite"][direct]["invite_state"]["events"]
        if e["type"] == "m.room.member" and e["state_key"] == bob.user_id
    ]
    assert member[0]["content"]["is_direct"] is True
    group = await alice.create_room(invite=[bob.user_id])
    assert "is_direct" not in await alice.state(group, "m.room.member", bob.user_id)
    # The creator's own join is not marked direct.
    assert "is_direct" not in await alice.state(direct, "m.room.member", alice.user_id)


async def test_initial_state_replaces_the_presets_event(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(
        preset="public_chat",
        initial_state=[
            {"type": "m.room.join_rules", "content": {"join_rule": "knock"}},
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
        ],
    )
    events = await timeline(alice, room_id)
    assert keys(events) == [
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),  # initial_state, once each
        ("m.room.history_visibility", ""),
    ]
    assert (await alice.state(room_id, "m.room.join_rules"))["join_rule"] == "knock"
    visibility = await alice.state(room_id, "m.room.history_visibility")
    assert visibility["history_visibility"] == "joined"
    # public_chat's guest_access "forbidden" is the absence of the event (as in Synapse)
    await alice.request("GET", f"/rooms/{room_id}/state/m.room.guest_access", expect=404)


async def test_private_chat_guest_access_event_not_replaced(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(
        preset="private_chat",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    assert keys(await timeline(alice, room_id))[3:] == [
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),  # the preset events not replaced
        ("m.room.join_rules", ""),
    ]
    assert (await alice.state(room_id, "m.room.guest_access"))["guest_access"] == "can_join"


# -- refused requests leave nothing behind -------------------------------------------------


async def counts(hs: HomeserverHarness) -> tuple[int, int, int]:
    db = hs.server.db
    return (
        await db.fetchval("t", "SELECT COUNT(*) FROM rooms"),
        await db.fetchval("t", "SELECT COUNT(*) FROM events"),
        await db.fetchval("t", "SELECT COUNT(*) FROM room_aliases"),
    )


BOB = "@bob:test.local"
ALICE = "@alice:test.local"


@pytest.mark.parametrize(
    "body",
    [
        {"power_level_content_override": {"users": "x"}},
        {"power_level_content_override": {"users": {"not a user": 50}}},
        {"power_level_content_override": {"ban": "high"}},
        {"room_version": "9", "power_level_content_override": {"ban": "high"}},
        {"power_level_content_override": {"events": {"m.room.name": "x"}}},
        {"power_level_content_override": {"notifications": []}},
        # The creator left too low to send the preset's events.
        {"power_level_content_override": {"users": {ALICE: 0}}},
        # v12 creators may not be listed in users.
        {"room_version": "12", "power_level_content_override": {"users": {ALICE: 100}}},
        {"initial_state": [{"type": "m.room.create", "content": {"room_version": "1"}}]},
        {
            "initial_state": [
                {"type": "m.room.member", "state_key": BOB, "content": {"membership": "join"}}
            ]
        },
        {
            "initial_state": [
                {"type": "m.room.member", "state_key": BOB, "content": {"membership": "invite"}}
            ]
        },
        # The creator leaves in initial_state: the name after it cannot be sent.
        {
            "name": "Gone",
            "initial_state": [
                {"type": "m.room.member", "state_key": ALICE, "content": {"membership": "leave"}}
            ],
        },
        # Someone else's state key for a user-keyed state event.
        {"initial_state": [{"type": "org.example.state", "state_key": BOB, "content": {}}]},
        {"invite": [ALICE]},
        {"room_version": "12", "creation_content": {"additional_creators": "bob"}},
        {"room_alias_name": "kept", "power_level_content_override": {"users": {ALICE: 0}}},
    ],
)
async def test_invalid_initial_state_is_refused_before_anything_is_stored(
    hs: HomeserverHarness, body: dict[str, Any]
) -> None:
    alice = await make_user(hs, "alice")
    await make_user(hs, "bob")
    await alice.create_room(name="Existing")
    joined = await alice.request("GET", "/joined_rooms")
    before = await counts(hs)
    err = await alice.request("POST", "/createRoom", body, expect=400)
    assert err["errcode"] == "M_INVALID_ROOM_STATE", err
    assert await alice.request("GET", "/joined_rooms") == joined
    assert await counts(hs) == before
    # The alias of a refused room stays free.
    await alice.create_room(room_alias_name="kept")


async def test_invite_3pid_with_an_unreachable_identity_server(hs: HomeserverHarness) -> None:
    """The third-party invites of createRoom are made once the room exists (as in
    Synapse): an identity server that cannot be reached is a 502, and the room stays,
    with its creator in it. Malformed entries are refused before anything is made."""
    alice = await make_user(hs, "alice")
    before = await counts(hs)
    invite_3pid = {
        "id_server": "id.example.org",
        "id_access_token": "token",
        "medium": "email",
        "address": "bob@example.org",
    }
    for bad in ({**invite_3pid, "id_access_token": None}, {**invite_3pid, "medium": 1}, "x"):
        err = await alice.request("POST", "/createRoom", {"invite_3pid": [bad]}, expect=400)
        assert err["errcode"] in ("M_MISSING_PARAM", "M_BAD_JSON")
    assert await counts(hs) == before
    err = await alice.request("POST", "/createRoom", {"invite_3pid": [invite_3pid]}, expect=502)
    assert err["errcode"] == "M_UNKNOWN"
    assert len((await alice.request("GET", "/joined_rooms"))["joined_rooms"]) == 1
    # An empty list asks for nothing and is fine.
    await alice.create_room(invite_3pid=[])
