"""Presence: PUT/GET /presence/{userId}/status, set_presence on /sync, timeouts, fan-out."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HomeserverHarness
from tests.ephemeral.support import long_poll, presence_of, settle, sync_token
from tests.rooms.helpers import User, make_user


async def _pair(hs: HomeserverHarness) -> tuple[User, User, str]:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    return alice, bob, room_id


async def _tick(hs: HomeserverHarness) -> None:
    assert hs.server.ephemeral is not None
    await hs.server.ephemeral.tick()


def _status(user: User) -> str:
    return f"/presence/{user.user_id}/status"


async def test_set_and_get_presence(hs: HomeserverHarness) -> None:
    alice, bob, _room = await _pair(hs)
    await alice.request("PUT", _status(alice), {"presence": "online", "status_msg": "hi"})
    got = await alice.request("GET", _status(alice))
    assert got == {
        "presence": "online",
        "status_msg": "hi",
        "last_active_ago": 0,
        "currently_active": True,
    }
    hs.clock.advance(5)
    got = await bob.request("GET", _status(alice))
    assert got["presence"] == "online" and got["last_active_ago"] == 5000
    await alice.request("PUT", _status(alice), {"presence": "unavailable"})
    got = await bob.request("GET", _status(alice))
    assert got["presence"] == "unavailable" and "status_msg" not in got
    assert "currently_active" not in got
    # never active: offline
    carol = await make_user(hs, "carol")
    assert await carol.request("GET", _status(carol)) == {"presence": "offline"}


async def test_presence_errors(hs: HomeserverHarness) -> None:
    alice, bob, _room = await _pair(hs)
    stranger = await make_user(hs, "stranger")
    await alice.request("PUT", _status(alice), {"presence": "online", "status_msg": "kept"})
    err = await bob.request("PUT", _status(alice), {"presence": "offline"}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await stranger.request("GET", _status(alice), expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await alice.request("GET", "/presence/@nobody:test.local/status", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    err = await alice.request("PUT", _status(alice), {}, expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
    err = await alice.request("PUT", _status(alice), {"presence": "busy"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request("PUT", _status(alice), {"presence": 1}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request(
        "PUT", _status(alice), {"presence": "online", "status_msg": 7}, expect=400
    )
    assert err["errcode"] == "M_BAD_JSON"
    resp = await hs.client.put(
        "/_matrix/client/v3" + _status(alice), data=b"{{", headers=alice.auth
    )
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    resp = await hs.client.get("/_matrix/client/v3" + _status(alice))
    assert resp.status == 401
    assert (await alice.request("GET", _status(alice)))["status_msg"] == "kept"


async def test_presence_reaches_room_mates_live_and_nobody_else(hs: HomeserverHarness) -> None:
    alice, bob, _room = await _pair(hs)
    stranger = await make_user(hs, "stranger")
    await stranger.create_room()
    bob_since = await sync_token(bob)
    stranger_since = await sync_token(stranger)
    poll = long_poll(bob, bob_since)
    await settle()
    await alice.request("PUT", _status(alice), {"presence": "online", "status_msg": "here"})
    body = await asyncio.wait_for(poll, 5)
    seen = presence_of(body)
    assert seen[alice.user_id]["presence"] == "online"
    assert seen[alice.user_id]["status_msg"] == "here"
    assert alice.user_id not in presence_of(await stranger.sync(since=stranger_since))
    assert alice.user_id not in presence_of(await stranger.sync())
    # an initial sync shows room-mates who are not offline
    assert presence_of(await bob.sync())[alice.user_id]["presence"] == "online"


async def test_syncing_makes_online_then_idle_then_offline(hs: HomeserverHarness) -> None:
    alice, bob, _room = await _pair(hs)
    await alice.request("PUT", _status(alice), {"presence": "offline"})
    bob_since = await sync_token(bob)
    await alice.sync()  # set_presence defaults to online
    body = await bob.sync(since=bob_since)
    content = presence_of(body)[alice.user_id]
    assert content["presence"] == "online" and content["currently_active"] is True
    bob_since = body["next_batch"]
    # after a minute without activity: still online, no longer "currently active"
    hs.clock.advance(25)
    await alice.sync()
    hs.clock.advance(25)
    await alice.sync()
    hs.clock.advance(25)
    await alice.sync()
    await _tick(hs)
    body = await bob.sync(since=bob_since)
    content = presence_of(body)[alice.user_id]
    assert content["presence"] == "online" and content["currently_active"] is False
    assert content["last_active_ago"] == 75_000
    bob_since = body["next_batch"]
    # idle past 5 minutes while syncing: unavailable
    for _ in range(10):
        hs.clock.advance(25)
        await alice.sync()
        await _tick(hs)
    body = await bob.sync(since=bob_since)
    assert presence_of(body)[alice.user_id]["presence"] == "unavailable"
    bob_since = body["next_batch"]
    # activity brings her back online
    await alice.request("PUT", _status(alice), {"presence": "online"})
    body = await bob.sync(since=bob_since)
    assert presence_of(body)[alice.user_id]["presence"] == "online"
    bob_since = body["next_batch"]
    # no sync for more than 30 seconds: offline; the long-poll of bob wakes
    hs.clock.advance(29)
    await _tick(hs)
    assert alice.user_id not in presence_of(await bob.sync(since=bob_since))
    poll = long_poll(bob, bob_since)
    await settle()
    hs.clock.advance(2)
    await _tick(hs)
    body = await asyncio.wait_for(poll, 5)
    assert presence_of(body)[alice.user_id]["presence"] == "offline"


async def test_offline_counts_from_the_end_of_a_long_poll(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _pair(hs)
    since = await sync_token(alice)
    poll = long_poll(alice, since, timeout_ms=10_000)
    await settle()
    hs.clock.advance(60)  # a long-poll still open keeps her online
    await _tick(hs)
    assert (await bob.request("GET", _status(alice)))["presence"] == "online"
    await bob.send(room_id, "wake up")
    await asyncio.wait_for(poll, 5)
    hs.clock.advance(29)
    await _tick(hs)
    assert (await bob.request("GET", _status(alice)))["presence"] != "offline"
    hs.clock.advance(2)
    await _tick(hs)
    assert (await bob.request("GET", _status(alice)))["presence"] == "offline"


async def test_set_presence_offline_and_unavailable_on_sync(hs: HomeserverHarness) -> None:
    alice, bob, _room = await _pair(hs)
    await alice.request("PUT", _status(alice), {"presence": "offline"})
    await alice.sync(set_presence="offline")
    assert (await bob.request("GET", _status(alice)))["presence"] == "offline"
    await alice.sync(set_presence="unavailable")
    assert (await bob.request("GET", _status(alice)))["presence"] == "unavailable"
    err = await alice.request("GET", "/sync", params={"set_presence": "away"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"


async def test_sending_a_message_is_activity(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _pair(hs)
    await alice.request("PUT", _status(alice), {"presence": "unavailable"})
    hs.clock.advance(10)
    await alice.send(room_id, "I am back")
    got = await bob.request("GET", _status(alice))
    assert got["presence"] == "online" and got["last_active_ago"] == 0


async def test_only_messages_typing_and_receipts_are_activity(hs: HomeserverHarness) -> None:
    """Joining, leaving or sending other events says nothing of the user being at
    their client (as in Synapse): a user who never synced stays offline; then a message,
    a typing notification and a receipt each bring them online."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await bob.send(room_id, "not a message", event_type="org.example.ping")
    assert (await alice.request("GET", _status(bob)))["presence"] == "offline"
    since = await sync_token(alice)
    await bob.send(room_id, "hello")
    got = await alice.request("GET", _status(bob))
    assert got["presence"] == "online" and got["last_active_ago"] == 0
    assert presence_of(await alice.sync(since=since))[bob.user_id]["presence"] == "online"
    typing = f"/rooms/{room_id}/typing/{bob.user_id}"
    receipt_of = await alice.send(room_id, "read me")
    for activity in (
        lambda: bob.request("PUT", typing, {"typing": True, "timeout": 1000}),
        lambda: bob.request("POST", f"/rooms/{room_id}/receipt/m.read/{receipt_of}", {}),
    ):
        await bob.request("PUT", _status(bob), {"presence": "unavailable"})
        hs.clock.advance(10)
        await activity()
        got = await alice.request("GET", _status(bob))
        assert got["presence"] == "online" and got["last_active_ago"] == 0
    # a refused typing notification is no activity
    await bob.request("PUT", _status(bob), {"presence": "unavailable"})
    await bob.leave(room_id)
    await bob.request("PUT", typing, {"typing": True, "timeout": 1000}, expect=403)
    assert (await bob.request("GET", _status(bob)))["presence"] == "unavailable"


