"""Typing notifications: PUT /rooms/{roomId}/typing/{userId} and m.typing in /sync."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from tests.conftest import HomeserverHarness
from tests.ephemeral.support import ephemeral, long_poll, settle, sync_token
from tests.rooms.helpers import make_user


async def _room_of_two(hs: HomeserverHarness):  # type: ignore[no-untyped-def]
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    return alice, bob, room_id


async def test_typing_reaches_the_other_member_live(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    since = await sync_token(bob)
    poll = long_poll(bob, since)
    await settle()
    started = time.monotonic()
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 20000}
    )
    body = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 2
    [typing] = ephemeral(body, room_id, "m.typing")
    assert typing["content"] == {"user_ids": [alice.user_id]}
    # stopping is a change too
    since = body["next_batch"]
    await alice.request("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": False})
    body = await bob.sync(since=since)
    [typing] = ephemeral(body, room_id, "m.typing")
    assert typing["content"] == {"user_ids": []}
    # nothing new: no m.typing
    body = await bob.sync(since=body["next_batch"])
    assert ephemeral(body, room_id, "m.typing") == []


async def test_typing_expires_with_the_clock(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 10000}
    )
    body = await bob.sync()
    assert ephemeral(body, room_id, "m.typing")[0]["content"]["user_ids"] == [alice.user_id]
    since = body["next_batch"]
    hs.clock.advance(9)
    await hs.server.ephemeral.tick()  # type: ignore[union-attr]
    assert ephemeral(await bob.sync(since=since), room_id, "m.typing") == []
    poll = long_poll(bob, since)
    await settle()
    hs.clock.advance(2)
    await hs.server.ephemeral.tick()  # type: ignore[union-attr]
    body = await asyncio.wait_for(poll, 5)
    assert ephemeral(body, room_id, "m.typing")[0]["content"] == {"user_ids": []}


async def test_sending_a_message_does_not_stop_typing(hs: HomeserverHarness) -> None:
    """The client says when its user stops typing; a message changes nothing (as in
    Synapse: a user often sends and goes on typing the next line)."""
    alice, bob, room_id = await _room_of_two(hs)
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}
    )
    since = await sync_token(bob)
    await alice.send(room_id, "still typing")
    body = await bob.sync(since=since)
    assert ephemeral(body, room_id, "m.typing") == []  # no change to report
    body = await bob.sync()
    assert ephemeral(body, room_id, "m.typing")[0]["content"] == {"user_ids": [alice.user_id]}


async def test_leaving_the_room_stops_typing(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}
    )
    await bob.request(
        "PUT", f"/rooms/{room_id}/typing/{bob.user_id}", {"typing": True, "timeout": 30000}
    )
    since = await sync_token(alice)
    await bob.leave(room_id)
    body = await alice.sync(since=since)
    assert ephemeral(body, room_id, "m.typing")[0]["content"] == {"user_ids": [alice.user_id]}


async def test_typing_token_from_before_a_restart(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    since = await sync_token(bob)
    # a typing position far ahead of this process's (as after a restart)
    parts = since[1:].split("_")
    parts[2] = "999"
    future = "s" + "_".join(parts)
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}
    )
    body = await bob.sync(since=future)
    assert ephemeral(body, room_id, "m.typing")[0]["content"] == {"user_ids": [alice.user_id]}


async def test_typing_errors(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await _room_of_two(hs)
    carol = await make_user(hs, "carol")
    path = f"/rooms/{room_id}/typing/{alice.user_id}"
    # someone else's typing state
    err = await bob.request("PUT", path, {"typing": True, "timeout": 1000}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    # not a member
    err = await carol.request(
        "PUT", f"/rooms/{room_id}/typing/{carol.user_id}", {"typing": True}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    err = await alice.request("PUT", path, {}, expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
    err = await alice.request("PUT", path, {"typing": "yes"}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request("PUT", path, {"typing": True, "timeout": "soon"}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    resp = await hs.client.put("/_matrix/client/v3" + path, data=b"nope", headers=alice.auth)
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    resp = await hs.client.put("/_matrix/client/v3" + path, json={"typing": True})
    assert resp.status == 401
    # nothing was recorded by the failed requests
    body = await bob.sync()
    assert ephemeral(body, room_id, "m.typing") == []


async def test_leaving_tells_the_typing_listeners(hs: HomeserverHarness) -> None:
    """Federation listens to local typing changes (m.typing EDUs): a local user who
    leaves while typing stops typing for the other servers too; a message does not."""
    alice, bob, room_id = await _room_of_two(hs)
    typing = hs.server.client.typing
    told: list[tuple[str, str, bool]] = []

    async def listener(user_id: str, room: str, is_typing: bool) -> None:
        told.append((user_id, room, is_typing))

    typing.local_typing_listeners.append(listener)
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}
    )
    assert told == [(alice.user_id, room_id, True)]
    await alice.send(room_id, "not done typing")
    assert told == [(alice.user_id, room_id, True)]
    # someone not typing leaving tells nobody
    await bob.leave(room_id)
    assert len(told) == 1
    await alice.leave(room_id)
    assert told == [(alice.user_id, room_id, True), (alice.user_id, room_id, False)]
    # a remote user who leaves stops typing here, but that is not ours to announce
    room_id = await alice.create_room(preset="public_chat")
    remote = "@carol:elsewhere.example"
    typing.started_typing(remote, room_id, 30000)
    event = SimpleNamespace(
        type="m.room.member", state_key=remote, membership="leave", room_id=room_id
    )
    stored = SimpleNamespace(event=event, stream_ordering=99)
    await typing.on_event_persisted(stored)  # type: ignore[arg-type]
    assert remote not in typing.typing_users(room_id)
    assert len(told) == 2


async def test_initial_sync_tells_who_stopped_typing(hs: HomeserverHarness) -> None:
    """An initial sync gives m.typing for every room with typing news, an empty list
    included (as Synapse does): a client restarting without a token, which saw
    someone typing, learns that they stopped."""
    alice, bob, room_id = await _room_of_two(hs)
    quiet_room = await alice.create_room(preset="public_chat")
    await bob.join(quiet_room)
    path = f"/rooms/{room_id}/typing/{alice.user_id}"
    await alice.request("PUT", path, {"typing": True, "timeout": 30000})
    body = await bob.sync()
    assert ephemeral(body, room_id, "m.typing")[0]["content"] == {"user_ids": [alice.user_id]}
    assert ephemeral(body, quiet_room, "m.typing") == []
    await alice.request("PUT", path, {"typing": False})
    body = await bob.sync()
    assert ephemeral(body, room_id, "m.typing")[0]["content"] == {"user_ids": []}
    assert ephemeral(body, quiet_room, "m.typing") == []
