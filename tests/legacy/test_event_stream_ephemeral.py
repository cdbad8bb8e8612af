"""GET /events: typing, receipts, presence, tags and account data as flat events."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from tests.conftest import HomeserverHarness
from tests.legacy.support import events, of_type, settle, stream_token
from tests.rooms.helpers import User, make_user


async def _pair(hs: HomeserverHarness) -> tuple[User, User, str]:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    return alice, bob, room_id


async def test_typing_is_an_event_of_its_room(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _pair(hs)
    token = await stream_token(bob)
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}
    )
    body = await events(bob, **{"from": token})
    assert of_type(body["chunk"], "m.typing") == [
        {"type": "m.typing", "room_id": room_id, "content": {"user_ids": [alice.user_id]}}
    ]
    await alice.request("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": False})
    body = await events(bob, **{"from": body["end"]})
    assert of_type(body["chunk"], "m.typing") == [
        {"type": "m.typing", "room_id": room_id, "content": {"user_ids": []}}
    ]


async def test_receipts_wake_a_waiting_stream(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _pair(hs)
    event_id = await alice.send(room_id, "read me")
    token = await stream_token(alice)
    poll = asyncio.ensure_future(events(alice, timeout=10_000, **{"from": token}))
    await settle()
    assert not poll.done()
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read/{quote(event_id)}", {})
    body = await asyncio.wait_for(poll, 5)
    [receipt] = of_type(body["chunk"], "m.receipt")
    assert receipt["room_id"] == room_id
    read = receipt["content"][event_id]["m.read"][bob.user_id]
    assert isinstance(read["ts"], int)


async def test_private_receipts_only_to_their_owner(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _pair(hs)
    event_id = await alice.send(room_id, "read me")
    alice_token, bob_token = await stream_token(alice), await stream_token(bob)
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read.private/{quote(event_id)}", {})
    assert not of_type((await events(alice, **{"from": alice_token}))["chunk"], "m.receipt")
    [own] = of_type((await events(bob, **{"from": bob_token}))["chunk"], "m.receipt")
    assert bob.user_id in own["content"][event_id]["m.read.private"]


async def test_tags_and_account_data(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    token = await stream_token(alice)
    poll = asyncio.ensure_future(events(alice, timeout=10_000, **{"from": token}))
    await settle()
    await alice.request("PUT", f"/user/{alice.user_id}/rooms/{room_id}/tags/work", {"order": 0.5})
    body = await asyncio.wait_for(poll, 5)
    assert of_type(body["chunk"], "m.tag") == [
        {"type": "m.tag", "room_id": room_id, "content": {"tags": {"work": {"order": 0.5}}}}
    ]
    await alice.request("PUT", f"/user/{alice.user_id}/account_data/my.type", {"cats": 1})
    await alice.request(
        "PUT", f"/user/{alice.user_id}/rooms/{room_id}/account_data/my.type", {"rats": 2}
    )
    body = await events(alice, **{"from": body["end"]})
    assert of_type(body["chunk"], "my.type") == [
        {"type": "my.type", "content": {"cats": 1}},
        {"type": "my.type", "room_id": room_id, "content": {"rats": 2}},
    ]
    await alice.request("DELETE", f"/user/{alice.user_id}/rooms/{room_id}/tags/work")
    body = await events(alice, **{"from": body["end"]})
    assert of_type(body["chunk"], "m.tag") == [
        {"type": "m.tag", "room_id": room_id, "content": {"tags": {}}}
    ]


async def test_presence_of_room_mates(hs: HomeserverHarness) -> None:
    alice, bob, _room_id = await _pair(hs)
    stranger = await make_user(hs, "stranger")
    await events(bob)  # bob is online
    token = await stream_token(bob)
    await alice.request(
        "PUT", f"/presence/{alice.user_id}/status", {"presence": "online", "status_msg": "hi"}
    )
    await stranger.request("PUT", f"/presence/{stranger.user_id}/status", {"presence": "online"})
    body = await events(bob, **{"from": token})
    presence = of_type(body["chunk"], "m.presence")
    assert [p["content"]["user_id"] for p in presence] == [alice.user_id]
    [event] = presence
    assert event["sender"] == alice.user_id
    assert event["content"]["presence"] == "online"
    assert event["content"]["status_msg"] == "hi"


async def test_joining_brings_the_members_presence(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await alice.request("PUT", f"/presence/{alice.user_id}/status", {"presence": "online"})
    token = await stream_token(bob)
    await bob.join(room_id)
    body = await events(bob, **{"from": token})
    users = {p["content"]["user_id"] for p in of_type(body["chunk"], "m.presence")}
    assert alice.user_id in users
