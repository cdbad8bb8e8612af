"""GET /rooms/{roomId}/event/{eventId}: message types round-trip; who may see what."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

MESSAGES = [
    {
        "msgtype": "m.text",
        "body": "hello",
        "format": "org.matrix.custom.html",
        "formatted_body": "<b>hello</b>",
    },
    {"msgtype": "m.notice", "body": "a bot speaks"},
    {"msgtype": "m.emote", "body": "waves"},
    {
        "msgtype": "m.image",
        "body": "cat.png",
        "url": "mxc://test.local/cat",
        "info": {"mimetype": "image/png", "w": 10, "h": 20, "size": 1234},
    },
    {
        "msgtype": "m.file",
        "body": "notes.pdf",
        "filename": "notes.pdf",
        "url": "mxc://test.local/notes",
        "info": {"mimetype": "application/pdf", "size": 99},
    },
    {
        "msgtype": "m.audio",
        "body": "song.ogg",
        "url": "mxc://test.local/song",
        "info": {"mimetype": "audio/ogg", "duration": 3000},
    },
    {
        "msgtype": "m.video",
        "body": "clip.mp4",
        "url": "mxc://test.local/clip",
        "info": {"mimetype": "video/mp4", "duration": 5000, "w": 640, "h": 480},
    },
]


async def test_message_types_round_trip(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    for i, content in enumerate(MESSAGES):
        sent = await alice.request("PUT", f"/rooms/{room}/send/m.room.message/m{i}", content)
        served = await bob.request("GET", f"/rooms/{room}/event/{sent['event_id']}")
        assert served["content"] == content
        assert served["type"] == "m.room.message"
        assert served["sender"] == alice.user_id
        assert served["room_id"] == room
        assert served["event_id"] == sent["event_id"]
        assert "transaction_id" not in served["unsigned"]  # not bob's transaction
        own = await alice.request("GET", f"/rooms/{room}/event/{sent['event_id']}")
        assert own["unsigned"]["transaction_id"] == f"m{i}"
        assert "hashes" not in own and "signatures" not in own and "prev_events" not in own


async def test_event_visibility_and_not_found(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    other = await alice.create_room()
    elsewhere = await alice.send(other, "other room")
    await bob.join(room)
    before = await alice.send(room, "before bob left")
    await bob.leave(room)
    after = await alice.send(room, "after bob left")
    assert (await bob.request("GET", f"/rooms/{room}/event/{before}"))["content"]["body"] == (
        "before bob left"
    )
    for user, room_id, event_id in (
        (bob, room, after),  # sent after bob left
        (alice, room, "$doesnotexist"),
        (alice, room, elsewhere),  # exists, but in another room
        (bob, other, elsewhere),  # never a member
        (alice, "!nope:test.local", before),
    ):
        err = await user.request("GET", f"/rooms/{room_id}/event/{event_id}", expect=404)
        assert err["errcode"] == "M_NOT_FOUND"
    resp = await hs.client.get(f"/_matrix/client/v3/rooms/{room}/event/{before}")
    assert resp.status == 401


# -- history visibility applies to single events as it does to /messages ------------------


async def set_visibility(user: User, room_id: str, value: str) -> None:
    await user.request(
        "PUT", f"/rooms/{room_id}/state/m.room.history_visibility", {"history_visibility": value}
    )


async def fetch(user: User, room_id: str, event_id: str, expect: int = 200) -> Any:
    return await user.request("GET", f"/rooms/{room_id}/event/{event_id}", expect=expect)


async def test_joined_visibility_hides_events_from_before_the_join(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await set_visibility(alice, room, "joined")
    before = await alice.send(room, "before bob joined")
    await bob.join(room)
    after = await alice.send(room, "after bob joined")
    err = await fetch(bob, room, before, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    assert (await fetch(bob, room, after))["content"]["body"] == "after bob joined"
    assert (await fetch(alice, room, before))["content"]["body"] == "before bob joined"


async def test_shared_visibility_shows_events_from_before_the_join(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await set_visibility(alice, room, "shared")
    before = await alice.send(room, "before bob joined")
    # Not yet a member: nothing to see.
    err = await fetch(bob, room, before, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    await bob.join(room)
    assert (await fetch(bob, room, before))["content"]["body"] == "before bob joined"


async def test_world_readable_events_are_readable_by_non_members(hs: HomeserverHarness) -> None:
    alice, eve = await make_user(hs, "alice"), await make_user(hs, "eve")
    room = await alice.create_room(preset="public_chat")
    shared_era = await alice.send(room, "shared era")
    await set_visibility(alice, room, "world_readable")
    readable = await alice.send(room, "readable era")
    assert (await fetch(eve, room, readable))["content"]["body"] == "readable era"
    # As in /messages: what was sent under `shared` stays for members only.
    err = await fetch(eve, room, shared_era, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"


async def test_former_member_cannot_read_events_after_leaving(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await set_visibility(alice, room, "joined")
    await bob.join(room)
    while_joined = await alice.send(room, "while joined")
    await bob.leave(room)
    after_leaving = await alice.send(room, "after leaving")
    assert (await fetch(bob, room, while_joined))["content"]["body"] == "while joined"
    err = await fetch(bob, room, after_leaving, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    # Rejoining under `joined` does not reveal what was sent while away.
    await bob.join(room)
    err = await fetch(bob, room, after_leaving, expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
