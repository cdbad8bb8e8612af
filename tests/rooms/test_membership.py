"""Membership through the API: kick, ban, unban, forget, knock, restricted joins,
invite state, member lists (at a token, filtered) and joined members."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import User, make_user


async def _membership(user: User, room_id: str, target: str) -> str:
    return str((await user.state(room_id, "m.room.member", target))["membership"])


async def _event_count(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events"))


async def test_kick_and_ban_with_reasons(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.request("POST", f"/rooms/{room}/kick", {"user_id": bob.user_id, "reason": "rude"})
    member = await alice.state(room, "m.room.member", bob.user_id)
    assert member == {"membership": "leave", "reason": "rude"}
    # kicked users may rejoin a public room
    await bob.join(room)
    await alice.request("POST", f"/rooms/{room}/ban", {"user_id": bob.user_id, "reason": "spam"})
    member = await alice.state(room, "m.room.member", bob.user_id)
    assert member == {"membership": "ban", "reason": "spam"}
    err = await bob.request("POST", f"/join/{room}", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    # a banned user no longer reads the room's state or members (as Synapse)
    for path in (f"/rooms/{room}/state/m.room.member/{bob.user_id}", f"/rooms/{room}/members"):
        err = await bob.request("GET", path, expect=403)
        assert err["errcode"] == "M_FORBIDDEN"
    # a banned user cannot be invited
    err = await alice.request("POST", f"/rooms/{room}/invite", {"user_id": bob.user_id}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    await alice.request("POST", f"/rooms/{room}/unban", {"user_id": bob.user_id, "reason": "ok"})
    assert await alice.state(room, "m.room.member", bob.user_id) == {
        "membership": "leave",
        "reason": "ok",
    }
    await bob.join(room)
    assert await _membership(alice, room, bob.user_id) == "join"


async def test_ban_someone_never_in_the_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    await alice.request("POST", f"/rooms/{room}/ban", {"user_id": "@mallory:elsewhere.org"})
    assert await _membership(alice, room, "@mallory:elsewhere.org") == "ban"


async def test_kick_ban_unban_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await carol.join(room)
    before = await _event_count(hs)
    # no power
    for action in ("kick", "ban"):
        err = await bob.request(
            "POST", f"/rooms/{room}/{action}", {"user_id": carol.user_id}, expect=403
        )
        assert err["errcode"] == "M_FORBIDDEN"
    # kicking or banning someone more powerful
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.power_levels/",
        {"users": {bob.user_id: 50}, "ban": 50, "kick": 50},
    )
    before = await _event_count(hs)
    err = await bob.request("POST", f"/rooms/{room}/kick", {"user_id": alice.user_id}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    # kicking someone not in the room
    err = await alice.request(
        "POST", f"/rooms/{room}/kick", {"user_id": "@nobody:test.local"}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    # unbanning someone who is not banned
    err = await alice.request(
        "POST", f"/rooms/{room}/unban", {"user_id": carol.user_id}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    # bad bodies
    for body in (
        {},
        {"user_id": 5},
        {"user_id": "not-a-user"},
        {"user_id": carol.user_id, "reason": 1},
    ):
        err = await alice.request("POST", f"/rooms/{room}/kick", body, expect=400)
        assert err["errcode"] in ("M_MISSING_PARAM", "M_BAD_JSON")
    resp = await hs.client.post(
        f"/_matrix/client/v3/rooms/{room}/ban", data=b"{nope", headers=alice.auth
    )
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    # unknown room
    err = await alice.request(
        "POST", "/rooms/!nope:test.local/ban", {"user_id": carol.user_id}, expect=404
    )
    assert err["errcode"] == "M_NOT_FOUND"
    # no token
    resp = await hs.client.post(
        f"/_matrix/client/v3/rooms/{room}/kick", json={"user_id": carol.user_id}
    )
    assert resp.status == 401
    assert await _event_count(hs) == before
    assert await _membership(alice, room, carol.user_id) == "join"


async def test_invite_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room()
    await alice.invite(room, bob.user_id)
    await alice.invite(room, bob.user_id)  # already invited: fine
    await bob.join(room)
    err = await alice.request("POST", f"/rooms/{room}/invite", {"user_id": bob.user_id}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"  # already joined
    err = await alice.request("POST", f"/rooms/{room}/invite", {"user_id": "bob"}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request("POST", f"/rooms/{room}/invite", {}, expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
    outsider = await make_user(hs, "outsider")
    err = await outsider.request(
        "POST", f"/rooms/{room}/invite", {"user_id": outsider.user_id}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"


async def test_invite_with_reason_stores_stripped_state(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(name="Secret", topic="hush")
    await alice.request(
        "POST", f"/rooms/{room}/invite", {"user_id": bob.user_id, "reason": "join us"}
    )
    state = await hs.server.stores.state.get_current_state(room)
    invite_id = state[("m.room.member", bob.user_id)]
    stripped = await hs.server.stores.rooms.get_stripped_state(invite_id)
    by_type = {e["type"]: e for e in stripped}
    assert set(by_type) >= {"m.room.create", "m.room.join_rules", "m.room.name", "m.room.topic"}
    assert by_type["m.room.name"]["content"] == {"name": "Secret"}
    assert "origin_server_ts" in by_type["m.room.create"]  # the full create event
    invite = await alice.state(room, "m.room.member", bob.user_id)
    assert invite["reason"] == "join us"


async def test_leave_forget_and_rejoin(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    err = await bob.request("POST", f"/rooms/{room}/forget", {}, expect=400)
    assert err["errcode"] == "M_UNKNOWN"
    assert await hs.server.stores.rooms.forgotten_rooms(bob.user_id) == set()
    await bob.request("POST", f"/rooms/{room}/leave", {"reason": "bye"})
    assert (await alice.state(room, "m.room.member", bob.user_id))["reason"] == "bye"
    await bob.request("POST", f"/rooms/{room}/forget", {})
    await bob.request("POST", f"/rooms/{room}/forget")  # again, and with no body
    assert await hs.server.stores.rooms.forgotten_rooms(bob.user_id) == {room}
    assert await hs.server.stores.rooms.is_forgotten(bob.user_id, room)
    await bob.join(room)
    assert await hs.server.stores.rooms.forgotten_rooms(bob.user_id) == set()
    # an invite also brings a forgotten room back
    private = await alice.create_room()
    await alice.invite(private, bob.user_id)
    await bob.leave(private)
    await bob.request("POST", f"/rooms/{private}/forget", {})
    assert await hs.server.stores.rooms.is_forgotten(bob.user_id, private)
    await alice.invite(private, bob.user_id)
    assert not await hs.server.stores.rooms.is_forgotten(bob.user_id, private)
    # invited users cannot forget; unknown rooms are not found
    err = await bob.request("POST", f"/rooms/{private}/forget", {}, expect=400)
    assert err["errcode"] == "M_UNKNOWN"
    err = await bob.request("POST", "/rooms/!unknown:test.local/forget", {}, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"


async def test_join_by_alias_with_server_name_and_via(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat", room_alias_name="hall")
    alias = quote("#hall:test.local", safe="")
    data = await bob.request(
        "POST", f"/join/{alias}?server_name=test.local&via=other.org", {"reason": "hi"}
    )
    assert data == {"room_id": room}
    assert await alice.state(room, "m.room.member", bob.user_id) == {
        "membership": "join",
        "displayname": "bob",
        "reason": "hi",
    }
    err = await bob.request("POST", f"/join/{quote('#nope:test.local', safe='')}", {}, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    err = await bob.request("POST", "/join/garbage", {}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await bob.request("POST", f"/join/{room}", {"reason": 3}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"


async def test_knock(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(
        room_version="10",
        name="Knockable",
        room_alias_name="door",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    alias = quote("#door:test.local", safe="")
    data = await bob.request("POST", f"/knock/{alias}?via=test.local", {"reason": "let me in"})
    assert data == {"room_id": room}
    member = await alice.state(room, "m.room.member", bob.user_id)
    assert member["membership"] == "knock" and member["reason"] == "let me in"
    state = await hs.server.stores.state.get_current_state(room)
    stripped = await hs.server.stores.rooms.get_stripped_state(
        state[("m.room.member", bob.user_id)]
    )
    assert {"m.room.create", "m.room.name", "m.room.join_rules"} <= {s["type"] for s in stripped}
    # accept the knock with an invite, then join
    await alice.invite(room, bob.user_id)
    await bob.join(room)
    err = await bob.request("POST", f"/knock/{room}", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"  # already joined


async def test_knock_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    invite_only = await alice.create_room(room_version="10")
    err = await bob.request("POST", f"/knock/{invite_only}", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    old = await alice.create_room(
        room_version="6",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    err = await bob.request("POST", f"/knock/{old}", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"  # no knocking before room version 7
    err = await bob.request("POST", "/knock/!nowhere:test.local", {}, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    err = await bob.request("POST", f"/knock/{invite_only}", {"reason": []}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"


async def test_restricted_join(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    space = await alice.create_room(preset="public_chat")
    await bob.join(space)
    join_rules = {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": space}],
    }
    room = await alice.create_room(
        room_version="9",
        initial_state=[{"type": "m.room.join_rules", "content": join_rules}],
    )
    await bob.join(room)
    member = await alice.state(room, "m.room.member", bob.user_id)
    assert member["membership"] == "join"
    assert member["join_authorised_via_users_server"] == alice.user_id
    err = await carol.request("POST", f"/join/{room}", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    # invited users join without meeting the conditions
    await alice.invite(room, carol.user_id)
    await carol.join(room)
    assert await _membership(alice, room, carol.user_id) == "join"


async def test_per_room_display_name_through_state(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room()
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.member/{alice.user_id}",
        {"membership": "join", "displayname": "Queen Alice"},
    )
    joined = await alice.request("GET", f"/rooms/{room}/joined_members")
    # avatar_url is present and null when unset, as Synapse answers
    assert joined["joined"][alice.user_id] == {"display_name": "Queen Alice", "avatar_url": None}
    err = await alice.request(
        "PUT", f"/rooms/{room}/state/m.room.member/nobody", {"membership": "join"}, expect=400
    )
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.member/{alice.user_id}",
        {"membership": "dance"},
        expect=400,
    )
    assert err["errcode"] == "M_BAD_JSON"


async def _members(user: User, room: str, query: str = "") -> dict[str, str]:
    data: dict[str, Any] = await user.request("GET", f"/rooms/{room}/members{query}")
    return {e["state_key"]: e["content"]["membership"] for e in data["chunk"]}


async def test_members_filters_and_at(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    dave = await make_user(hs, "dave")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    early = f"s{hs.server.client.persister.events_stream.current()}"
    await carol.join(room)
    await alice.invite(room, dave.user_id)
    await bob.leave(room)
    everyone = await _members(alice, room)
    assert everyone == {
        alice.user_id: "join",
        bob.user_id: "leave",
        carol.user_id: "join",
        dave.user_id: "invite",
    }
    assert await _members(alice, room, "?membership=join") == {
        alice.user_id: "join",
        carol.user_id: "join",
    }
    assert await _members(alice, room, "?not_membership=join") == {
        bob.user_id: "leave",
        dave.user_id: "invite",
    }
    # the two filters together are an "or", as the spec words it
    assert await _members(alice, room, "?membership=leave&not_membership=join") == {
        bob.user_id: "leave",
        dave.user_id: "invite",
    }
    assert await _members(alice, room, f"?at={early}") == {
        alice.user_id: "join",
        bob.user_id: "join",
    }
    data = await alice.request("GET", f"/rooms/{room}/members")
    assert all(e["type"] == "m.room.member" and e["room_id"] == room for e in data["chunk"])
    # bob left: he sees the members as they were when he left
    assert await _members(bob, room) == {
        alice.user_id: "join",
        bob.user_id: "leave",
        carol.user_id: "join",
        dave.user_id: "invite",
    }
    await carol.leave(room)
    assert (await _members(bob, room))[carol.user_id] == "join"
    # errors
    err = await alice.request("GET", f"/rooms/{room}/members?membership=dancing", expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request("GET", f"/rooms/{room}/members?at=garbage", expect=400)
    assert err["errcode"] == "M_UNKNOWN"
    outsider = await make_user(hs, "outsider")
    err = await outsider.request("GET", f"/rooms/{room}/members", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await outsider.request("GET", "/rooms/!nope:test.local/members", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    # invited users are not (yet) members
    err = await dave.request("GET", f"/rooms/{room}/members", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"


async def test_members_at_topological_token(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    state = await hs.server.stores.state.get_current_state(room)
    alice_join = await hs.server.stores.events.get_event(state[("m.room.member", alice.user_id)])
    assert alice_join is not None and alice_join.stream_ordering is not None
    await bob.join(room)
    token = f"t{alice_join.depth}-{alice_join.stream_ordering}"
    assert await _members(alice, room, f"?at={token}") == {alice.user_id: "join"}


async def test_joined_members(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await alice.request("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice"})
    await alice.request(
        "PUT", f"/profile/{alice.user_id}/avatar_url", {"avatar_url": "mxc://test.local/a"}
    )
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    joined = await bob.request("GET", f"/rooms/{room}/joined_members")
    assert joined == {
        "joined": {
            alice.user_id: {"display_name": "Alice", "avatar_url": "mxc://test.local/a"},
            bob.user_id: {"display_name": "bob", "avatar_url": None},
        }
    }
    await bob.leave(room)
    err = await bob.request("GET", f"/rooms/{room}/joined_members", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"


async def test_forget_rooms_on_leave(make_homeserver: HarnessFactory) -> None:
    """``forget_rooms_on_leave``: leaving, a kick and a ban forget the room for a local
    user at once; joining again brings it back."""
    hs = await make_homeserver(forget_rooms_on_leave=True)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    assert not await hs.server.stores.rooms.is_forgotten(bob.user_id, room)
    await bob.leave(room)
    assert await hs.server.stores.rooms.is_forgotten(bob.user_id, room)
    # a forgotten room is left out of the leave section of an initial sync
    sync = await bob.request("GET", '/sync?filter={"room":{"include_leave":true}}')
    assert room not in sync.get("rooms", {}).get("leave", {})
    await bob.join(room)
    assert not await hs.server.stores.rooms.is_forgotten(bob.user_id, room)
    await alice.request("POST", f"/rooms/{room}/kick", {"user_id": bob.user_id})
    assert await hs.server.stores.rooms.is_forgotten(bob.user_id, room)
    await bob.join(room)
    await alice.request("POST", f"/rooms/{room}/ban", {"user_id": bob.user_id})
    assert await hs.server.stores.rooms.is_forgotten(bob.user_id, room)
    # the room stays remembered by those still in it
    assert not await hs.server.stores.rooms.is_forgotten(alice.user_id, room)


async def test_leaving_keeps_the_room_by_default(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await bob.leave(room)
    assert not await hs.server.stores.rooms.is_forgotten(bob.user_id, room)
    sync = await bob.request("GET", '/sync?filter={"room":{"include_leave":true}}')
    assert room in sync["rooms"]["leave"]
