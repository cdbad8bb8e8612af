"""Creating rooms, joining, sending, and reading state through the API."""

from __future__ import annotations

import pytest

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import make_user


@pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])
async def test_create_room_every_version(hs: HomeserverHarness, version: str) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(room_version=version, name="Test", topic="About")
    create = await alice.state(room_id, "m.room.create")
    assert create["room_version"] == version
    assert (await alice.state(room_id, "m.room.name"))["name"] == "Test"
    state = await alice.request("GET", f"/rooms/{room_id}/state")
    types = [e["type"] for e in state]
    assert set(types) >= {
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.guest_access",
        "m.room.name",
        "m.room.topic",
    }
    event_id = await alice.send(room_id, "hi")
    assert event_id.startswith("$")


async def test_public_room_join_and_invite_only(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    public = await alice.create_room(preset="public_chat")
    await bob.join(public)
    assert (await bob.request("GET", "/joined_rooms"))["joined_rooms"] == [public]
    private = await alice.create_room(preset="private_chat")
    err = await bob.request("POST", f"/join/{private}", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    await alice.invite(private, bob.user_id)
    await bob.join(private)
    await bob.send(private, "thanks")
    await bob.leave(private)
    err = await bob.request(
        "PUT", f"/rooms/{private}/send/m.room.message/x1", {"body": "x"}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"


async def test_send_is_idempotent_per_txn(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    first = await alice.request("PUT", f"/rooms/{room_id}/send/m.room.message/same", {"body": "a"})
    again = await alice.request("PUT", f"/rooms/{room_id}/send/m.room.message/same", {"body": "a"})
    assert first == again
    # The retry's new copy was refused whole: one message stored, and the room takes
    # the next send on top of it.
    then = await alice.request("PUT", f"/rooms/{room_id}/send/m.room.message/next", {"body": "b"})
    assert then["event_id"] != first["event_id"]
    page = await alice.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=10")
    messages = [e for e in page["chunk"] if e["type"] == "m.room.message"]
    assert [e["event_id"] for e in messages] == [then["event_id"], first["event_id"]]
    stored = await hs.server.db.fetchval(
        "t",
        "SELECT COUNT(*) FROM events WHERE room_id = $1 AND type = 'm.room.message'",
        room_id,
    )
    assert stored == 2


async def test_legacy_post_send_and_redact_without_a_transaction(hs: HomeserverHarness) -> None:
    """POST /send/{eventType} and POST /redact/{eventId} (no txnId, as Synapse serves
    them for old clients and bots): each request is a new event."""
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    first = await alice.request("POST", f"/rooms/{room_id}/send/m.room.message", {"body": "a"})
    again = await alice.request("POST", f"/rooms/{room_id}/send/m.room.message", {"body": "a"})
    assert first["event_id"] != again["event_id"]
    redaction = await alice.request(
        "POST", f"/rooms/{room_id}/redact/{first['event_id']}", {"reason": "oops"}
    )
    event = await alice.request("GET", f"/rooms/{room_id}/event/{first['event_id']}")
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]["event_id"] == redaction["event_id"]
    before = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events")
    err = await alice.request("POST", f"/rooms/{room_id}/send/m.room.message", [1], expect=400)
    assert err["errcode"] == "M_NOT_JSON" or err["errcode"] == "M_BAD_JSON"
    err = await alice.request("POST", f"/rooms/{room_id}/redact/not-an-id", {}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events") == before


async def test_alias_and_trusted_private_chat(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(room_alias_name="lobby", preset="public_chat")
    assert (await alice.state(room_id, "m.room.canonical_alias"))["alias"] == "#lobby:test.local"
    joined = await bob.join("#lobby:test.local")
    assert joined["room_id"] == room_id
    taken = await alice.request("POST", "/createRoom", {"room_alias_name": "lobby"}, expect=400)
    assert taken["errcode"] == "M_ROOM_IN_USE"
    dm = await alice.create_room(
        preset="trusted_private_chat", invite=[bob.user_id], is_direct=True
    )
    create = await alice.state(dm, "m.room.create")
    assert create["additional_creators"] == [bob.user_id]
    await bob.join(dm)
    # bob, an additional creator, may change power levels.
    await bob.request("PUT", f"/rooms/{dm}/state/m.room.topic/", {"topic": "ours"})


async def test_bad_create_room_input(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    before = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events")
    bad = await alice.request("POST", "/createRoom", {"room_version": "99"}, expect=400)
    assert bad["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    bad = await alice.request("POST", "/createRoom", {"invite": ["not-a-user"]}, expect=400)
    assert bad["errcode"] == "M_BAD_JSON"
    bad = await alice.request("POST", "/createRoom", {"initial_state": [{"type": 1}]}, expect=400)
    assert bad["errcode"] == "M_BAD_JSON"
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events") == before


async def test_send_retry_after_restart_returns_the_same_event(
    make_homeserver: HarnessFactory,
) -> None:
    first = await make_homeserver()
    alice = await make_user(first, "alice")
    room_id = await alice.create_room()
    path = f"/rooms/{room_id}/send/m.room.message/retried"
    sent = await alice.request("PUT", path, {"body": "once"})
    second = await make_homeserver()  # a fresh process: nothing remembered in memory
    alice.hs = second
    again = await alice.request("PUT", path, {"body": "once"})
    assert again == sent
    count = await second.server.db.fetchval(
        "t", "SELECT COUNT(*) FROM events WHERE room_id = $1 AND type = 'm.room.message'", room_id
    )
    assert count == 1
