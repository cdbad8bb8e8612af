"""Redactions through the API: own and others' events, power, idempotency, room versions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


async def _redact(
    user: User, room: str, event_id: str, txn: str, body: Any = None, expect: int = 200
) -> Any:
    return await user.request(
        "PUT", f"/rooms/{room}/redact/{event_id}/{txn}", {} if body is None else body, expect
    )


async def _event(user: User, room: str, event_id: str) -> Any:
    return await user.request("GET", f"/rooms/{room}/event/{event_id}")


@pytest.mark.parametrize("version", ["1", "6", "10", "11", "12"])
async def test_redact_own_message(hs: HomeserverHarness, version: str) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(room_version=version)
    event_id = await alice.send(room, "oops", extra="secret")
    data = await _redact(alice, room, event_id, "r1", {"reason": "typo"})
    redaction_id = data["event_id"]
    served = await _event(alice, room, event_id)
    assert served["content"] == {}
    assert served["unsigned"]["redacted_by"] == redaction_id  # as Synapse
    because = served["unsigned"]["redacted_because"]
    assert because["event_id"] == redaction_id
    assert because["content"]["reason"] == "typo"
    assert because["redacts"] == event_id
    if version in ("11", "12"):
        assert because["content"]["redacts"] == event_id  # moved into content from v11
    redaction = await _event(alice, room, redaction_id)
    assert redaction["type"] == "m.room.redaction" and redaction["redacts"] == event_id
    # the same transaction gives the same redaction
    again = await _redact(alice, room, event_id, "r1", {"reason": "typo"})
    assert again["event_id"] == redaction_id


async def test_redact_state_event_serves_redacted_state(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(topic="old topic", room_version="11")
    topic_id = (
        await alice.request("PUT", f"/rooms/{room}/state/m.room.topic/", {"topic": "new topic"})
    )["event_id"]
    await _redact(alice, room, topic_id, "r-topic")
    assert await alice.state(room, "m.room.topic") == {}
    full = await alice.request("GET", f"/rooms/{room}/state")
    topic = next(e for e in full if e["type"] == "m.room.topic")
    assert topic["content"] == {} and "redacted_because" in topic["unsigned"]
    # a redacted join still counts as joined
    member_id = (
        await alice.request(
            "GET", f"/rooms/{room}/state/m.room.member/{alice.user_id}?format=event"
        )
    )["event_id"]
    await _redact(alice, room, member_id, "r-member")
    member = await alice.state(room, "m.room.member", alice.user_id)
    assert member == {"membership": "join"}
    await alice.send(room, "still here")


async def test_redacting_others_needs_power(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room = await alice.create_room(preset="public_chat", room_version="10")
    await bob.join(room)
    await carol.join(room)
    alice_msg = await alice.send(room, "from alice")
    carol_msg = await carol.send(room, "from carol")
    before = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events")
    err = await _redact(bob, room, carol_msg, "b1", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await _redact(bob, room, alice_msg, "b2", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events") == before
    assert (await _event(bob, room, carol_msg))["content"]["body"] == "from carol"
    # a moderator (the creator, at 100) may redact anyone's event
    await _redact(alice, room, carol_msg, "a1", {"reason": "moderation"})
    assert (await _event(bob, room, carol_msg))["content"] == {}
    # lowering the redact level lets bob redact too
    levels = await alice.state(room, "m.room.power_levels")
    levels["redact"] = 0
    await alice.request("PUT", f"/rooms/{room}/state/m.room.power_levels/", levels)
    await _redact(bob, room, alice_msg, "b3")
    assert (await _event(carol, room, alice_msg))["content"] == {}


async def test_server_admin_may_redact_local_users(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    admin = await make_user(hs, "admin")
    await hs.server.stores.accounts.set_admin(admin.user_id, True)
    room = await alice.create_room(preset="public_chat")
    await admin.join(room)
    event_id = await alice.send(room, "bad")
    await _redact(admin, room, event_id, "adm1")
    assert (await _event(alice, room, event_id))["content"] == {}


async def test_redaction_through_send(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(room_version="11")
    event_id = await alice.send(room, "gone soon")
    data = await alice.request(
        "PUT",
        f"/rooms/{room}/send/m.room.redaction/s1",
        {"redacts": event_id, "reason": "why not"},
    )
    served = await _event(alice, room, event_id)
    assert served["content"] == {}
    assert served["unsigned"]["redacted_because"]["event_id"] == data["event_id"]
    err = await alice.request(
        "PUT", f"/rooms/{room}/send/m.room.redaction/s2", {"reason": "x"}, expect=400
    )
    assert err["errcode"] == "M_MISSING_PARAM"


async def test_redaction_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    other_room = await alice.create_room()
    await bob.join(room)
    event_id = await alice.send(room, "keep")
    elsewhere = await alice.send(other_room, "elsewhere")
    before = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events")
    err = await _redact(bob, room, "$unknown", "e1", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    # an event of another room: refused whoever asks (as Synapse), even a room admin
    err = await _redact(bob, room, elsewhere, "e2", expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await _redact(alice, room, elsewhere, "e2b", expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    assert (await _event(alice, other_room, elsewhere))["content"]["body"] == "elsewhere"
    err = await _redact(alice, room, "not-an-event", "e3", expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await _redact(alice, room, event_id, "e4", {"reason": 7}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await _redact(alice, "!nope:test.local", event_id, "e5", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    outsider = await make_user(hs, "outsider")
    err = await _redact(outsider, room, event_id, "e6", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    resp = await hs.client.put(f"/_matrix/client/v3/rooms/{room}/redact/{event_id}/e7", json={})
    assert resp.status == 401
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events") == before
    assert (await _event(alice, room, event_id))["content"]["body"] == "keep"
