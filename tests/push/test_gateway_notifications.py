"""What a push gateway hears: room names, invites, muted rooms, any data format, and
badge-only pushes after a read receipt (Push Gateway API: notify)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from homeserver.push.gateway import room_details
from tests.conftest import HarnessFactory
from tests.push.support import (
    LOOPBACK_OK,
    PUSHKEY,
    Gateway,
    eventually,
    pool,
    pusher_body,
    room_with_pusher,
)
from tests.rooms.helpers import make_user


def messages(gateway: Gateway) -> list[dict[str, Any]]:
    """The notifications of events (badge-only pushes have no type)."""
    return [r["notification"] for r in gateway.received if r["notification"].get("type")]


async def test_room_is_named_by_its_name_else_its_canonical_alias(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await bob.create_room(preset="public_chat")
    await alice.join(room_id)
    await alice.request("POST", "/pushers/set", pusher_body(gateway.url))
    await bob.send(room_id, "no name yet")
    await eventually(lambda: len(messages(gateway)) == 1)
    assert "room_name" not in messages(gateway)[0] and "room_alias" not in messages(gateway)[0]
    alias = "#tea:test.local"
    await bob.request("PUT", f"/directory/room/{quote(alias)}", {"room_id": room_id})
    await bob.request("PUT", f"/rooms/{room_id}/state/m.room.canonical_alias", {"alias": alias})
    await bob.send(room_id, "aliased")
    await eventually(lambda: len(messages(gateway)) == 2)
    assert messages(gateway)[1]["room_name"] == alias
    assert messages(gateway)[1]["room_alias"] == alias
    await bob.request("PUT", f"/rooms/{room_id}/state/m.room.name", {"name": "Tea Room"})
    await bob.send(room_id, "named")
    await eventually(lambda: len(messages(gateway)) == 3)
    assert messages(gateway)[2]["room_name"] == "Tea Room"
    assert messages(gateway)[2]["room_alias"] == alias
    # an empty name is no name
    await bob.request("PUT", f"/rooms/{room_id}/state/m.room.name", {"name": ""})
    await bob.send(room_id, "unnamed")
    await eventually(lambda: len(messages(gateway)) == 4)
    assert messages(gateway)[3]["room_name"] == alias


async def test_invites_are_pushed_with_their_membership(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await alice.request("POST", "/pushers/set", pusher_body(gateway.url))
    room_id = await bob.create_room(preset="private_chat", name="Secret")
    await bob.invite(room_id, alice.user_id)
    await eventually(lambda: len(messages(gateway)) == 1)
    invite = messages(gateway)[0]
    assert invite["type"] == "m.room.member"
    assert invite["membership"] == "invite" and invite["user_is_target"] is True
    assert invite["room_id"] == room_id and invite["sender"] == bob.user_id
    assert invite["id"] == invite["event_id"]
    assert invite["room_name"] == "Secret"
    assert invite["counts"] == {"unread": 1}


async def test_unknown_data_format_gets_full_notifications(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    body = pusher_body(gateway.url)
    body["data"]["format"] = "id_event_only"
    await alice.request("POST", "/pushers/set", body)
    shown = (await alice.request("GET", "/pushers"))["pushers"]
    assert shown[0]["data"] == {"url": gateway.url, "custom": "x", "format": "id_event_only"}
    await bob.send(room_id, "hello")
    await eventually(lambda: len(messages(gateway)) == 1)
    notification = messages(gateway)[0]
    assert notification["content"]["body"] == "hello" and notification["sender"] == bob.user_id
    assert notification["devices"][0]["data"] == {"custom": "x", "format": "id_event_only"}


async def test_muted_room_pushes_only_what_another_rule_notifies(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(push={"legacy_mention_rules": False}, **LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    await alice.request(
        "PUT", f"/pushrules/global/room/{quote(room_id)}", {"actions": ["dont_notify"]}
    )
    await bob.send(room_id, "not pushed")
    # (without the legacy rules a mention in the body alone is not one: spec v1.17
    # no longer lists those default rules)
    await bob.send(room_id, f"hey {alice.user_id}")
    mention = await bob.send(room_id, "hey you", **{"m.mentions": {"user_ids": [alice.user_id]}})
    await eventually(lambda: len(messages(gateway)) == 1)
    assert messages(gateway)[0]["event_id"] == mention
    assert messages(gateway)[0]["devices"][0]["tweaks"]["highlight"] is True


async def test_read_receipt_sends_the_new_badge(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    await bob.send(room_id, "one")
    second = await bob.send(room_id, "two")
    await eventually(lambda: len(messages(gateway)) == 2)
    assert messages(gateway)[1]["counts"] == {"unread": 2}
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{second}", {})
    await eventually(lambda: len(gateway.received) == 3)
    badge = gateway.received[2]["notification"]
    assert set(badge) == {"counts", "devices"}
    assert badge["counts"] == {"unread": 0}
    device = badge["devices"][0]
    assert (device["app_id"], device["pushkey"], device["data"]) == (
        "com.example.app.ios",
        PUSHKEY,
        {"custom": "x"},
    )
    # the same count again is not sent again
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{second}", {})
    third = await bob.send(room_id, "three")
    await eventually(lambda: len(gateway.received) == 4)
    assert gateway.received[3]["notification"]["event_id"] == third


async def test_badge_counts_rooms_the_user_is_in(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    other = await bob.create_room(preset="public_chat")
    await alice.join(other)
    await bob.send(other, "in the room alice will leave")
    await eventually(lambda: len(messages(gateway)) == 1)
    await alice.leave(other)
    last = await bob.send(room_id, "here")
    await eventually(lambda: len(messages(gateway)) == 2)
    # the unread message of the room alice left no longer counts
    assert messages(gateway)[1]["counts"] == {"unread": 1}
    assert messages(gateway)[1]["event_id"] == last


async def test_failed_badge_is_not_retried(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    first = await bob.send(room_id, "one")
    await eventually(lambda: len(messages(gateway)) == 1)
    gateway.status = 500
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{first}", {})
    await eventually(lambda: gateway.attempts == 2)
    pusher = pool(hs).pusher(alice.user_id, "com.example.app.ios", PUSHKEY)
    assert pusher is not None and pusher.next_attempt_ms is None and pusher.failures == 0
    gateway.status = 200
    await asyncio.sleep(0.05)
    assert gateway.attempts == 2
    # the next event's push carries the count
    second = await bob.send(room_id, "two")
    await eventually(lambda: len(messages(gateway)) == 2)
    assert messages(gateway)[1]["event_id"] == second
    assert messages(gateway)[1]["counts"] == {"unread": 1}


async def test_badge_rejected_pushkey_removes_the_pusher(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    first = await bob.send(room_id, "one")
    await eventually(lambda: len(messages(gateway)) == 1)
    gateway.rejected = [PUSHKEY]
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{first}", {})
    await eventually(lambda: pool(hs).pusher(alice.user_id, "com.example.app.ios", PUSHKEY) is None)
    assert (await alice.request("GET", "/pushers"))["pushers"] == []


def test_room_details_from_naming_state() -> None:
    bob = "@bob:test.local"
    member = ("m.room.member", bob)
    name = ("m.room.name", "")
    alias = ("m.room.canonical_alias", "")
    assert room_details({}, bob) == {}
    assert room_details(
        {member: {"displayname": "Bob"}, name: {"name": "Tea"}, alias: {"alias": "#t:x"}}, bob
    ) == {"sender_display_name": "Bob", "room_name": "Tea", "room_alias": "#t:x"}
    assert room_details({name: {"name": ""}, alias: {"alias": "#t:x"}}, bob) == {
        "room_name": "#t:x",
        "room_alias": "#t:x",
    }
    # values that are not (non-empty) strings are no names
    assert (
        room_details(
            {member: {"displayname": 5}, name: {"name": ["x"]}, alias: {"alias": None}}, bob
        )
        == {}
    )
    # another member's display name is not the sender's
    assert room_details({("m.room.member", "@eve:x"): {"displayname": "Eve"}}, bob) == {}


async def test_body_mention_in_a_muted_room_with_legacy_rules(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(push={"legacy_mention_rules": True}, **LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    await alice.request(
        "PUT", f"/pushrules/global/room/{quote(room_id)}", {"actions": ["dont_notify"]}
    )
    await bob.send(room_id, "not pushed")
    mention = await bob.send(room_id, f"Second message - {alice.user_id}")
    await eventually(lambda: len(messages(gateway)) == 1)
    assert messages(gateway)[0]["event_id"] == mention
    assert messages(gateway)[0]["devices"][0]["tweaks"]["highlight"] is True


async def test_unanswered_badge_does_not_hold_up_event_pushes(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    first = await bob.send(room_id, "one")
    await eventually(lambda: len(messages(gateway)) == 1)
    gateway.hold_badges = True
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{first}", {})
    await eventually(lambda: len(gateway.received) == 2)  # the badge, unanswered
    second = await bob.send(room_id, "two")
    await eventually(lambda: len(messages(gateway)) == 2)
    assert messages(gateway)[1]["event_id"] == second
    gateway.release.set()
