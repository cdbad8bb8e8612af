"""Room upgrades through the API (client-server API "Room Upgrades"): the replacement
room, what it copies, the tombstone, aliases, the directory, the old room's power
levels, each local member's settings, and every refusal."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

COPIED = {
    "m.room.topic": {"topic": "topic"},
    "m.room.name": {"name": "name"},
    "m.room.join_rules": {"join_rule": "public"},
    "m.room.guest_access": {"guest_access": "forbidden"},
    "m.room.history_visibility": {"history_visibility": "joined"},
    "m.room.avatar": {"url": "mxc://test.local/avatar"},
    "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
    "m.room.server_acl": {"allow": ["*"], "allow_ip_literals": False, "deny": ["evil.com"]},
}


async def _upgrade(user: User, room: str, version: str = "10", expect: int = 200) -> Any:
    return await user.request(
        "POST", f"/rooms/{quote(room)}/upgrade", {"new_version": version}, expect
    )


async def _put_state(user: User, room: str, event_type: str, content: Any, key: str = "") -> str:
    path = f"/rooms/{room}/state/{event_type}/{quote(key)}"
    return str((await user.request("PUT", path, content))["event_id"])


async def _state_event(user: User, room: str, event_type: str, key: str = "") -> Any:
    path = f"/rooms/{room}/state/{event_type}/{quote(key)}?format=event"
    return await user.request("GET", path)


async def _count(hs: HomeserverHarness, table: str) -> int:
    return int(await hs.server.db.fetchval("t", f"SELECT COUNT(*) FROM {table}"))


async def test_upgrade_makes_a_linked_replacement_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(preset="public_chat", room_version="9")
    for event_type, content in COPIED.items():
        await _put_state(alice, old, event_type, content)
    new = (await _upgrade(alice, old, "10"))["replacement_room"]
    assert new != old and new.startswith("!")

    tombstone = await _state_event(alice, old, "m.room.tombstone")
    assert tombstone["sender"] == alice.user_id
    assert tombstone["content"]["replacement_room"] == new
    create = await _state_event(alice, new, "m.room.create")
    assert create["content"]["room_version"] == "10"
    assert create["content"]["creator"] == alice.user_id
    assert create["content"]["predecessor"] == {
        "room_id": old,
        "event_id": tombstone["event_id"],
    }
    for event_type, content in COPIED.items():
        assert await alice.state(new, event_type) == content, event_type
    assert await alice.state(new, "m.room.member", alice.user_id) == {
        "membership": "join",
        "displayname": "alice",
    }
    # the new room's power levels are the old room's, the old room is locked down
    new_pl = await alice.state(new, "m.room.power_levels")
    old_pl = await alice.state(old, "m.room.power_levels")
    assert {k: v for k, v in new_pl.items() if k not in ("events_default", "invite")} == {
        k: v for k, v in old_pl.items() if k not in ("events_default", "invite")
    }
    assert new_pl["events_default"] == 0 and new_pl["invite"] == 50
    assert old_pl["events_default"] == 50 and old_pl["invite"] == 50
    # the old room's members can no longer speak there
    bob = await make_user(hs, "bob")
    await bob.join(old)
    denied = await bob.request(
        "PUT", f"/rooms/{old}/send/m.room.message/t1", {"body": "hi"}, expect=403
    )
    assert denied["errcode"] == "M_FORBIDDEN"


async def test_upgrade_copies_levels_above_100_and_bans(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(
        preset="public_chat",
        room_version="10",
        power_level_content_override={"users": {alice.user_id: 500, "@carol:elsewhere": 40}},
    )
    await _put_state(
        alice, old, "m.room.member", {"membership": "ban", "reason": "spam"}, "@bob:elsewhere"
    )
    new = (await _upgrade(alice, old))["replacement_room"]
    levels = await alice.state(new, "m.room.power_levels")
    assert levels["users"] == {alice.user_id: 500, "@carol:elsewhere": 40}
    assert await alice.state(new, "m.room.member", "@bob:elsewhere") == {
        "membership": "ban",
        "reason": "spam",
    }


async def test_moderator_upgrades_without_touching_old_levels(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    mod = await make_user(hs, "mod")
    old = await alice.create_room(preset="public_chat")
    await mod.join(old)
    levels = await alice.state(old, "m.room.power_levels")
    levels["users"][mod.user_id] = 50
    levels["events"]["m.room.tombstone"] = 50
    await _put_state(alice, old, "m.room.power_levels", levels)

    new = (await _upgrade(mod, old))["replacement_room"]
    # raised to 100 to copy the state, then put back to 50 as in the old room
    assert await mod.state(new, "m.room.power_levels") == levels
    timeline = await mod.request("GET", f"/rooms/{new}/messages?dir=b&limit=50")
    raised = [
        e["content"]["users"][mod.user_id]
        for e in reversed(timeline["chunk"])
        if e["type"] == "m.room.power_levels"
    ]
    assert raised == [100, 50]
    # a moderator may not change the old room's power levels: they stay
    assert await mod.state(old, "m.room.power_levels") == levels
    assert (await _state_event(mod, old, "m.room.tombstone"))["content"]["replacement_room"] == new


async def test_old_room_restriction_follows_users_default(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(
        preset="public_chat", power_level_content_override={"users_default": 80}
    )
    await _upgrade(alice, old)
    levels = await alice.state(old, "m.room.power_levels")
    assert levels["events_default"] == 81 and levels["invite"] == 81


async def test_upgrade_moves_aliases_and_publication(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(preset="public_chat", visibility="public")
    first, second = "#first:test.local", "#second:test.local"
    for alias in (first, second):
        await alice.request("PUT", f"/directory/room/{quote(alias)}", {"room_id": old})
    await _put_state(
        alice, old, "m.room.canonical_alias", {"alias": first, "alt_aliases": [second]}
    )
    new = (await _upgrade(alice, old))["replacement_room"]
    assert await alice.state(old, "m.room.canonical_alias") == {}
    assert await alice.state(new, "m.room.canonical_alias") == {
        "alias": first,
        "alt_aliases": [second],
    }
    for alias in (first, second):
        found = await alice.request("GET", f"/directory/room/{quote(alias)}")
        assert found["room_id"] == new
    assert (await alice.request("GET", f"/rooms/{new}/aliases"))["aliases"] == [first, second]
    assert (await alice.request("GET", f"/directory/list/room/{old}"))["visibility"] == "private"
    assert (await alice.request("GET", f"/directory/list/room/{new}"))["visibility"] == "public"
    listed = {r["room_id"] for r in (await alice.request("GET", "/publicRooms"))["chunk"]}
    assert new in listed and old not in listed


async def test_private_room_stays_private(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(preset="private_chat")
    new = (await _upgrade(alice, old))["replacement_room"]
    assert (await alice.request("GET", f"/directory/list/room/{new}"))["visibility"] == "private"
    assert await alice.state(new, "m.room.join_rules") == {"join_rule": "invite"}


async def test_create_content_keeps_federate_and_type(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(creation_content={"m.federate": False, "type": "m.space"})
    child = "!child:test.local"
    await _put_state(alice, old, "m.space.child", {"via": ["test.local"]}, child)
    await _put_state(alice, old, "m.space.child", {}, "!removed:test.local")
    new = (await _upgrade(alice, old))["replacement_room"]
    create = await alice.state(new, "m.room.create")
    assert create["m.federate"] is False and create["type"] == "m.space"
    assert await alice.state(new, "m.space.child", child) == {"via": ["test.local"]}
    missing = await alice.request(
        "GET", f"/rooms/{new}/state/m.space.child/{quote('!removed:test.local')}", expect=404
    )
    assert missing["errcode"] == "M_NOT_FOUND"


async def test_upgrade_to_room_version_12(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(preset="public_chat", room_version="11")
    new = (await _upgrade(alice, old, "12"))["replacement_room"]
    create = await _state_event(alice, new, "m.room.create")
    # the room ID comes from the create event, which cannot cite the later tombstone
    assert create["content"]["predecessor"] == {"room_id": old}
    assert create["content"]["room_version"] == "12"
    assert new == "!" + create["event_id"][1:]
    tombstone = await alice.state(old, "m.room.tombstone")
    assert tombstone["replacement_room"] == new
    # creators have infinite power in v12 and are not listed
    assert alice.user_id not in (await alice.state(new, "m.room.power_levels"))["users"]


async def test_additional_creators_of_version_12(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(preset="public_chat", room_version="11")
    bad = await alice.request(
        "POST",
        f"/rooms/{old}/upgrade",
        {"new_version": "12", "additional_creators": ["not-a-user"]},
        expect=400,
    )
    assert bad["errcode"] == "M_BAD_JSON"
    assert await alice.request("GET", f"/rooms/{old}/state/m.room.tombstone/", expect=404)
    body = {"new_version": "12", "additional_creators": ["@bob:test.local"]}
    new = (await alice.request("POST", f"/rooms/{old}/upgrade", body))["replacement_room"]
    create = await alice.state(new, "m.room.create")
    assert create["additional_creators"] == ["@bob:test.local"]


async def test_user_settings_follow_the_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    old = await alice.create_room(preset="public_chat")
    await bob.join(old)
    user = quote(bob.user_id)
    await bob.request("PUT", f"/user/{user}/rooms/{old}/tags/u.work", {"order": 0.5})
    await bob.request("PUT", f"/user/{user}/account_data/m.direct", {alice.user_id: [old]})
    await bob.request("PUT", f"/pushrules/global/room/{quote(old)}", {"actions": ["notify"]})
    condition = {"kind": "event_match", "key": "room_id", "pattern": old}
    await bob.request(
        "PUT",
        "/pushrules/global/override/mute-old",
        {"actions": [], "conditions": [condition]},
    )
    await bob.request(
        "PUT", f"/pushrules/global/override/{quote('x' + old)}", {"actions": [], "conditions": []}
    )

    new = (await _upgrade(alice, old))["replacement_room"]
    tags = await bob.request("GET", f"/user/{user}/rooms/{new}/tags")
    assert tags == {"tags": {"u.work": {"order": 0.5}}}
    direct = await bob.request("GET", f"/user/{user}/account_data/m.direct")
    assert direct == {alice.user_id: [old, new]}
    room_rule = await bob.request("GET", f"/pushrules/global/room/{quote(new)}")
    assert room_rule["actions"] == ["notify"]
    copied = await bob.request("GET", f"/pushrules/global/override/{quote(new)}")
    assert copied["conditions"] == [{**condition, "pattern": new}]
    assert copied["actions"] == []
    # the old room's rules stay, the unrelated rule is not copied
    await bob.request("GET", f"/pushrules/global/room/{quote(old)}")
    rules = await bob.request("GET", "/pushrules/global/")
    assert [r["rule_id"] for r in rules["override"] if not r["default"]] == [
        new,
        "x" + old,
        "mute-old",
    ]
    # the upgrading user had none of these: nothing was made up for them
    alice_tags = await alice.request("GET", f"/user/{quote(alice.user_id)}/rooms/{new}/tags")
    assert alice_tags == {"tags": {}}


async def test_disabled_push_rules_are_not_copied(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    old = await alice.create_room(preset="public_chat")
    await alice.request("PUT", f"/pushrules/global/room/{quote(old)}", {"actions": ["notify"]})
    await alice.request("PUT", f"/pushrules/global/room/{quote(old)}/enabled", {"enabled": False})
    new = (await _upgrade(alice, old))["replacement_room"]
    missing = await alice.request("GET", f"/pushrules/global/room/{quote(new)}", expect=404)
    assert missing["errcode"] == "M_NOT_FOUND"


async def test_upgrade_refusals_leave_the_room_as_it_was(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    outsider = await make_user(hs, "outsider")
    old = await alice.create_room(preset="public_chat")
    await bob.join(old)
    events, rooms = await _count(hs, "events"), await _count(hs, "rooms")

    unknown = await _upgrade(alice, old, "my_bad_version", expect=400)
    assert unknown["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    for body in ({}, {"new_version": 10}, {"new_version": "10", "additional_creators": "x"}):
        bad = await alice.request("POST", f"/rooms/{old}/upgrade", body, expect=400)
        assert bad["errcode"] in ("M_MISSING_PARAM", "M_BAD_JSON"), body
    not_json = await hs.client.post(
        f"/_matrix/client/v3/rooms/{old}/upgrade", data=b"{", headers=alice.auth
    )
    assert not_json.status == 400 and (await not_json.json())["errcode"] == "M_NOT_JSON"
    # a member without the power to send the tombstone; someone not in the room
    assert (await _upgrade(bob, old, expect=403))["errcode"] == "M_FORBIDDEN"
    assert (await _upgrade(outsider, old, expect=403))["errcode"] == "M_FORBIDDEN"
    bogus = await _upgrade(alice, "!fail:unknown", expect=404)
    assert bogus["errcode"] == "M_NOT_FOUND"
    no_token = await hs.client.post(
        f"/_matrix/client/v3/rooms/{old}/upgrade", json={"new_version": "10"}
    )
    assert no_token.status == 401
    assert (await _count(hs, "events"), await _count(hs, "rooms")) == (events, rooms)
    assert await alice.request("GET", f"/rooms/{old}/state/m.room.tombstone/", expect=404)


@pytest.mark.parametrize("how", ["send", "state"])
async def test_tombstone_naming_its_own_room_is_refused(hs: HomeserverHarness, how: str) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room()
    before = await _count(hs, "events")
    path = (
        f"/rooms/{room}/send/m.room.tombstone/t-{how}"
        if how == "send"
        else f"/rooms/{room}/state/m.room.tombstone/"
    )
    for content in ({"replacement_room": room}, {"body": "gone"}, {"replacement_room": 5}):
        err = await alice.request("PUT", path, content, expect=400)
        assert err["errcode"] == "M_BAD_JSON", content
    assert await _count(hs, "events") == before
    # naming another room is fine
    await alice.request("PUT", path, {"replacement_room": "!other:test.local"})