async def test_newly_joined_rooms_and_members_bring_their_presence(
    hs: HomeserverHarness,
) -> None:
    """Incremental syncs give, offline or not (as Synapse does), the presence of the
    members of a room the user just joined, and of users who just joined the user's
    rooms; once, not again in the next sync."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room_id = await alice.create_room(preset="public_chat")
    await alice.request("PUT", _status(alice), {"presence": "offline"})
    bob_first = await bob.sync(set_presence="offline")
    alice_first = await alice.sync(set_presence="offline")
    assert bob.user_id not in presence_of(alice_first)
    await bob.join(room_id)
    # bob joined a room: its members' presence, alice offline included
    body = await bob.sync(since=bob_first["next_batch"], set_presence="offline")
    assert presence_of(body)[alice.user_id]["presence"] == "offline"
    again = await bob.sync(since=body["next_batch"], set_presence="offline")
    assert alice.user_id not in presence_of(again)
    # bob joined alice's room: his presence, though it did not change
    body = await alice.sync(since=alice_first["next_batch"], set_presence="offline")
    assert presence_of(body)[bob.user_id] == {"presence": "offline"}
    assert carol.user_id not in presence_of(body)
    again = await alice.sync(since=body["next_batch"], set_presence="offline")
    assert presence_of(again) == {}
    # someone who joined and left within the gap is no arrival
    await carol.join(room_id)
    await carol.leave(room_id)
    body = await alice.sync(since=again["next_batch"], set_presence="offline")
    assert carol.user_id not in presence_of(body)


async def test_presence_survives_a_restart(make_homeserver: Any) -> None:
    first = await make_homeserver()
    alice, bob, _room = await _pair(first)
    since = await sync_token(bob)
    await alice.request("PUT", _status(alice), {"presence": "unavailable", "status_msg": "lunch"})
    second = await make_homeserver()
    alice.hs = bob.hs = second
    got = await bob.request("GET", _status(alice))
    assert got["presence"] == "unavailable" and got["status_msg"] == "lunch"
    assert presence_of(await bob.sync(since=since))[alice.user_id]["status_msg"] == "lunch"
    # timers resume: with no sync she goes offline
    second.clock.advance(31)
    await _tick(second)
    assert (await bob.request("GET", _status(alice)))["presence"] == "offline"


async def test_presence_disabled(make_homeserver: Any) -> None:
    hs = await make_homeserver(presence={"enabled": False})
    alice, bob, _room = await _pair(hs)
    since = await sync_token(bob)
    await alice.request("PUT", _status(alice), {"presence": "online", "status_msg": "x"})
    await alice.sync()
    assert (await bob.request("GET", _status(alice))) == {"presence": "offline"}
    assert presence_of(await bob.sync(since=since)) == {}
    err = await alice.request("PUT", _status(alice), {"presence": "busy"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"


async def test_fan_out_only_through_shared_rooms(hs: HomeserverHarness) -> None:
    users = [await make_user(hs, f"u{i}") for i in range(6)]
    # two rooms: u0..u2 and u3..u5; u2 is in both
    left = await users[0].create_room(preset="public_chat")
    right = await users[3].create_room(preset="public_chat")
    for u in users[1:3]:
        await u.join(left)
    for u in users[4:]:
        await u.join(right)
    await users[2].join(right)
    tokens = [await sync_token(u) for u in users]
    await users[0].request(
        "PUT", _status(users[0]), {"presence": "online", "status_msg": "fan-out"}
    )
    seen = [
        users[0].user_id in presence_of(await u.sync(since=t))
        for u, t in zip(users, tokens, strict=True)
    ]
    assert seen == [True, True, True, False, False, False]
