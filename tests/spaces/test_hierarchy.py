"""GET /rooms/{roomId}/hierarchy and GET /room_summary/{roomIdOrAlias}, on one server
(SQLite and PostgreSQL), and the hierarchy of a space on another server."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.federation.membership_helpers import join_via
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import User, make_user

V1 = "/_matrix/client/v1"


async def hierarchy(user: User, room_id: str, expect: int = 200, **params: Any) -> Any:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    resp = await user.hs.client.get(
        f"{V1}/rooms/{room_id}/hierarchy" + (f"?{query}" if query else ""), headers=user.auth
    )
    body = await resp.json()
    assert resp.status == expect, body
    return body


async def make_space(user: User, name: str, **extra: Any) -> str:
    return await user.create_room(
        name=name, creation_content={"type": "m.space"}, preset="public_chat", **extra
    )


async def add_child(
    user: User, space: str, child: str, *, server: str = "test.local", **content: Any
) -> None:
    await user.request(
        "PUT", f"/rooms/{space}/state/m.space.child/{child}", {"via": [server], **content}
    )


def ids(body: Any) -> list[str]:
    return [room["room_id"] for room in body["rooms"]]


async def build_tree(hs: HomeserverHarness) -> tuple[User, User, dict[str, str]]:
    """space -> [a (order "a"), private, sub (order "b") -> [deep], c (suggested)]."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    rooms = {
        "space": await make_space(alice, "Space"),
        "a": await alice.create_room(preset="public_chat", name="A"),
        "private": await alice.create_room(preset="private_chat", name="Private"),
        "sub": await make_space(alice, "Sub"),
        "deep": await alice.create_room(preset="public_chat", name="Deep"),
        "c": await alice.create_room(preset="public_chat", name="C", topic="see"),
    }
    await add_child(alice, rooms["space"], rooms["a"], order="a")
    await add_child(alice, rooms["space"], rooms["private"])
    await add_child(alice, rooms["space"], rooms["sub"], order="b")
    await add_child(alice, rooms["sub"], rooms["deep"])
    hs.clock.advance(1)  # c's child event is the newest of the unordered ones
    await add_child(alice, rooms["space"], rooms["c"], suggested=True)
    return alice, bob, rooms


async def test_walks_the_space_depth_first_in_order(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await build_tree(hs)
    body = await hierarchy(alice, rooms["space"])
    assert ids(body) == [rooms[k] for k in ("space", "a", "sub", "deep", "private", "c")]
    assert "next_batch" not in body
    root = body["rooms"][0]
    assert root["room_type"] == "m.space" and root["name"] == "Space"
    assert root["num_joined_members"] == 1 and root["join_rule"] == "public"
    assert [c["state_key"] for c in root["children_state"]] == [
        rooms[k] for k in ("a", "sub", "private", "c")
    ]
    child_event = root["children_state"][0]
    assert set(child_event) == {"type", "state_key", "content", "sender", "origin_server_ts"}
    assert "allowed_room_ids" not in root
    c = next(r for r in body["rooms"] if r["room_id"] == rooms["c"])
    assert c["topic"] == "see" and c["children_state"] == []
    assert c["room_version"] and c["world_readable"] is False and c["guest_can_join"] is False
    # bob is in nothing: the private room is left out, the public ones are shown
    assert ids(await hierarchy(bob, rooms["space"])) == [
        rooms[k] for k in ("space", "a", "sub", "deep", "c")
    ]


async def test_depth_suggested_and_removed_children(hs: HomeserverHarness) -> None:
    alice, _bob, rooms = await build_tree(hs)
    shallow = await hierarchy(alice, rooms["space"], max_depth=1)
    assert ids(shallow) == [rooms[k] for k in ("space", "a", "sub", "private", "c")]
    assert ids(await hierarchy(alice, rooms["space"], max_depth=0)) == [rooms["space"]]
    suggested = await hierarchy(alice, rooms["space"], suggested_only="true")
    assert ids(suggested) == [rooms["space"], rooms["c"]]
    # a child event without via is a removed child
    await alice.request("PUT", f"/rooms/{rooms['space']}/state/m.space.child/{rooms['a']}", {})
    assert rooms["a"] not in ids(await hierarchy(alice, rooms["space"]))


async def test_pages_through_the_walk(hs: HomeserverHarness) -> None:
    alice, _bob, rooms = await build_tree(hs)
    whole = ids(await hierarchy(alice, rooms["space"]))
    page = await hierarchy(alice, rooms["space"], limit=2)
    seen = ids(page)
    assert len(seen) == 2
    token = page["next_batch"]
    # the token belongs to these parameters
    refused = await hierarchy(
        alice, rooms["space"], expect=400, limit=2, max_depth=1, **{"from": token}
    )
    assert refused["errcode"] == "M_INVALID_PARAM"
    page = await hierarchy(alice, rooms["space"], limit=2)
    seen = ids(page)
    while "next_batch" in page:
        page = await hierarchy(alice, rooms["space"], limit=2, **{"from": page["next_batch"]})
        seen += ids(page)
    assert seen == whole
    unknown = await hierarchy(alice, rooms["space"], expect=400, **{"from": "nonsense"})
    assert unknown["errcode"] == "M_INVALID_PARAM"


async def test_sessions_expire(hs: HomeserverHarness) -> None:
    alice, _bob, rooms = await build_tree(hs)
    page = await hierarchy(alice, rooms["space"], limit=1)
    hs.clock.advance(5 * 60 + 1)
    expired = await hierarchy(
        alice, rooms["space"], expect=400, limit=1, **{"from": page["next_batch"]}
    )
    assert expired["errcode"] == "M_INVALID_PARAM"


async def test_restricted_rooms_for_members_of_the_space(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await build_tree(hs)
    restricted = await alice.create_room(
        preset="private_chat",
        room_version="10",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": rooms["space"]}],
                },
            }
        ],
    )
    await add_child(alice, rooms["space"], restricted)
    assert restricted not in ids(await hierarchy(bob, rooms["space"]))
    await bob.join(rooms["space"])
    body = await hierarchy(bob, rooms["space"])
    entry = next(r for r in body["rooms"] if r["room_id"] == restricted)
    assert entry["join_rule"] == "restricted"


