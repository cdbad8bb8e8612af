"""GET /events: the legacy event stream of the user's rooms (client-server API r0)."""

from __future__ import annotations

import asyncio

from homeserver.streams import SyncToken
from tests.conftest import HomeserverHarness
from tests.legacy.support import events, of_type, settle, stream_token
from tests.rooms.helpers import make_user


async def test_stream_starts_now_and_carries_new_room_events(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    await alice.send(room_id, "before")
    first = await events(alice)
    assert set(first) == {"chunk", "start", "end"}
    assert not of_type(first["chunk"], "m.room.message")  # no from: starts now
    SyncToken.parse(first["start"])

    event_id = await alice.send(room_id, "after")
    body = await events(alice, **{"from": first["end"]})
    assert body["start"] == first["end"]
    [message] = of_type(body["chunk"], "m.room.message")
    assert message["event_id"] == event_id
    assert message["room_id"] == room_id
    assert message["content"]["body"] == "after"
    # the v1 format: the sender as user_id, unsigned's age at the top level too
    assert message["user_id"] == message["sender"] == alice.user_id
    assert message["age"] == message["unsigned"]["age"]
    assert "transaction_id" in message["unsigned"]

    again = await events(alice, **{"from": body["end"]})
    assert again["chunk"] == []
    assert again["end"] == body["end"]


async def test_state_event_shows_prev_content_at_top_level(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "one"})
    token = await stream_token(alice)
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "two"})
    [topic] = of_type((await events(alice, **{"from": token}))["chunk"], "m.room.topic")
    assert topic["content"] == {"topic": "two"}
    assert topic["prev_content"] == {"topic": "one"}
    assert topic["replaces_state"] == topic["unsigned"]["replaces_state"]


async def test_paging_with_limit_sees_every_event_once_in_order(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_a = await alice.create_room(preset="public_chat")
    room_b = await alice.create_room(preset="public_chat")
    await bob.join(room_a)
    token = await stream_token(alice)
    sent = []
    for i in range(7):
        sent.append(await alice.send(room_a if i % 2 else room_b, f"m{i}"))
    sent.append(await bob.send(room_a, "from bob"))
    seen: list[str] = []
    for _ in range(10):
        body = await events(alice, limit=3, **{"from": token})
        room_events = [e for e in body["chunk"] if "event_id" in e]
        assert len(room_events) <= 3
        seen += [e["event_id"] for e in room_events]
        token = body["end"]
        if not body["chunk"]:
            break
    assert seen == sent


async def test_long_poll_wakes_on_a_new_event(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    other = await bob.create_room()
    # bob is online already: his message elsewhere changes nothing of his presence
    await bob.request("PUT", f"/presence/{bob.user_id}/status", {"presence": "online"})
    token = await stream_token(alice)
    poll = asyncio.ensure_future(events(alice, timeout=10_000, **{"from": token}))
    await settle()
    await bob.send(other, "not for alice")
    await settle()
    assert not poll.done()
    event_id = await bob.send(room_id, "for alice")
    body = await asyncio.wait_for(poll, 5)
    assert [e["event_id"] for e in of_type(body["chunk"], "m.room.message")] == [event_id]


async def test_long_poll_times_out_empty(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.create_room()
    token = await stream_token(alice)
    loop = asyncio.get_running_loop()
    started = loop.time()
    body = await events(alice, timeout=150, **{"from": token})
    assert loop.time() - started >= 0.1
    assert body == {"chunk": [], "start": token, "end": token}


async def test_own_membership_changes_in_rooms_not_joined(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room()
    token = await stream_token(bob)
    await alice.invite(room_id, bob.user_id)
    body = await events(bob, **{"from": token})
    [invite] = of_type(body["chunk"], "m.room.member")
    assert invite["state_key"] == bob.user_id
    assert invite["content"]["membership"] == "invite"

    await bob.join(room_id)
    await alice.send(room_id, "while bob is in")
    await alice.request("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id})
    await alice.send(room_id, "after bob left")
    body = await events(bob, **{"from": body["end"]})
    seen = [
        (e["type"], e["content"].get("membership") or e["content"].get("body"))
        for e in body["chunk"]
        if "event_id" in e
    ]
    assert seen == [
        ("m.room.member", "join"),
        ("m.room.message", "while bob is in"),
        ("m.room.member", "leave"),
    ]
    body = await events(bob, **{"from": body["end"]})
    assert not [e for e in body["chunk"] if "event_id" in e]


async def test_ignored_users_messages_are_left_out(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await alice.request(
        "PUT",
        f"/user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {bob.user_id: {}}},
    )
    token = await stream_token(alice)
    await bob.send(room_id, "ignored")
    kept = await alice.send(room_id, "mine")
    body = await events(alice, **{"from": token})
    assert [e["event_id"] for e in of_type(body["chunk"], "m.room.message")] == [kept]


async def test_stream_makes_the_user_present(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    status = f"/presence/{alice.user_id}/status"
    assert (await alice.request("GET", status))["presence"] == "offline"
    await events(alice)
    assert (await alice.request("GET", status))["presence"] == "online"


async def test_bad_parameters(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    token = await stream_token(alice)
    for params, errcode in [
        ({"limit": "hello"}, "M_INVALID_PARAM"),
        ({"limit": "-2"}, "M_INVALID_PARAM"),
        ({"timeout": "hello"}, "M_INVALID_PARAM"),
        ({"timeout": "-1"}, "M_INVALID_PARAM"),
        ({"from": "nonsense"}, "M_UNKNOWN"),
        ({"from": "t12-3"}, "M_UNKNOWN"),
    ]:
        err = await events(alice, expect=400, **{"from": token, **params})
        assert err["errcode"] == errcode, params
    # nothing was consumed by the failures: the stream still has the message
    event_id = await alice.send(room_id, "still here")
    body = await events(alice, **{"from": token})
    assert [e["event_id"] for e in of_type(body["chunk"], "m.room.message")] == [event_id]
    resp = await hs.client.get("/_matrix/client/v3/events")
    assert resp.status == 401
    assert (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_served_under_the_old_prefixes(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    for prefix in ("/_matrix/client/r0", "/_matrix/client/api/v1"):
        resp = await hs.client.get(prefix + "/events", params={"timeout": "0"}, headers=alice.auth)
        assert resp.status == 200
        assert set(await resp.json()) == {"chunk", "start", "end"}


async def test_a_token_from_the_future_reads_nothing_and_comes_back_to_now(
    hs: HomeserverHarness,
) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    ahead = SyncToken(*(10**15 for _ in range(8))).serialize()
    body = await events(alice, **{"from": ahead})
    assert body["chunk"] == [] and body["start"] == ahead
    event_id = await alice.send(room_id, "next")
    body = await events(alice, **{"from": body["end"]})
    assert [e["event_id"] for e in of_type(body["chunk"], "m.room.message")] == [event_id]
