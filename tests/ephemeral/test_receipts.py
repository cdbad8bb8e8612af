"""Receipts and read markers: POST /receipt, POST /read_markers, m.receipt in /sync."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HomeserverHarness
from tests.ephemeral.support import ephemeral, long_poll, settle, sync_token
from tests.rooms.helpers import User, make_user


async def _room_of_two(hs: HomeserverHarness) -> tuple[User, User, str]:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    return alice, bob, room_id


def _receipts(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for event in ephemeral(body, room_id, "m.receipt"):
        for event_id, by_type in event["content"].items():
            for rtype, by_user in by_type.items():
                merged.setdefault(event_id, {}).setdefault(rtype, {}).update(by_user)
    return merged


async def test_receipt_reaches_members_live(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    event_id = await alice.send(room_id, "read me")
    since = await sync_token(alice)
    poll = long_poll(alice, since)
    await settle()
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
    body = await asyncio.wait_for(poll, 5)
    receipts = _receipts(body, room_id)
    data = receipts[event_id]["m.read"][bob.user_id]
    assert isinstance(data["ts"], int) and "thread_id" not in data
    # an initial sync shows it too
    assert bob.user_id in _receipts(await alice.sync(), room_id)[event_id]["m.read"]


async def test_private_receipts_only_reach_their_owner(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    event_id = await alice.send(room_id, "secret read")
    alice_since = await sync_token(alice)
    bob_since = await sync_token(bob)
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read.private/{event_id}", {})
    assert _receipts(await alice.sync(since=alice_since), room_id) == {}
    assert _receipts(await alice.sync(), room_id) == {}
    mine = _receipts(await bob.sync(since=bob_since), room_id)
    assert bob.user_id in mine[event_id]["m.read.private"]


async def test_receipts_only_move_forward(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    older = await alice.send(room_id, "one")
    newer = await alice.send(room_id, "two")
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read/{newer}", {})
    since = await sync_token(alice)
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read/{older}", {})
    assert _receipts(await alice.sync(since=since), room_id) == {}
    receipts = _receipts(await alice.sync(), room_id)
    assert bob.user_id in receipts[newer]["m.read"]
    assert older not in receipts


async def test_threaded_receipts(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    root = await alice.send(room_id, "root")
    reply = await alice.send(
        room_id, "in thread", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    )
    path = f"/rooms/{room_id}/receipt/m.read"
    await bob.request("POST", f"{path}/{root}", {"thread_id": "main"})
    await bob.request("POST", f"{path}/{reply}", {"thread_id": root})
    await bob.request("POST", f"{path}/{root}", {})
    receipts = _receipts(await alice.sync(), room_id)
    assert receipts[reply]["m.read"][bob.user_id]["thread_id"] == root
    # the unthreaded receipt on root replaced nothing of the "main" one (same event)
    assert receipts[root]["m.read"][bob.user_id] in (
        {"ts": hs.clock.time_ms()},
        {"ts": hs.clock.time_ms(), "thread_id": "main"},
    )
    # a thread event is not in "main"; the root is not in another thread
    err = await bob.request("POST", f"{path}/{reply}", {"thread_id": "main"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    other = await alice.send(room_id, "elsewhere")
    err = await bob.request("POST", f"{path}/{other}", {"thread_id": root}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"


async def test_read_markers(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    first = await alice.send(room_id, "one")
    second = await alice.send(room_id, "two")
    since = await sync_token(bob)
    alice_since = await sync_token(alice)
    await bob.request(
        "POST",
        f"/rooms/{room_id}/read_markers",
        {"m.fully_read": second, "m.read": second, "m.read.private": first},
    )
    body = await bob.sync(since=since)
    room = body["rooms"]["join"][room_id]
    assert {"type": "m.fully_read", "content": {"event_id": second}} in room["account_data"][
        "events"
    ]
    receipts = _receipts(body, room_id)
    assert bob.user_id in receipts[second]["m.read"]
    assert bob.user_id in receipts[first]["m.read.private"]
    others = _receipts(await alice.sync(since=alice_since), room_id)
    assert first not in others and bob.user_id in others[second]["m.read"]
    got = await bob.request("GET", f"/user/{bob.user_id}/rooms/{room_id}/account_data/m.fully_read")
    assert got == {"event_id": second}
    # the fully read marker does not move back; m.fully_read via /receipt works
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.fully_read/{first}", {})
    got = await bob.request("GET", f"/user/{bob.user_id}/rooms/{room_id}/account_data/m.fully_read")
    assert got == {"event_id": second}
    third = await alice.send(room_id, "three")
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.fully_read/{third}", {})
    got = await bob.request("GET", f"/user/{bob.user_id}/rooms/{room_id}/account_data/m.fully_read")
    assert got == {"event_id": third}


async def test_receipt_errors(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    carol = await make_user(hs, "carol")
    event_id = await alice.send(room_id, "hi")
    base = f"/rooms/{room_id}/receipt"
    err = await bob.request("POST", f"{base}/m.bogus/{event_id}", {}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await carol.request("POST", f"{base}/m.read/{event_id}", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await bob.request("POST", f"{base}/m.read/$unknown", {}, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    other_room = await alice.create_room()
    elsewhere = await alice.send(other_room, "elsewhere")
    err = await bob.request("POST", f"{base}/m.read/{elsewhere}", {}, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    for bad in ({"thread_id": ""}, {"thread_id": 5}):
        err = await bob.request("POST", f"{base}/m.read/{event_id}", bad, expect=400)
        assert err["errcode"] == "M_INVALID_PARAM"
    err = await bob.request(
        "POST", f"{base}/m.fully_read/{event_id}", {"thread_id": "main"}, expect=400
    )
    assert err["errcode"] == "M_INVALID_PARAM"
    resp = await hs.client.post(
        f"/_matrix/client/v3{base}/m.read/{event_id}", data=b"[", headers=bob.auth
    )
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    resp = await hs.client.post(f"/_matrix/client/v3{base}/m.read/{event_id}", json={})
    assert resp.status == 401
    markers = f"/rooms/{room_id}/read_markers"
    err = await bob.request("POST", markers, {"m.fully_read": 5}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await carol.request("POST", markers, {"m.fully_read": event_id}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await bob.request(
        "POST", markers, {"m.read": event_id, "m.fully_read": "$nope"}, expect=404
    )
    assert err["errcode"] == "M_NOT_FOUND"
    # nothing was stored by the failed requests
    assert _receipts(await alice.sync(), room_id) == {}
    body = await bob.sync()
    assert body["rooms"]["join"][room_id]["account_data"]["events"] == []
