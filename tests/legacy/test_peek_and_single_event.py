"""GET /events?room_id= (peekEvents) and GET /events/{eventId} (getOneEvent)."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from tests.conftest import HomeserverHarness
from tests.legacy.support import (
    events,
    make_guest,
    of_type,
    settle,
    stream_token,
    world_readable_room,
)
from tests.rooms.helpers import make_user


async def test_peeking_into_a_world_readable_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    peeker = await make_user(hs, "peeker")
    room_id = await world_readable_room(alice)
    other_room = await world_readable_room(alice)
    # alice is online already: her message elsewhere changes nothing of her presence
    await alice.request("PUT", f"/presence/{alice.user_id}/status", {"presence": "online"})
    token = await stream_token(peeker, room_id=room_id)
    poll = asyncio.ensure_future(events(peeker, room_id=room_id, timeout=10_000, **{"from": token}))
    await settle()
    await alice.send(other_room, "elsewhere")
    await settle()
    assert not poll.done()
    event_id = await alice.send(room_id, "mice")
    body = await asyncio.wait_for(poll, 5)
    assert [e["event_id"] for e in of_type(body["chunk"], "m.room.message")] == [event_id]
    assert body["chunk"][0]["room_id"] == room_id

    # presence of its members, its receipts and its typing come too
    await alice.request(
        "PUT", f"/presence/{alice.user_id}/status", {"presence": "online", "status_msg": "busy"}
    )
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{quote(event_id)}", {})
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 5000}
    )
    body = await events(peeker, room_id=room_id, **{"from": body["end"]})
    types = {e["type"] for e in body["chunk"]}
    assert {"m.presence", "m.receipt", "m.typing"} <= types
    [typing] = of_type(body["chunk"], "m.typing")
    assert typing["room_id"] == room_id
    [presence] = of_type(body["chunk"], "m.presence")
    assert presence["content"]["user_id"] == alice.user_id
    # the peek does not make the peeker a member
    err = await peeker.request("GET", f"/rooms/{room_id}/joined_members", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"


async def test_peek_shows_only_the_world_readable_part_of_history(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    peeker = await make_user(hs, "peeker")
    room_id = await alice.create_room(preset="public_chat")
    token = await stream_token(peeker)  # from before the room was readable
    await alice.send(room_id, "hidden")
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility/",
        {"history_visibility": "world_readable"},
    )
    shown = await alice.send(room_id, "shown")
    body = await events(peeker, room_id=room_id, **{"from": token})
    seen = [e["type"] for e in body["chunk"] if "event_id" in e]
    assert seen == ["m.room.history_visibility", "m.room.message"]
    assert of_type(body["chunk"], "m.room.message")[0]["event_id"] == shown
    # no longer world readable: no more peeking
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility/",
        {"history_visibility": "shared"},
    )
    err = await events(peeker, expect=403, room_id=room_id, **{"from": body["end"]})
    assert err["errcode"] == "M_FORBIDDEN"


async def test_peeking_is_refused_where_history_is_not_world_readable(
    hs: HomeserverHarness,
) -> None:
    alice = await make_user(hs, "alice")
    peeker = await make_user(hs, "peeker")
    for visibility in ("shared", "invited", "joined"):
        room_id = await alice.create_room(preset="public_chat")
        await alice.request(
            "PUT",
            f"/rooms/{room_id}/state/m.room.history_visibility/",
            {"history_visibility": visibility},
        )
        err = await events(peeker, expect=403, room_id=room_id)
        assert err["errcode"] == "M_FORBIDDEN"
    err = await events(peeker, expect=403, room_id="!nowhere:test.local")
    assert err["errcode"] == "M_FORBIDDEN"


async def test_room_id_of_a_joined_room_streams_that_room_only(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_a = await alice.create_room()
    room_b = await alice.create_room()
    token = await stream_token(alice, room_id=room_a)
    await alice.send(room_b, "b")
    event_id = await alice.send(room_a, "a")
    body = await events(alice, room_id=room_a, **{"from": token})
    assert [e["event_id"] for e in of_type(body["chunk"], "m.room.message")] == [event_id]


async def test_guests_peek_but_must_name_a_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    guest = await make_guest(hs, "guest")
    room_id = await world_readable_room(alice)
    err = await events(guest, expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
    token = await stream_token(guest, room_id=room_id)
    event_id = await alice.send(room_id, "hello guest")
    body = await events(guest, room_id=room_id, **{"from": token})
    assert [e["event_id"] for e in of_type(body["chunk"], "m.room.message")] == [event_id]
    # repeated from its own end, the stream runs dry (no tight loop)
    body = await events(guest, room_id=room_id, **{"from": body["end"]})
    assert body["chunk"] == []
    # a guest's stream does not make them present (guests may not read presence
    # themselves: read it from the service)
    assert (await hs.server.client.presence.get(guest.user_id)).state == "offline"


async def test_get_one_event(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    private = await alice.create_room()
    hidden = await alice.send(private, "secret")
    readable = await world_readable_room(alice)
    shown = await alice.send(readable, "public")

    body = await alice.request("GET", f"/events/{quote(hidden)}")
    assert body["event_id"] == hidden and body["room_id"] == private
    assert body["content"]["body"] == "secret"
    assert body["user_id"] == alice.user_id and "age" in body

    body = await bob.request("GET", f"/events/{quote(shown)}")
    assert body["content"]["body"] == "public"
    for event_id in (hidden, "$unknown", "not-an-id"):
        err = await bob.request("GET", f"/events/{quote(event_id)}", expect=404)
        assert err["errcode"] == "M_NOT_FOUND"
    guest = await make_guest(hs, "guest")
    err = await guest.request("GET", f"/events/{quote(shown)}", expect=403)
    assert err["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
