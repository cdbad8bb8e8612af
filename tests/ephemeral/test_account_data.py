"""Account data, room tags and ignored users through the API and /sync."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import HomeserverHarness
from tests.ephemeral.support import sync_token
from tests.rooms.helpers import make_user


def _global(body: dict[str, Any]) -> dict[str, Any]:
    return {e["type"]: e["content"] for e in body["account_data"]["events"]}


def _room(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    room = body["rooms"]["join"].get(room_id, {})
    return {e["type"]: e["content"] for e in room.get("account_data", {}).get("events", [])}


async def test_global_account_data_round_trip_and_sync(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    since = await sync_token(alice)
    path = f"/user/{alice.user_id}/account_data/org.example.config"
    err = await alice.request("GET", path, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    await alice.request("PUT", path, {"theme": "dark"})
    assert await alice.request("GET", path) == {"theme": "dark"}
    direct = {"@bob:test.local": ["!a:test.local"]}
    await alice.request("PUT", f"/user/{alice.user_id}/account_data/m.direct", direct)
    body = await alice.sync(since=since)
    assert _global(body) == {"org.example.config": {"theme": "dark"}, "m.direct": direct}
    # overwritten, not merged; only the change comes down
    await alice.request("PUT", path, {"font": "large"})
    later = await alice.sync(since=body["next_batch"])
    assert _global(later) == {"org.example.config": {"font": "large"}}
    assert _global(await alice.sync())["m.direct"] == direct
    quiet = await alice.sync(since=later["next_batch"])
    assert quiet["account_data"]["events"] == []


async def test_room_account_data_and_tags(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    since = await sync_token(alice)
    base = f"/user/{alice.user_id}/rooms/{room_id}"
    await alice.request("PUT", f"{base}/account_data/org.example.pos", {"at": 3})
    assert await alice.request("GET", f"{base}/account_data/org.example.pos") == {"at": 3}
    # no fallback between global and room data
    await alice.request("GET", f"/user/{alice.user_id}/account_data/org.example.pos", expect=404)
    assert await alice.request("GET", f"{base}/tags") == {"tags": {}}
    await alice.request("PUT", f"{base}/tags/m.favourite", {"order": 0.25})
    await alice.request("PUT", f"{base}/tags/u.work", {})
    assert await alice.request("GET", f"{base}/tags") == {
        "tags": {"m.favourite": {"order": 0.25}, "u.work": {}}
    }
    body = await alice.sync(since=since)
    room = _room(body, room_id)
    assert room["org.example.pos"] == {"at": 3}
    assert room["m.tag"] == {"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}}
    await alice.request("DELETE", f"{base}/tags/m.favourite")
    await alice.request("DELETE", f"{base}/tags/m.unknown")  # removing an absent tag is fine
    later = await alice.sync(since=body["next_batch"])
    assert _room(later, room_id) == {"m.tag": {"tags": {"u.work": {}}}}
    assert await alice.request("GET", f"{base}/account_data/m.tag") == {"tags": {"u.work": {}}}


async def test_account_data_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room()
    mine = f"/user/{alice.user_id}/account_data/org.example"
    await alice.request("PUT", mine, {"keep": True})
    for method in ("GET", "PUT"):
        err = await bob.request(method, mine, {"x": 1} if method == "PUT" else None, expect=403)
        assert err["errcode"] == "M_FORBIDDEN"
    err = await bob.request("GET", f"/user/{alice.user_id}/rooms/{room_id}/tags", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    for data_type in ("m.fully_read", "m.push_rules"):
        err = await alice.request(
            "PUT", f"/user/{alice.user_id}/account_data/{data_type}", {}, expect=405
        )
        assert err["errcode"] == "M_BAD_JSON"
        err = await alice.request(
            "PUT",
            f"/user/{alice.user_id}/rooms/{room_id}/account_data/{data_type}",
            {"event_id": "$x"},
            expect=405,
        )
        assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request(
        "GET", f"/user/{alice.user_id}/rooms/not-a-room/account_data/x", expect=400
    )
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request("PUT", mine, [1, 2], expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    resp = await hs.client.put("/_matrix/client/v3" + mine, data=b"{", headers=alice.auth)
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    resp = await hs.client.get("/_matrix/client/v3" + mine)
    assert resp.status == 401
    tags = f"/user/{alice.user_id}/rooms/{room_id}/tags"
    err = await alice.request("PUT", f"{tags}/{'x' * 256}", {}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request("PUT", f"{tags}/u.bad", {"order": "first"}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request(
        "PUT",
        f"/user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": []},
        expect=400,
    )
    assert err["errcode"] == "M_BAD_JSON"
    # stored data intact
    assert await alice.request("GET", mine) == {"keep": True}
    assert await alice.request("GET", tags) == {"tags": {}}


async def test_ignored_users_are_hidden(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await alice.request(
        "PUT",
        f"/user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {bob.user_id: {}}},
    )
    since = await sync_token(alice)
    await bob.send(room_id, "you cannot see me")
    await bob.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.member/{bob.user_id}",
        {"membership": "join", "displayname": "Still shown"},
    )
    mine = await alice.send(room_id, "visible")
    body = await alice.sync(since=since)
    timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["type"] for e in timeline] == ["m.room.member", "m.room.message"]
    assert timeline[-1]["event_id"] == mine
    # invites from an ignored user do not reach the client
    other = await bob.create_room()
    await bob.invite(other, alice.user_id)
    body = await alice.sync(since=body["next_batch"])
    assert other not in body["rooms"]["invite"]
    assert other not in (await alice.sync())["rooms"]["invite"]
    # un-ignoring resumes delivery
    await alice.request(
        "PUT", f"/user/{alice.user_id}/account_data/m.ignored_user_list", {"ignored_users": {}}
    )
    since = body["next_batch"]
    await bob.send(room_id, "back again")
    body = await alice.sync(since=since)
    assert body["rooms"]["join"][room_id]["timeline"]["events"][-1]["content"]["body"] == (
        "back again"
    )
    assert other in (await alice.sync())["rooms"]["invite"]


@pytest.mark.parametrize(
    ("written", "listed"),
    [
        (
            {"tags": {"u.a": {"order": 0.5}, "u.b": 3, "u.c": None, "u.d": [1]}},
            {"u.a": {"order": 0.5}},
        ),
        ({"tags": {"u.a": {"order": "first", "x": 1}}}, {"u.a": {"x": 1}}),
        ({"tags": {"u.a": {"order": True}}}, {"u.a": {}}),
        ({"tags": ["u.a"]}, {}),
        ({"tags": "u.a"}, {}),
        ({"other": 1}, {}),
    ],
)
async def test_tags_always_match_the_schema(
    hs: HomeserverHarness, written: dict[str, Any], listed: dict[str, Any]
) -> None:
    """m.tag written whole through the account data API (any JSON object, as Synapse
    accepts) never makes GET /tags answer outside its schema: tag name -> Tag object
    whose ``order`` is a number. A tag added afterwards is listed with the valid ones."""
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    base = f"/user/{alice.user_id}/rooms/{room_id}"
    await alice.request("PUT", f"{base}/account_data/m.tag", written)
    assert await alice.request("GET", f"{base}/tags") == {"tags": listed}
    await alice.request("PUT", f"{base}/tags/m.favourite", {"order": 1})
    tags = (await alice.request("GET", f"{base}/tags"))["tags"]
    assert tags == {**listed, "m.favourite": {"order": 1}}
    for info in tags.values():
        assert isinstance(info, dict)
        assert "order" not in info or type(info["order"]) in (int, float)


async def test_a_null_tag_order_is_no_order(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    tags = f"/user/{alice.user_id}/rooms/{room_id}/tags"
    await alice.request("PUT", f"{tags}/u.work", {"order": None, "note": "n"})
    assert await alice.request("GET", tags) == {"tags": {"u.work": {"note": "n"}}}
    for bad in ({"order": "1"}, {"order": False}, {"order": [0.5]}, {"order": {}}):
        err = await alice.request("PUT", f"{tags}/u.bad", bad, expect=400)
        assert err["errcode"] == "M_BAD_JSON"
    assert await alice.request("GET", tags) == {"tags": {"u.work": {"note": "n"}}}
