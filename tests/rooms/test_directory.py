"""Room aliases, canonical alias checks and the published room directory, through the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import User, make_user


def _alias_path(alias: str) -> str:
    return f"/directory/room/{quote(alias, safe='')}"


async def _aliases_count(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM room_aliases"))


async def test_alias_lifecycle(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await alice.request("PUT", _alias_path("#cats:test.local"), {"room_id": room})
    resp = await hs.client.get("/_matrix/client/v3" + _alias_path("#cats:test.local"))
    assert resp.status == 200  # no token needed
    assert await resp.json() == {"room_id": room, "servers": ["test.local"]}
    assert await bob.join("#cats:test.local") == {"room_id": room}
    await bob.request("PUT", _alias_path("#kittens:test.local"), {"room_id": room})
    data = await bob.request("GET", f"/rooms/{room}/aliases")
    assert data == {"aliases": ["#cats:test.local", "#kittens:test.local"]}
    # bob created #kittens and may delete it; #cats is alice's and bob is no room admin
    err = await bob.request("DELETE", _alias_path("#cats:test.local"), expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    await bob.request("DELETE", _alias_path("#kittens:test.local"))
    # alice (a room admin) may delete aliases others made
    await bob.request("PUT", _alias_path("#bobs:test.local"), {"room_id": room})
    await alice.request("DELETE", _alias_path("#bobs:test.local"))
    err = await alice.request("GET", _alias_path("#bobs:test.local"), expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    err = await alice.request("DELETE", _alias_path("#bobs:test.local"), expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    assert (await alice.request("GET", f"/rooms/{room}/aliases"))["aliases"] == ["#cats:test.local"]


async def test_deleting_an_alias_updates_the_canonical_alias(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(room_alias_name="main")
    await alice.request("PUT", _alias_path("#alt:test.local"), {"room_id": room})
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.canonical_alias/",
        {"alias": "#main:test.local", "alt_aliases": ["#alt:test.local"]},
    )
    await alice.request("DELETE", _alias_path("#alt:test.local"))
    assert await alice.state(room, "m.room.canonical_alias") == {
        "alias": "#main:test.local",
        "alt_aliases": [],
    }
    await alice.request("DELETE", _alias_path("#main:test.local"))
    assert await alice.state(room, "m.room.canonical_alias") == {"alt_aliases": []}


async def test_server_admin_may_delete_any_alias(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    admin = await make_user(hs, "admin")
    await hs.server.stores.accounts.set_admin(admin.user_id, True)
    room = await alice.create_room()
    await alice.request("PUT", _alias_path("#mine:test.local"), {"room_id": room})
    await admin.request("DELETE", _alias_path("#mine:test.local"))
    assert await _aliases_count(hs) == 0


async def test_alias_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room()
    await alice.request("PUT", _alias_path("#taken:test.local"), {"room_id": room})
    count = await _aliases_count(hs)
    err = await alice.request(
        "PUT", _alias_path("#taken:test.local"), {"room_id": room}, expect=409
    )
    assert err["errcode"] == "M_UNKNOWN"
    for alias in ("nohash:test.local", "#nocolon", "#a:b:c:d:bad port"):
        err = await alice.request("PUT", _alias_path(alias), {"room_id": room}, expect=400)
        assert err["errcode"] == "M_INVALID_PARAM", alias
    err = await alice.request(
        "PUT", _alias_path("#elsewhere:other.org"), {"room_id": room}, expect=400
    )
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request("PUT", _alias_path("#x:test.local"), {}, expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
    err = await alice.request("PUT", _alias_path("#x:test.local"), {"room_id": 3}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request("PUT", _alias_path("#x:test.local"), {"room_id": "nope"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request(
        "PUT", _alias_path("#x:test.local"), {"room_id": "!unknown:test.local"}, expect=404
    )
    assert err["errcode"] == "M_NOT_FOUND"
    err = await bob.request("PUT", _alias_path("#x:test.local"), {"room_id": room}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"  # not joined
    resp = await hs.client.put(
        "/_matrix/client/v3" + _alias_path("#x:test.local"), json={"room_id": room}
    )
    assert resp.status == 401
    assert await _aliases_count(hs) == count
    err = await alice.request("GET", _alias_path("#bad"), expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request("GET", _alias_path("#unknown:test.local"), expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    # local aliases: members only, unless world_readable
    err = await bob.request("GET", f"/rooms/{room}/aliases", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await bob.request("GET", "/rooms/nope/aliases", expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "world_readable"},
    )
    assert (await bob.request("GET", f"/rooms/{room}/aliases"))["aliases"] == ["#taken:test.local"]


async def test_canonical_alias_must_point_here(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room()
    other = await alice.create_room()
    await alice.request("PUT", _alias_path("#here:test.local"), {"room_id": room})
    await alice.request("PUT", _alias_path("#there:test.local"), {"room_id": other})
    path = f"/rooms/{room}/state/m.room.canonical_alias/"
    await alice.request(
        "PUT", path, {"alias": "#here:test.local", "alt_aliases": ["#remote:other.org"]}
    )
    for content in (
        {"alias": "#there:test.local"},
        {"alias": "#missing:test.local"},
        {"alias": "#here:test.local", "alt_aliases": ["#there:test.local"]},
    ):
        err = await alice.request("PUT", path, content, expect=400)
        assert err["errcode"] == "M_BAD_ALIAS", content
    err = await alice.request("PUT", path, {"alias": "not an alias"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request("PUT", path, {"alt_aliases": "#here:test.local"}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    assert (await alice.state(room, "m.room.canonical_alias"))["alias"] == "#here:test.local"
    await alice.request("PUT", path, {})  # removing the canonical alias is fine


async def test_directory_visibility(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    path = f"/directory/list/room/{room}"
    resp = await hs.client.get("/_matrix/client/v3" + path)
    assert resp.status == 200 and await resp.json() == {"visibility": "private"}
    await alice.request("PUT", path, {"visibility": "public"})
    assert (await bob.request("GET", path)) == {"visibility": "public"}
    err = await bob.request("PUT", path, {"visibility": "private"}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await alice.request("PUT", path, {"visibility": "secret"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request("PUT", path, {"visibility": 1}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    assert (await bob.request("GET", path)) == {"visibility": "public"}
    await alice.request("PUT", path, {"visibility": "private"})
    await alice.request("PUT", path, {})  # defaults to public
    assert (await bob.request("GET", path)) == {"visibility": "public"}
    err = await alice.request("GET", "/directory/list/room/!nope:test.local", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    err = await alice.request(
        "PUT", "/directory/list/room/!nope:test.local", {"visibility": "public"}, expect=404
    )
    assert err["errcode"] == "M_NOT_FOUND"
    created_public = await alice.create_room(visibility="public")
    assert (await alice.request("GET", f"/directory/list/room/{created_public}")) == {
        "visibility": "public"
    }


async def _public_rooms(user: User, body: dict[str, Any] | None = None, **params: Any) -> Any:
    if body is None:
        query = {k: str(v) for k, v in params.items()}
        return await user.request("GET", "/publicRooms", params=query)
    return await user.request("POST", "/publicRooms", body)


async def test_public_rooms_listing(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    big = await alice.create_room(
        visibility="public",
        preset="public_chat",
        name="Big Room",
        topic="everything about cats",
        room_alias_name="big",
    )
    await bob.join(big)
    small = await alice.create_room(
        visibility="public", preset="private_chat", name="Small", room_version="10"
    )
    space = await alice.create_room(
        visibility="public", name="A space", creation_content={"type": "m.space"}
    )
    await alice.create_room(name="Hidden")  # private: never listed
    await alice.request(
        "PUT", f"/rooms/{small}/state/m.room.avatar/", {"url": "mxc://test.local/av"}
    )
    data = await _public_rooms(alice)
    assert data["total_room_count_estimate"] == 3
    chunk = data["chunk"]
    assert chunk[0]["room_id"] == big  # most members first
    assert chunk[0] == {
        "room_id": big,
        "name": "Big Room",
        "topic": "everything about cats",
        "canonical_alias": "#big:test.local",
        "num_joined_members": 2,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
    }
    by_id = {e["room_id"]: e for e in chunk}
    assert by_id[small]["avatar_url"] == "mxc://test.local/av"
    assert by_id[small]["guest_can_join"] is True  # private_chat preset: can_join
    assert by_id[small]["join_rule"] == "invite"
    assert by_id[space]["room_type"] == "m.space"
    # search by name, topic and alias, case-insensitively
    for term, expected in (("big", [big]), ("CATS", [big]), ("#big:", [big]), ("small", [small])):
        found = await _public_rooms(alice, {"filter": {"generic_search_term": term}})
        assert [e["room_id"] for e in found["chunk"]] == expected, term
    spaces = await _public_rooms(alice, {"filter": {"room_types": ["m.space"]}})
    assert [e["room_id"] for e in spaces["chunk"]] == [space]
    plain = await _public_rooms(alice, {"filter": {"room_types": [None]}})
    assert {e["room_id"] for e in plain["chunk"]} == {big, small}
    networks = await _public_rooms(alice, {"include_all_networks": True})
    assert len(networks["chunk"]) == 3
    # no application service lists a room here; an instance ID is "<service>|<network>"
    bridged = await _public_rooms(alice, {"third_party_instance_id": "irc|libera"})
    assert bridged["chunk"] == []
    await alice.request("POST", "/publicRooms", {"third_party_instance_id": "irc"}, expect=400)


async def test_public_rooms_pagination(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    rooms = {await alice.create_room(visibility="public", name=f"r{i}") for i in range(5)}
    first = await _public_rooms(alice, limit=2)
    assert len(first["chunk"]) == 2 and "prev_batch" not in first
    second = await _public_rooms(alice, limit=2, since=first["next_batch"])
    third = await _public_rooms(alice, {"limit": 2, "since": second["next_batch"]})
    assert len(third["chunk"]) == 1 and "next_batch" not in third
    seen = [e["room_id"] for page in (first, second, third) for e in page["chunk"]]
    assert sorted(seen) == sorted(rooms)
    back = await _public_rooms(alice, limit=2, since=third["prev_batch"])
    assert back["chunk"] == second["chunk"]
    for params in ({"limit": "x"}, {"limit": -1}, {"since": "garbage"}):
        err = await alice.request("GET", "/publicRooms", params=params, expect=400)
        assert err["errcode"] == "M_INVALID_PARAM", params
    for body, code in (
        ({"limit": "2"}, "M_BAD_JSON"),
        ({"filter": []}, "M_BAD_JSON"),
        ({"filter": {"generic_search_term": 5}}, "M_BAD_JSON"),
        ({"filter": {"room_types": [1]}}, "M_BAD_JSON"),
        ({"since": "nope"}, "M_INVALID_PARAM"),
        ({"include_all_networks": True, "third_party_instance_id": "x"}, "M_INVALID_PARAM"),
    ):
        err = await alice.request("POST", "/publicRooms", body, expect=400)
        assert err["errcode"] == code, body
    # Another server's directory is asked over federation (tests/rooms/test_remote_directory.py);
    # one the configuration forbids (loopback is in the default IP range blacklist) is
    # 403 M_FORBIDDEN, as Synapse answers.
    err = await alice.request("GET", "/publicRooms", params={"server": "localhost:1"}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await alice.request("GET", "/publicRooms", params={"server": "bad server"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"


async def test_public_rooms_auth(hs: HomeserverHarness, make_homeserver: Any) -> None:
    resp = await hs.client.get("/_matrix/client/v3/publicRooms")
    assert resp.status == 401
    resp = await hs.client.post("/_matrix/client/v3/publicRooms", json={})
    assert resp.status == 401
    open_hs = await make_homeserver(allow_public_rooms_without_auth=True)
    alice = await make_user(open_hs, "alice")
    room = await alice.create_room(visibility="public")
    resp = await open_hs.client.get("/_matrix/client/v3/publicRooms")
    assert resp.status == 200
    assert [e["room_id"] for e in (await resp.json())["chunk"]] == [room]


async def test_publication_is_denied_unless_a_rule_allows(
    make_homeserver: HarnessFactory,
) -> None:
    """Synapse's default room_list_publication_rules: nobody publishes; a room created
    with visibility public is made but not listed."""
    hs = await make_homeserver(room_list_publication_rules=None)
    alice = await make_user(hs, "alice")
    room = await alice.create_room(visibility="public", preset="public_chat")
    assert await alice.request("GET", f"/directory/list/room/{room}") == {"visibility": "private"}
    err = await alice.request(
        "PUT", f"/directory/list/room/{room}", {"visibility": "public"}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    assert (await alice.request("GET", "/publicRooms"))["chunk"] == []
    # making a room private is always allowed
    await alice.request("PUT", f"/directory/list/room/{room}", {"visibility": "private"})


async def test_publication_rules_match_users_and_aliases(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(
        room_list_publication_rules=[
            {"user_id": "@alice:*", "alias": "#pub-*", "action": "allow"},
            {"user_id": "@bob:*", "action": "allow"},
        ]
    )
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    listed = await alice.create_room(visibility="public", room_alias_name="pub-one")
    unlisted = await alice.create_room(visibility="public", room_alias_name="other")
    by_bob = await bob.create_room(visibility="public")
    by_carol = await carol.create_room(visibility="public")
    chunk = (await alice.request("GET", "/publicRooms"))["chunk"]
    assert sorted(entry["room_id"] for entry in chunk) == sorted([listed, by_bob])
    # an alias added later lets alice publish the second room
    err = await alice.request(
        "PUT", f"/directory/list/room/{unlisted}", {"visibility": "public"}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    await alice.request("PUT", _alias_path("#pub-two:test.local"), {"room_id": unlisted})
    await alice.request("PUT", f"/directory/list/room/{unlisted}", {"visibility": "public"})
    await carol.request(
        "PUT", f"/directory/list/room/{by_carol}", {"visibility": "public"}, expect=403
    )


async def test_alias_creation_rules(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(
        alias_creation_rules=[{"alias": "#bot-*", "action": "deny"}, {"action": "allow"}]
    )
    alice = await make_user(hs, "alice")
    room = await alice.create_room()
    err = await alice.request(
        "PUT", _alias_path("#bot-1:test.local"), {"room_id": room}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    await alice.request("PUT", _alias_path("#human:test.local"), {"room_id": room})
    err = await alice.request("POST", "/createRoom", {"room_alias_name": "bot-2"}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    assert await _aliases_count(hs) == 1


async def test_require_membership_for_aliases(make_homeserver: HarnessFactory) -> None:
    strict = await make_homeserver()
    alice = await make_user(strict, "alice")
    bob = await make_user(strict, "bob")
    room = await alice.create_room(preset="public_chat")
    err = await bob.request("PUT", _alias_path("#b:test.local"), {"room_id": room}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    assert await _aliases_count(strict) == 0

    lax = await make_homeserver(require_membership_for_aliases=False)
    carol = await make_user(lax, "carol")
    dave = await make_user(lax, "dave")
    room = await carol.create_room(preset="public_chat")
    await dave.request("PUT", _alias_path("#d:test.local"), {"room_id": room})
    assert await dave.request("GET", _alias_path("#d:test.local")) == {
        "room_id": room,
        "servers": ["test.local"],
    }
