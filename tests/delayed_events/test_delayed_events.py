"""MSC4140 delayed events: scheduling through send and state, the management
endpoints, the ticker, and the cancellation by someone else's state."""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import User, make_user

MGMT = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
DELAY = "org.matrix.msc4140.delay"


async def enabled(make_homeserver: HarnessFactory, **extra: Any) -> HomeserverHarness:
    return await make_homeserver(max_event_delay_duration="1h", **extra)


async def timeline(user: User, room_id: str) -> list[str]:
    body = await user.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=50")
    return [e["content"].get("body") for e in body["chunk"] if e["type"] == "m.room.message"]


async def pending(hs: HomeserverHarness, user: User) -> list[dict[str, Any]]:
    resp = await hs.client.get(MGMT, headers=user.auth)
    assert resp.status == 200
    return list((await resp.json())["delayed_events"])


async def test_a_delayed_message_is_sent_when_due(make_homeserver: HarnessFactory) -> None:
    hs = await enabled(make_homeserver)
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    body = await alice.request(
        "PUT",
        f"/rooms/{room}/send/m.room.message/t1?{DELAY}=5000",
        {"msgtype": "m.text", "body": "later"},
    )
    delay_id = body["delay_id"]
    assert "event_id" not in body
    [entry] = await pending(hs, alice)
    assert entry["delay_id"] == delay_id and entry["delay"] == 5000
    assert entry["room_id"] == room and entry["type"] == "m.room.message"
    assert entry["content"]["body"] == "later" and "state_key" not in entry
    assert entry["running_since"] == hs.clock.time_ms()
    service = hs.server.client.delayed_events
    hs.clock.advance(4.9)
    await service.tick()
    assert "later" not in await timeline(alice, room)
    hs.clock.advance(0.2)
    await service.tick()
    assert "later" in await timeline(alice, room)
    assert await pending(hs, alice) == []


async def test_cancel_restart_and_send_by_delay_id(make_homeserver: HarnessFactory) -> None:
    hs = await enabled(make_homeserver)
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    ids = []
    for text in ("a", "b", "c"):
        body = await alice.request(
            "PUT",
            f"/rooms/{room}/send/m.room.message/{text}?{DELAY}=10000",
            {"msgtype": "m.text", "body": text},
        )
        ids.append(body["delay_id"])
    # the delay ID is the secret: no access token needed
    resp = await hs.client.post(f"{MGMT}/{ids[0]}", json={"action": "cancel"})
    assert resp.status == 200 and await resp.json() == {}
    hs.clock.advance(8)
    resp = await hs.client.post(f"{MGMT}/{ids[1]}/restart")
    assert resp.status == 200
    resp = await hs.client.post(f"{MGMT}/{ids[2]}", json={"action": "send"}, headers=alice.auth)
    assert resp.status == 200
    assert await timeline(alice, room) == ["c"]
    hs.clock.advance(5)  # 13 s after scheduling: b was restarted at 8 s
    await hs.server.client.delayed_events.tick()
    assert await timeline(alice, room) == ["c"]
    hs.clock.advance(6)
    await hs.server.client.delayed_events.tick()
    assert await timeline(alice, room) == ["b", "c"]
    for path in (f"{MGMT}/{ids[0]}/cancel", f"{MGMT}/{ids[1]}/send", f"{MGMT}/nope/restart"):
        resp = await hs.client.post(path, headers=alice.auth)
        assert resp.status == 404 and (await resp.json())["errcode"] == "M_NOT_FOUND"


async def test_delayed_state_and_its_cancellation_by_another_user(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await enabled(make_homeserver)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.power_levels",
        await alice.state(room, "m.room.power_levels") | {"events_default": 0, "state_default": 0},
    )
    first = await alice.request(
        "PUT", f"/rooms/{room}/state/org.example.call/x?{DELAY}=1000", {"left": True}
    )
    mine = await alice.request(
        "PUT", f"/rooms/{room}/state/org.example.call/y?{DELAY}=1000", {"left": True}
    )
    [entry, _other] = await pending(hs, alice)
    assert entry["state_key"] in ("x", "y")
    # bob sets x first: alice's pending x goes; alice's own update of y keeps hers
    await bob.request("PUT", f"/rooms/{room}/state/org.example.call/x", {"by": "bob"})
    await alice.request("PUT", f"/rooms/{room}/state/org.example.call/y", {"by": "alice"})
    left = [e["delay_id"] for e in await pending(hs, alice)]
    assert left == [mine["delay_id"]] and first["delay_id"] not in left
    hs.clock.advance(2)
    await hs.server.client.delayed_events.tick()
    assert await alice.state(room, "org.example.call", "x") == {"by": "bob"}
    assert await alice.state(room, "org.example.call", "y") == {"left": True}


async def test_refusals(make_homeserver: HarnessFactory) -> None:
    off = await make_homeserver()
    alice = await make_user(off, "alice")
    room = await alice.create_room(preset="public_chat")
    versions = await (await off.client.get("/_matrix/client/versions")).json()
    assert versions["unstable_features"]["org.matrix.msc4140"] is False
    refused = await alice.request(
        "PUT", f"/rooms/{room}/send/m.room.message/t?{DELAY}=10", {"body": "x"}, expect=403
    )
    assert refused["errcode"] == "M_FORBIDDEN"
    assert await timeline(alice, room) == []

    hs = await enabled(make_homeserver)
    versions = await (await hs.client.get("/_matrix/client/versions")).json()
    assert versions["unstable_features"]["org.matrix.msc4140"] is True
    bob = await make_user(hs, "bob")
    room = await bob.create_room(preset="public_chat")
    too_long = await bob.request(
        "PUT", f"/rooms/{room}/send/m.room.message/t?{DELAY}=3600001", {"body": "x"}, expect=403
    )
    assert too_long["errcode"] == "M_FORBIDDEN"
    for bad in ("-5", "soon"):
        resp = await bob.request(
            "PUT", f"/rooms/{room}/send/m.room.message/t?{DELAY}={bad}", {"body": "x"}, expect=400
        )
        assert resp["errcode"] == "M_INVALID_PARAM"
    unknown = await bob.request(
        "PUT",
        f"/rooms/!nowhere:test.local/send/m.room.message/t?{DELAY}=5",
        {"body": "x"},
        expect=404,
    )
    assert unknown["errcode"] == "M_NOT_FOUND"
    resp = await hs.client.post(f"{MGMT}/whatever", json={"action": "explode"})
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_INVALID_PARAM"
    resp = await hs.client.post(f"{MGMT}/whatever", json={})
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_MISSING_PARAM"
    resp = await hs.client.get(MGMT)
    assert resp.status == 401
    assert await pending(hs, bob) == []


async def test_per_user_limit(make_homeserver: HarnessFactory) -> None:
    hs = await enabled(make_homeserver)
    hs.server.client.delayed_events._max_per_user = 2
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    for n in range(2):
        await alice.request(
            "PUT", f"/rooms/{room}/send/m.room.message/t{n}?{DELAY}={1000 * (n + 1)}", {"body": "x"}
        )
    full = await alice.request(
        "PUT", f"/rooms/{room}/send/m.room.message/t9?{DELAY}=5000", {"body": "x"}, expect=429
    )
    assert full["errcode"] == "M_LIMIT_EXCEEDED" and full["retry_after_ms"] == 1000
