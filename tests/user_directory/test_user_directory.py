"""POST /user_directory/search: whom a searcher finds (shared rooms, public rooms, every
local user with search_all_users), kept current on profile, membership and room
visibility changes; ranking, limit and bad input. Both engines."""

from __future__ import annotations

from typing import Any

from homeserver.config import UserDirectoryConfig
from homeserver.user_directory import UserDirectory, is_public
from storage.user_directory import search_words
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import User, make_user


async def search(user: User, term: str, **extra: Any) -> dict[str, Any]:
    return dict(
        await user.request("POST", "/user_directory/search", {"search_term": term, **extra})
    )


async def found(user: User, term: str) -> list[str]:
    return [r["user_id"] for r in (await search(user, term))["results"]]


async def set_name(user: User, name: str) -> None:
    await user.request("PUT", f"/profile/{user.user_id}/displayname", {"displayname": name})


async def deactivate(user: User) -> None:
    first = await user.request("POST", "/account/deactivate", {}, expect=401)
    await user.request(
        "POST",
        "/account/deactivate",
        {
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.user_id},
                "password": "correct horse",
                "session": first["session"],
            }
        },
    )


# -- pure parts ----------------------------------------------------------------------


def test_search_words_are_word_prefixes() -> None:
    words = search_words("@alice.smith:example.org", "Alice Wonder-Land")
    for token in ("alice", "smith", "alice.smith", "@alice.smith:example.org", "wonder", "land"):
        assert f" {token}" in words
    assert " example" not in words


def test_public_rooms() -> None:
    assert is_public({"join_rule": "public"}, None)
    assert is_public({"join_rule": "invite"}, {"history_visibility": "world_readable"})
    assert not is_public({"join_rule": "invite"}, {"history_visibility": "shared"})
    assert not is_public(None, None)


# -- through the API -------------------------------------------------------------------


async def test_shared_private_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    await set_name(bob, "Bobby Tables")
    room = await alice.create_room(preset="private_chat")
    assert await found(alice, "bobby") == []
    await alice.invite(room, bob.user_id)
    assert await found(alice, "bobby") == []  # invited is not joined
    await bob.join(room)
    result = await search(alice, "tab")
    assert result == {
        "results": [{"user_id": bob.user_id, "display_name": "Bobby Tables"}],
        "limited": False,
    }
    assert await found(alice, "BOB") == [bob.user_id]  # user ID, any case
    # a private room does not leak to someone outside it
    assert await found(carol, "bobby") == []
    # leaving removes
    await bob.leave(room)
    assert await found(alice, "bobby") == []


async def test_public_room_members_are_found_by_anyone(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await set_name(alice, "Alice Liddell")
    room = await alice.create_room(preset="public_chat")
    assert await found(bob, "liddell") == [alice.user_id]
    # the join rule changing to invite makes the room private
    await alice.request("PUT", f"/rooms/{room}/state/m.room.join_rules/", {"join_rule": "invite"})
    assert await found(bob, "liddell") == []
    # world-readable history makes it public again
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "world_readable"},
    )
    assert await found(bob, "liddell") == [alice.user_id]


async def test_display_name_changes(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="private_chat")
    await alice.invite(room, bob.user_id)
    await bob.join(room)
    await set_name(bob, "Robert")
    assert await found(alice, "robert") == [bob.user_id]
    await set_name(bob, "Roberto Carlos")
    assert await found(alice, "carl") == [bob.user_id]
    assert await found(alice, "roberto carlos") == [bob.user_id]
    assert await found(alice, "robert") == [bob.user_id]
    assert await found(alice, "obert") == []  # not a word prefix
    await set_name(bob, "Someone")
    assert await found(alice, "carlos") == []


async def test_exact_and_prefix_matches_rank_first(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    users = [await make_user(hs, name) for name in ("zed", "zeddy", "other")]
    await set_name(users[0], "Someone Zed")
    await set_name(users[1], "Zeddy")
    await set_name(users[2], "zed")
    room = await alice.create_room(preset="public_chat")
    for user in users:
        await user.join(room)
    ids = await found(alice, "zed")
    # "zed" exactly (display name "zed", localpart zed), then the prefix "Zeddy"
    assert set(ids[:2]) == {users[0].user_id, users[2].user_id}
    assert ids[2] == users[1].user_id


async def test_searcher_finds_themself_only_through_a_public_room(hs: HomeserverHarness) -> None:
    """As Synapse: sharing a private room with oneself does not count."""
    alice = await make_user(hs, "alice")
    await alice.create_room(preset="private_chat")
    assert await found(alice, "alice") == []
    await alice.create_room(preset="public_chat")
    assert await found(alice, "alice") == [alice.user_id]


async def test_search_all_users(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(user_directory={"search_all_users": True})
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    assert await found(alice, "bob") == [bob.user_id]
    await set_name(bob, "Builder")
    assert await found(alice, "build") == [bob.user_id]


async def test_disabled(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(user_directory={"enabled": False, "search_all_users": True})
    alice = await make_user(hs, "alice")
    await make_user(hs, "bob")
    assert await search(alice, "bob") == {"results": [], "limited": False}


async def test_deactivated_users_are_not_found(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(user_directory={"search_all_users": True})
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    assert await found(alice, "bob") == [bob.user_id]
    await deactivate(bob)
    assert await found(alice, "bob") == []


async def test_limit_and_limited(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    for i in range(4):
        user = await make_user(hs, f"user{i}")
        await user.join(room)
    result = await search(alice, "user", limit=3)
    assert len(result["results"]) == 3 and result["limited"] is True
    result = await search(alice, "user", limit=4)
    assert len(result["results"]) == 4 and result["limited"] is False
    result = await search(alice, "user")  # default 10
    assert len(result["results"]) == 4 and result["limited"] is False


async def test_bad_input(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    path = "/user_directory/search"
    error = await alice.request("POST", path, {}, expect=400)
    assert error["errcode"] == "M_MISSING_PARAM"
    error = await alice.request("POST", path, {"search_term": 5}, expect=400)
    assert error["errcode"] == "M_BAD_JSON"
    error = await alice.request("POST", path, {"search_term": "a", "limit": "x"}, expect=400)
    assert error["errcode"] == "M_BAD_JSON"
    error = await alice.request("POST", path, [1], expect=400)
    assert error["errcode"] == "M_BAD_JSON"
    resp = await hs.client.post("/_matrix/client/v3" + path, json={"search_term": "a"})
    assert resp.status == 401
    # wildcards are searched for literally
    assert (await search(alice, "%"))["results"] == []
    assert (await search(alice, "_"))["results"] == []


async def test_fill_at_start_up(hs: HomeserverHarness) -> None:
    """Users and rooms held from before the directory are filled in once."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await set_name(bob, "Bobby")
    await alice.create_room(preset="public_chat")
    stores = hs.server.stores
    await stores.db.execute("clear", "DELETE FROM user_directory")
    await stores.db.execute("clear", "DELETE FROM user_directory_public_rooms")
    await stores.db.execute("clear", "DELETE FROM user_directory_filled")
    assert await found(bob, "alice") == []
    directory = UserDirectory("test.local", stores, UserDirectoryConfig())
    await directory.fill()
    assert await found(bob, "alice") == [alice.user_id]
    assert await found(alice, "bobby") == []  # bob shares no room with alice