async def test_refusals(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await build_tree(hs)
    denied = await hierarchy(bob, rooms["private"], expect=403)
    assert denied["errcode"] == "M_FORBIDDEN"
    unknown = await hierarchy(bob, "!nowhere:test.local", expect=403)
    assert unknown["errcode"] == "M_FORBIDDEN"
    for params in ({"limit": 0}, {"limit": "x"}, {"max_depth": -1}, {"suggested_only": "maybe"}):
        bad = await hierarchy(alice, rooms["space"], expect=400, **params)
        assert bad["errcode"] == "M_INVALID_PARAM", params
    resp = await hs.client.get(f"{V1}/rooms/{rooms['space']}/hierarchy")
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_room_summary(hs: HomeserverHarness) -> None:
    alice, bob, rooms = await build_tree(hs)
    await alice.request("PUT", "/directory/room/%23lobby:test.local", {"room_id": rooms["a"]})
    resp = await hs.client.get(f"{V1}/room_summary/%23lobby:test.local")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["room_id"] == rooms["a"] and body["name"] == "A" and "membership" not in body
    assert body["num_joined_members"] == 1 and body["room_version"]
    resp = await hs.client.get(f"{V1}/room_summary/{rooms['a']}", headers=alice.auth)
    assert (await resp.json())["membership"] == "join"
    for user in (None, bob):
        headers = user.auth if user else {}
        resp = await hs.client.get(f"{V1}/room_summary/{rooms['private']}", headers=headers)
        assert resp.status == 404 and (await resp.json())["errcode"] == "M_NOT_FOUND"
    await alice.invite(rooms["private"], bob.user_id)
    resp = await hs.client.get(f"{V1}/room_summary/{rooms['private']}", headers=bob.auth)
    body = await resp.json()
    assert resp.status == 200 and body["membership"] == "invite"
    resp = await hs.client.get(f"{V1}/room_summary/nonsense")
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_INVALID_PARAM"


async def test_remote_space_over_federation(federation_servers: ServerFactory) -> None:
    remote, local = await federation_servers(2)
    owner = await make_user(remote.harness, "owner")
    space = await owner.create_room(
        name="Remote space", creation_content={"type": "m.space"}, preset="public_chat"
    )
    public = await owner.create_room(preset="public_chat", name="Open")
    hidden = await owner.create_room(preset="private_chat", name="Hidden")
    sub = await owner.create_room(
        name="Sub", creation_content={"type": "m.space"}, preset="public_chat"
    )
    deep = await owner.create_room(preset="public_chat", name="Deep")
    for child in (public, hidden, sub):
        await add_child(owner, space, child, server=remote.server_name)
    await add_child(owner, sub, deep, server=remote.server_name)
    # served over federation: the room, its children this server may see, the others
    answer = await local.fed.client.get_json(
        remote.server_name, f"/_matrix/federation/v1/hierarchy/{space}"
    )
    assert answer["room"]["room_id"] == space
    assert len(answer["room"]["children_state"]) == 3
    assert {c["room_id"] for c in answer["children"]} == {public, sub}
    assert answer["inaccessible_children"] == [hidden]
    # a user of the other server joins the space and walks it: its children are
    # asked of the server its m.space.child events name
    reader = await make_user(local.harness, "reader")
    await join_via(reader, space, remote)
    body = await hierarchy(reader, space)
    assert set(ids(body)) == {space, public, sub, deep}
    assert ids(body)[0] == space
    hidden_answer = await hierarchy(reader, hidden, expect=403)
    assert hidden_answer["errcode"] == "M_FORBIDDEN"
    summary = await local.harness.client.get(
        f"{V1}/room_summary/{public}?via={remote.server_name}", headers=reader.auth
    )
    assert (await summary.json())["name"] == "Open"
