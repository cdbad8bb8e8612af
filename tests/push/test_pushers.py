"""Pushers: the API, and delivery to a real push gateway on loopback (retries with
backoff, nothing lost across a restart, rejected pushkeys, the address blacklist)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.push.support import (
    LOOPBACK_OK,
    PUSHKEY,
    Gateway,
    eventually,
    pool,
    pusher_body,
    room_with_pusher,
    serve_gateway,
)
from tests.rooms.helpers import make_user

# -- the API ---------------------------------------------------------------------------------


async def test_set_get_and_delete_pushers(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    assert await alice.request("GET", "/pushers") == {"pushers": []}
    url = "https://push.example.com/_matrix/push/v1/notify"
    await alice.request("POST", "/pushers/set", pusher_body(url, profile_tag="xyz"))
    pushers = (await alice.request("GET", "/pushers"))["pushers"]
    assert pushers == [
        {
            "pushkey": PUSHKEY,
            "kind": "http",
            "app_id": "com.example.app.ios",
            "app_display_name": "Example",
            "device_display_name": "Alice's phone",
            "profile_tag": "xyz",
            "lang": "en",
            "data": {"url": url, "custom": "x"},
        }
    ]
    # updating keeps one pusher
    await alice.request("POST", "/pushers/set", pusher_body(url, lang="fr"))
    pushers = (await alice.request("GET", "/pushers"))["pushers"]
    assert len(pushers) == 1 and pushers[0]["lang"] == "fr"
    # the same app ID and pushkey for another user replaces alice's, unless append
    bob = await make_user(hs, "bob")
    await bob.request("POST", "/pushers/set", pusher_body(url, append=True))
    assert len((await alice.request("GET", "/pushers"))["pushers"]) == 1
    await bob.request("POST", "/pushers/set", pusher_body(url))
    assert (await alice.request("GET", "/pushers"))["pushers"] == []
    assert len((await bob.request("GET", "/pushers"))["pushers"]) == 1
    delete = {"kind": None, "app_id": "com.example.app.ios", "pushkey": PUSHKEY}
    await bob.request("POST", "/pushers/set", delete)
    assert (await bob.request("GET", "/pushers"))["pushers"] == []
    await bob.request("POST", "/pushers/set", delete)  # deleting nothing is fine


async def test_pusher_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    good = "https://push.example.com/_matrix/push/v1/notify"
    await alice.request("POST", "/pushers/set", pusher_body(good))
    before = await alice.request("GET", "/pushers")
    base = pusher_body(good)
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in base.items() if k != "kind"}, "M_MISSING_PARAM"),
        ({k: v for k, v in base.items() if k != "app_id"}, "M_MISSING_PARAM"),
        ({k: v for k, v in base.items() if k != "pushkey"}, "M_MISSING_PARAM"),
        ({k: v for k, v in base.items() if k not in ("lang", "data")}, "M_MISSING_PARAM"),
        ({**base, "kind": 3}, "M_BAD_JSON"),
        ({**base, "data": "x"}, "M_BAD_JSON"),
        ({**base, "append": "yes"}, "M_BAD_JSON"),
        ({**base, "kind": "email"}, "M_INVALID_PARAM"),
        ({**base, "data": {}}, "M_INVALID_PARAM"),
        ({**base, "data": {"url": "ftp://x/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
        ({**base, "data": {"url": "https://push.example.com/notify"}}, "M_INVALID_PARAM"),
        ({**base, "data": {"url": good, "format": 5}}, "M_INVALID_PARAM"),
        ({**base, "pushkey": "k" * 513}, "M_INVALID_PARAM"),
        ({**base, "app_id": "a" * 65}, "M_INVALID_PARAM"),
    ]
    for body, errcode in cases:
        data = await alice.request("POST", "/pushers/set", body, expect=400)
        assert data["errcode"] == errcode, (body, data)
    assert await alice.request("GET", "/pushers") == before
    resp = await hs.client.get("/_matrix/client/v3/pushers")
    assert resp.status == 401


# -- delivery --------------------------------------------------------------------------------


async def test_gateway_receives_the_notification(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    event_id = await bob.send(room_id, "I'm floating in a most peculiar way.")
    await eventually(lambda: len(gateway.received) == 1)
    notification = gateway.received[0]["notification"]
    pushkey_ts = notification["devices"][0].pop("pushkey_ts")
    assert isinstance(pushkey_ts, int) and pushkey_ts == hs.clock.time_ms() // 1000
    assert notification == {
        "event_id": event_id,
        "id": event_id,  # the deprecated field older gateways read (as Synapse sends it)
        "room_id": room_id,
        "type": "m.room.message",
        "sender": bob.user_id,
        "sender_display_name": "bob",
        "room_name": "Mission Control",
        "prio": "high",
        "content": {"msgtype": "m.text", "body": "I'm floating in a most peculiar way."},
        "counts": {"unread": 1},
        "devices": [
            {
                "app_id": "com.example.app.ios",
                "pushkey": PUSHKEY,
                "data": {"custom": "x"},
                "tweaks": {"sound": "default"},
            }
        ],
    }
    # alice's own messages are not pushed to her
    await alice.send(room_id, "mine")
    second = await bob.send(room_id, "again")
    await eventually(lambda: len(gateway.received) == 2)
    assert gateway.received[1]["notification"]["event_id"] == second
    # alice's message read bob's first one (sending is a read receipt)
    assert gateway.received[1]["notification"]["counts"] == {"unread": 1}


async def test_event_id_only_and_no_content(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(push={"include_content": False}, **LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    await bob.send(room_id, "secret")
    await eventually(lambda: len(gateway.received) == 1)
    assert "content" not in gateway.received[0]["notification"]
    assert gateway.received[0]["notification"]["sender"] == bob.user_id
    body = pusher_body(gateway.url)
    body["data"]["format"] = "event_id_only"
    await alice.request("POST", "/pushers/set", body)
    event_id = await bob.send(room_id, "secret 2")
    await eventually(lambda: len(gateway.received) == 2)
    notification = gateway.received[1]["notification"]
    assert set(notification) == {"event_id", "room_id", "prio", "counts", "devices"}
    assert notification["event_id"] == event_id
    assert notification["devices"][0]["data"] == {"custom": "x", "format": "event_id_only"}


async def test_gateway_down_is_retried_with_backoff(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    pusher = pool(hs).pusher(alice.user_id, "com.example.app.ios", PUSHKEY)
    assert pusher is not None
    gateway.status = 500
    first = await bob.send(room_id, "one")
    await eventually(lambda: gateway.attempts == 1)
    await eventually(lambda: pusher.next_attempt_ms is not None)
    assert pusher.next_attempt_ms == hs.clock.time_ms() + 1000
    # not due yet: waking does not retry
    pool(hs).wake_all()
    await asyncio.sleep(0.05)
    assert gateway.attempts == 1
    hs.clock.advance(1)
    pool(hs).wake_all()
    await eventually(lambda: gateway.attempts == 2)
    await eventually(lambda: pusher.next_attempt_ms == hs.clock.time_ms() + 2000)  # doubled
    second = await bob.send(room_id, "two")
    gateway.status = 200
    hs.clock.advance(2)
    pool(hs).wake_all()
    await eventually(lambda: len(gateway.received) == 2)
    assert [r["notification"]["event_id"] for r in gateway.received] == [first, second]
    assert pusher.next_attempt_ms is None


async def test_nothing_lost_across_a_restart(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    first = await make_homeserver(**LOOPBACK_OK)
    _alice, bob, room_id = await room_with_pusher(first, gateway.url)
    gateway.status = 503
    event_id = await bob.send(room_id, "while the gateway is down")
    await eventually(lambda: gateway.attempts >= 1)
    await first.client.close()  # stops the pushers
    gateway.status = 200
    await make_homeserver(**LOOPBACK_OK)
    await eventually(lambda: len(gateway.received) == 1)
    assert gateway.received[0]["notification"]["event_id"] == event_id


async def test_rejected_pushkey_removes_the_pusher(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    gateway.rejected = [PUSHKEY]
    await bob.send(room_id, "hello")
    await eventually(lambda: len(gateway.received) == 1)
    await eventually(lambda: pool(hs).pusher(alice.user_id, "com.example.app.ios", PUSHKEY) is None)
    assert (await alice.request("GET", "/pushers"))["pushers"] == []
    await bob.send(room_id, "again")
    await asyncio.sleep(0.05)
    assert len(gateway.received) == 1


async def test_loopback_gateway_without_whitelist_is_refused(
    make_homeserver: HarnessFactory, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    hs = await make_homeserver()
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    # an IP address the blacklist refuses can never be delivered to: refused at once
    err = await alice.request("POST", "/pushers/set", pusher_body(gateway.url), expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    assert (await alice.request("GET", "/pushers"))["pushers"] == []
    # a name is only checked when it is resolved, at delivery: it fails with backoff and
    # says why in the log
    by_name = gateway.url.replace("127.0.0.1", "localhost")
    await alice.request("POST", "/pushers/set", pusher_body(by_name))
    pusher = pool(hs).pusher(alice.user_id, "com.example.app.ios", PUSHKEY)
    assert pusher is not None
    caplog.set_level(logging.WARNING, logger="homeserver.push.pushers")
    await bob.send(room_id, "hello")
    await eventually(lambda: pusher.failures >= 1)
    assert gateway.attempts == 0
    assert pusher.next_attempt_ms is not None
    assert any("ip_range_blacklist" in r.getMessage() for r in caplog.records)


async def test_a_redirect_to_a_blocked_address_is_not_followed(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    """The gateway on 127.0.0.1 is allowed; it answers 308 to one on 127.0.0.2, which
    the blacklist blocks: the redirect is a failed delivery, never followed."""
    blocked = Gateway()
    runner = await serve_gateway(blocked, "127.0.0.2")
    try:
        hs = await make_homeserver(ip_range_whitelist=["127.0.0.1/32"])
        gateway.redirect_to = blocked.url
        alice, bob, room_id = await room_with_pusher(hs, gateway.url)
        pusher = pool(hs).pusher(alice.user_id, "com.example.app.ios", PUSHKEY)
        assert pusher is not None
        await bob.send(room_id, "hello")
        await eventually(lambda: pusher.failures >= 1 or blocked.attempts > 0)
        assert blocked.attempts == 0 and blocked.received == []
        assert gateway.attempts == 1
        assert pusher.next_attempt_ms is not None
    finally:
        await runner.cleanup()
