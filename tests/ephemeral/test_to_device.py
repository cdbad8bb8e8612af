"""Send-to-device messages: PUT /sendToDevice and to_device in /sync."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HomeserverHarness
from tests.ephemeral.support import long_poll, settle, sync_token
from tests.rooms.helpers import User, make_user


async def _second_device(hs: HomeserverHarness, user: User) -> User:
    resp = await hs.client.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.user_id},
            "password": "correct horse",
        },
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return User(hs, body["user_id"], body["access_token"], body["device_id"])


def _events(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body["to_device"]["events"])


async def test_delivered_once_then_acknowledged(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    since = await sync_token(bob)
    poll = long_poll(bob, since)
    await settle()
    await alice.request(
        "PUT",
        "/sendToDevice/m.test/txn1",
        {"messages": {bob.user_id: {bob.device_id: {"n": 1}}}},
    )
    body = await asyncio.wait_for(poll, 5)
    assert _events(body) == [{"sender": alice.user_id, "type": "m.test", "content": {"n": 1}}]
    # a retry with the same since gets it again (not acknowledged yet)
    again = await bob.sync(since=since)
    assert _events(again) == _events(body)
    # the next token acknowledges it: gone for good
    after = await bob.sync(since=body["next_batch"])
    assert _events(after) == []
    assert _events(await bob.sync(since=since)) == []
    assert _events(await bob.sync()) == []


async def test_wildcard_devices_and_idempotent_txn(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    bob2 = await _second_device(hs, bob)
    body = {"messages": {bob.user_id: {"*": {"hello": "all"}}}}
    await alice.request("PUT", "/sendToDevice/m.test/same", body)
    await alice.request("PUT", "/sendToDevice/m.test/same", body)  # a retry: no duplicate
    for device in (bob, bob2):
        assert [e["content"] for e in _events(await device.sync())] == [{"hello": "all"}]
    # a specific device only reaches that device; unknown devices are skipped
    await alice.request(
        "PUT",
        "/sendToDevice/m.test/only2",
        {"messages": {bob.user_id: {bob2.device_id: {"to": 2}, "NOPE": {"to": "x"}}}},
    )
    assert [e["content"] for e in _events(await bob2.sync())] == [{"hello": "all"}, {"to": 2}]
    assert [e["content"] for e in _events(await bob.sync())] == [{"hello": "all"}]
    # the same txn id from another device is another transaction
    alice2 = await _second_device(hs, alice)
    await alice2.request("PUT", "/sendToDevice/m.test/same", body)
    assert len(_events(await bob.sync())) == 2


async def test_at_most_100_per_sync(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    for n in range(130):
        await alice.request(
            "PUT",
            f"/sendToDevice/m.test/t{n}",
            {"messages": {bob.user_id: {bob.device_id: {"n": n}}}},
        )
    first = await bob.sync()
    assert [e["content"]["n"] for e in _events(first)] == list(range(100))
    second = await bob.sync(since=first["next_batch"])
    assert [e["content"]["n"] for e in _events(second)] == list(range(100, 130))
    third = await bob.sync(since=second["next_batch"])
    assert _events(third) == []


async def test_messages_survive_a_restart(make_homeserver: Any) -> None:
    first = await make_homeserver()
    alice = await make_user(first, "alice")
    bob = await make_user(first, "bob")
    since = await sync_token(bob)
    await alice.request(
        "PUT", "/sendToDevice/m.test/r1", {"messages": {bob.user_id: {bob.device_id: {"k": 1}}}}
    )
    second = await make_homeserver()
    alice.hs = bob.hs = second
    body = await bob.sync(since=since)
    assert [e["content"] for e in _events(body)] == [{"k": 1}]
    # positions keep growing after the restart: a new message is not mistaken as seen
    await alice.request(
        "PUT", "/sendToDevice/m.test/r2", {"messages": {bob.user_id: {bob.device_id: {"k": 2}}}}
    )
    body = await bob.sync(since=body["next_batch"])
    assert [e["content"] for e in _events(body)] == [{"k": 2}]
    # and the same transaction after a restart is still a retry
    await alice.request(
        "PUT", "/sendToDevice/m.test/r2", {"messages": {bob.user_id: {bob.device_id: {"k": 2}}}}
    )
    assert _events(await bob.sync(since=body["next_batch"])) == []


async def test_to_device_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    path = "/sendToDevice/m.test/bad"
    err = await alice.request("PUT", path, {}, expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
    err = await alice.request("PUT", path, {"messages": []}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request("PUT", path, {"messages": {"not-a-user": {}}}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request("PUT", path, {"messages": {bob.user_id: []}}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    err = await alice.request(
        "PUT", path, {"messages": {bob.user_id: {bob.device_id: "text"}}}, expect=400
    )
    assert err["errcode"] == "M_BAD_JSON"
    resp = await hs.client.put("/_matrix/client/v3" + path, data=b"x", headers=alice.auth)
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    resp = await hs.client.put("/_matrix/client/v3" + path, json={"messages": {}})
    assert resp.status == 401
    assert _events(await bob.sync()) == []
    # a failed request did not use up its transaction ID
    await alice.request("PUT", path, {"messages": {bob.user_id: {bob.device_id: {"ok": True}}}})
    assert [e["content"] for e in _events(await bob.sync())] == [{"ok": True}]


async def test_remote_recipients_go_to_the_federation_hook(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    sent: list[Any] = []

    async def sender(*args: Any) -> None:
        sent.append(args)

    hs.server.client.to_device.remote_to_device_sender = sender
    body = {"messages": {"@zoe:remote.example": {"DEV": {"x": 1}}}}
    await alice.request("PUT", "/sendToDevice/m.test/fed", body)
    await alice.request("PUT", "/sendToDevice/m.test/fed", body)
    assert len(sent) == 1
    sender_id, event_type, _message_id, by_server = sent[0]
    assert (sender_id, event_type) == (alice.user_id, "m.test")
    assert by_server == {"remote.example": {"@zoe:remote.example": {"DEV": {"x": 1}}}}
