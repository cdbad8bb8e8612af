"""Simplified sliding sync (MSC4186) through the HTTP API: lists, windows, order,
rooms initial and incremental, required_state, filters, subscriptions, long-poll,
positions and bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from homeserver.sliding_sync.connections import UnknownPos
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


async def ss(
    hs: HomeserverHarness,
    user: User,
    body: dict[str, Any],
    pos: str | None = None,
    timeout_ms: int = 0,
    expect: int = 200,
) -> dict[str, Any]:
    params = {"timeout": str(timeout_ms)}
    if pos is not None:
        params["pos"] = pos
    resp = await hs.client.post(PATH, json=body, params=params, headers=user.auth)
    data = await resp.json()
    assert resp.status == expect, data
    return dict(data)


def one_list(start: int = 0, end: int = 9, limit: int = 5, **extra: Any) -> dict[str, Any]:
    return {
        "lists": {
            "all": {
                "ranges": [[start, end]],
                "timeline_limit": limit,
                "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
                **extra,
            }
        }
    }


async def three_rooms(hs: HomeserverHarness) -> tuple[User, User, list[str]]:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    rooms = []
    for name in ("first", "second", "third"):
        room_id = await alice.create_room(name=name, preset="public_chat")
        await bob.join(room_id)
        await bob.send(room_id, f"hello {name}")
        rooms.append(room_id)
    return alice, bob, rooms


async def test_initial_list_is_ordered_by_recency_with_room_data(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await three_rooms(hs)
    data = await ss(hs, alice, one_list(0, 1))
    assert data["pos"]
    listed = data["lists"]["all"]
    assert listed["count"] == 3
    assert listed["ops"] == [{"op": "SYNC", "range": [0, 1], "room_ids": [rooms[2], rooms[1]]}]
    assert set(data["rooms"]) == {rooms[2], rooms[1]}
    room = data["rooms"][rooms[2]]
    assert room["initial"] is True
    assert room["name"] == "third"
    assert room["joined_count"] == 2
    assert room["timeline"][-1]["content"]["body"] == "hello third"
    assert all("room_id" not in e for e in room["timeline"])
    # lazy members: the senders of the timeline, and the name
    state_keys = {(e["type"], e["state_key"]) for e in room["required_state"]}
    assert ("m.room.name", "") in state_keys
    assert ("m.room.member", bob.user_id) in state_keys
    assert room["bump_stamp"] > data["rooms"][rooms[1]]["bump_stamp"]
    assert room["num_live"] == 0
    assert isinstance(room["limited"], bool)


async def test_prev_batch_pages_back_with_messages(hs: HomeserverHarness) -> None:
    alice, _bob, rooms = await three_rooms(hs)
    data = await ss(hs, alice, one_list(0, 0, limit=1))
    room = data["rooms"][rooms[2]]
    assert room["limited"] is True
    older = await alice.request(
        "GET",
        f"/rooms/{rooms[2]}/messages",
        params={"from": room["prev_batch"], "dir": "b", "limit": "5"},
    )
    assert older["chunk"]
    assert room["timeline"][0]["event_id"] not in {e["event_id"] for e in older["chunk"]}


async def test_incremental_sends_only_changes_and_reorders(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await three_rooms(hs)
    first = await ss(hs, alice, one_list())
    quiet = await ss(hs, alice, one_list(), pos=first["pos"])
    assert quiet["rooms"] == {}
    event_id = await bob.send(rooms[0], "news in the first room")
    after = await ss(hs, alice, one_list(), pos=quiet["pos"])
    assert after["lists"]["all"]["ops"][0]["room_ids"][0] == rooms[0]
    assert list(after["rooms"]) == [rooms[0]]
    room = after["rooms"][rooms[0]]
    assert "initial" not in room
    assert [e["event_id"] for e in room["timeline"]] == [event_id]
    assert room["num_live"] == 1
    assert room["limited"] is False
    # bob's member event was sent already (lazy loading): not again
    assert "required_state" not in room


async def test_long_poll_wakes_on_a_new_message(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await three_rooms(hs)
    first = await ss(hs, alice, one_list())
    waiting = asyncio.create_task(ss(hs, alice, one_list(), pos=first["pos"], timeout_ms=10_000))
    await asyncio.sleep(0)
    try:
        event_id = await bob.send(rooms[1], "wake up")
        async with asyncio.timeout(10):
            data = await waiting
    finally:
        waiting.cancel()
    assert [e["event_id"] for e in data["rooms"][rooms[1]]["timeline"]] == [event_id]


async def test_state_change_and_widened_required_state(hs: HomeserverHarness) -> None:
    alice, _bob, rooms = await three_rooms(hs)
    first = await ss(hs, alice, one_list())
    await alice.request(
        "PUT", f"/rooms/{rooms[1]}/state/m.room.name/", {"name": "renamed"}, expect=200
    )
    data = await ss(hs, alice, one_list(), pos=first["pos"])
    room = data["rooms"][rooms[1]]
    assert room["name"] == "renamed"
    # the name event is in the timeline; asking for more state sends it at once
    wider = one_list()
    wider["lists"]["all"]["required_state"].append(["m.room.join_rules", ""])
    data2 = await ss(hs, alice, wider, pos=data["pos"])
    got = {
        room_id: {(e["type"], e["state_key"]) for e in body.get("required_state", [])}
        for room_id, body in data2["rooms"].items()
    }
    assert all(("m.room.join_rules", "") in keys for keys in got.values())
    assert set(got) == set(rooms)


async def test_wildcard_and_me(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await three_rooms(hs)
    body = one_list(0, 0)
    body["lists"]["all"]["required_state"] = [["*", "*"]]
    everything = await ss(hs, alice, body)
    keys = {(e["type"], e["state_key"]) for e in everything["rooms"][rooms[2]]["required_state"]}
    assert {("m.room.create", ""), ("m.room.member", bob.user_id)} <= keys
    body["lists"]["all"]["required_state"] = [["m.room.member", "$ME"]]
    me = await ss(hs, alice, body)
    keys = {(e["type"], e["state_key"]) for e in me["rooms"][rooms[2]]["required_state"]}
    assert keys == {("m.room.member", alice.user_id)}


async def test_filters_invites_and_dms(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    dm = await bob.create_room(
        is_direct=True, invite=[alice.user_id], preset="trusted_private_chat"
    )
    space = await alice.create_room(creation_content={"type": "m.space"})
    plain = await alice.create_room()
    await alice.request(
        "PUT", f"/user/{alice.user_id}/account_data/m.direct", {bob.user_id: [dm]}, expect=200
    )

    def filtered(**filters: Any) -> dict[str, Any]:
        return one_list(filters=filters)

    invites = await ss(hs, alice, filtered(is_invite=True))
    assert invites["lists"]["all"]["ops"][0]["room_ids"] == [dm]
    invite_body = invites["rooms"][dm]
    assert invite_body["invite_state"][-1]["content"]["membership"] == "invite"
    assert invite_body["is_dm"] is True
    assert "timeline" not in invite_body
    dms = await ss(hs, alice, filtered(is_dm=True))
    assert dms["lists"]["all"]["ops"][0]["room_ids"] == [dm]
    spaces = await ss(hs, alice, filtered(room_types=["m.space"]))
    assert spaces["lists"]["all"]["ops"][0]["room_ids"] == [space]
    not_spaces = await ss(hs, alice, filtered(not_room_types=["m.space"], is_invite=False))
    assert not_spaces["lists"]["all"]["ops"][0]["room_ids"] == [plain]


async def test_room_subscription(hs: HomeserverHarness) -> None:
    alice, _bob, rooms = await three_rooms(hs)
    data = await ss(
        hs,
        alice,
        {
            "room_subscriptions": {
                rooms[0]: {"required_state": [["m.room.create", ""]], "timeline_limit": 2}
            }
        },
    )
    assert "lists" not in data
    room = data["rooms"][rooms[0]]
    assert [e["type"] for e in room["required_state"]] == ["m.room.create"]
    assert len(room["timeline"]) == 2


async def test_kicked_rooms_show_rooms_left_by_choice_do_not(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await three_rooms(hs)
    await bob.leave(rooms[0])
    await alice.request("POST", f"/rooms/{rooms[1]}/kick", {"user_id": bob.user_id}, expect=200)
    data = await ss(hs, bob, one_list())
    assert data["lists"]["all"]["ops"][0]["room_ids"] == [rooms[1], rooms[2]] or set(
        data["lists"]["all"]["ops"][0]["room_ids"]
    ) == {rooms[1], rooms[2]}
    assert rooms[0] not in data["rooms"]


async def test_positions_and_bad_input(hs: HomeserverHarness) -> None:
    alice, _bob, _rooms = await three_rooms(hs)
    first = await ss(hs, alice, one_list())
    unknown = await ss(hs, alice, one_list(), pos="999/s1_0_0_0_0_0_0_0", expect=400)
    assert unknown["errcode"] == "M_UNKNOWN_POS"
    garbage = await ss(hs, alice, one_list(), pos="nonsense", expect=400)
    assert garbage["errcode"] == "M_UNKNOWN_POS"
    # another connection's position is not this one's
    other = await ss(hs, alice, {**one_list(), "conn_id": "other"}, pos=first["pos"], expect=400)
    assert other["errcode"] == "M_UNKNOWN_POS"
    for body in (
        {"lists": {"all": {"ranges": [[0, 1]], "required_state": []}}},
        {"lists": {"all": {"ranges": [[0, 1]], "required_state": [], "timeline_limit": 5000}}},
        {"lists": {"all": {"ranges": [[3, 1]], "required_state": [], "timeline_limit": 1}}},
        {"lists": {"all": {"ranges": [[0, 1]], "required_state": [["x"]], "timeline_limit": 1}}},
        {"lists": "nope"},
        {"room_subscriptions": {"not-a-room": {"required_state": [], "timeline_limit": 1}}},
    ):
        error = await ss(hs, alice, body, expect=400)
        assert error["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), error
    # the connection is unharmed by the refused requests
    again = await ss(hs, alice, one_list(), pos=first["pos"])
    assert again["rooms"] == {}
    unauthenticated = await hs.client.post(PATH, json=one_list())
    assert unauthenticated.status == 401


async def test_versions_advertise_it(hs: HomeserverHarness) -> None:
    resp = await hs.client.get("/_matrix/client/versions")
    data = await resp.json()
    assert data["unstable_features"].get("org.matrix.simplified_msc3575") is True


async def test_extensions_through_the_endpoint(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await three_rooms(hs)
    body = {
        **one_list(),
        "extensions": {
            "to_device": {"enabled": True},
            "e2ee": {"enabled": True},
            "account_data": {"enabled": True},
            "receipts": {"enabled": True},
            "typing": {"enabled": True},
        },
    }
    first = await ss(hs, alice, body)
    ext = first["extensions"]
    assert ext["to_device"]["events"] == []
    assert "device_one_time_keys_count" in ext["e2ee"]
    assert isinstance(ext["account_data"]["global"], list)
    # bob reads, types, and sends alice a to-device message
    last = await bob.send(rooms[0], "read me")
    await bob.request("POST", f"/rooms/{rooms[0]}/receipt/m.read/{last}", {}, expect=200)
    await bob.request(
        "PUT", f"/rooms/{rooms[0]}/typing/{bob.user_id}", {"typing": True, "timeout": 30000}
    )
    await bob.request(
        "PUT",
        "/sendToDevice/m.test/t1",
        {"messages": {alice.user_id: {alice.device_id: {"hi": "alice"}}}},
        expect=200,
    )
    body["extensions"]["to_device"]["since"] = ext["to_device"]["next_batch"]
    later = await ss(hs, alice, body, pos=first["pos"])
    ext = later["extensions"]
    assert [m["content"] for m in ext["to_device"]["events"]] == [{"hi": "alice"}]
    assert last in ext["receipts"]["rooms"][rooms[0]]["content"]
    assert ext["typing"]["rooms"][rooms[0]]["content"]["user_ids"] == [bob.user_id]


async def test_knocks_carry_their_stripped_state(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(room_version="10")
    await alice.request(
        "PUT", f"/rooms/{room_id}/state/m.room.join_rules/", {"join_rule": "knock"}, expect=200
    )
    await bob.request("POST", f"/knock/{room_id}", {"reason": "let me in"}, expect=200)
    data = await ss(hs, bob, one_list())
    room = data["rooms"][room_id]
    assert room["knock_state"][-1]["content"]["membership"] == "knock"
    assert room["initial"] is True
    again = await ss(hs, bob, one_list(), pos=data["pos"])
    assert room_id not in again["rooms"]  # held as it is


async def test_heroes_for_rooms_without_a_name(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await bob.request("PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bob"})
    room_id = await alice.create_room(invite=[bob.user_id])
    await bob.join(room_id)
    data = await ss(hs, alice, one_list())
    room = data["rooms"][room_id]
    assert "name" not in room
    assert room["heroes"] == [{"user_id": bob.user_id, "displayname": "Bob"}]
    assert room["joined_count"] == 2 and room["invited_count"] == 0


async def test_encrypted_tags_and_spaces_filters(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    secret = await alice.create_room(
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ]
    )
    favourite = await alice.create_room()
    child = await alice.create_room()
    space = await alice.create_room(creation_content={"type": "m.space"})
    await alice.request(
        "PUT", f"/rooms/{space}/state/m.space.child/{child}", {"via": ["test.local"]}, expect=200
    )
    await alice.request(
        "PUT", f"/user/{alice.user_id}/rooms/{favourite}/tags/m.favourite", {}, expect=200
    )

    async def listed(**filters: Any) -> list[str]:
        data = await ss(hs, alice, one_list(filters=filters))
        return list(data["lists"]["all"]["ops"][0]["room_ids"])

    assert await listed(is_encrypted=True) == [secret]
    assert secret not in await listed(is_encrypted=False)
    assert await listed(tags=["m.favourite"]) == [favourite]
    assert favourite not in await listed(not_tags=["m.favourite"])
    assert await listed(spaces=[space]) == [child]
    assert await listed(spaces=["!unknown:test.local"]) == []


async def test_timeline_limit_zero_and_ranges(hs: HomeserverHarness) -> None:
    alice, _bob, rooms = await three_rooms(hs)
    body = one_list(limit=0)
    body["lists"]["all"]["ranges"] = [[0, 0], [2, 5]]
    data = await ss(hs, alice, body)
    ops = data["lists"]["all"]["ops"]
    assert [op["room_ids"] for op in ops] == [[rooms[2]], [rooms[0]]]
    assert set(data["rooms"]) == {rooms[2], rooms[0]}
    assert all("timeline" not in r for r in data["rooms"].values())


async def test_a_logged_out_device_loses_its_connections(hs: HomeserverHarness) -> None:
    alice, _bob, _rooms = await three_rooms(hs)
    first = await ss(hs, alice, one_list())
    second_login = await hs.client.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": alice.user_id},
            "password": "correct horse",
        },
    )
    other = User(hs, alice.user_id, (await second_login.json())["access_token"], "")
    await alice.request("POST", "/logout", {}, expect=200)
    # the same user on another device cannot take over the logged-out one's position
    gone = await ss(hs, other, one_list(), pos=first["pos"], expect=400)
    assert gone["errcode"] == "M_UNKNOWN_POS"
    # and the logged-out device's connection state is gone, not kept until it ages out
    connections = hs.server.client.sliding_sync.connections
    position = int(first["pos"].split("/")[0])
    with pytest.raises(UnknownPos):
        connections.get(alice.user_id, alice.device_id, "", position, hs.clock.time_ms())
