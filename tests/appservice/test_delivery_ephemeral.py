"""Ephemeral data pushed to services that ask for it (MSC2409): typing, receipts and
presence in ``ephemeral``; to-device messages of their users with MSC3202."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.appservice.conftest import FakeAppService, homeserver_with
from tests.appservice.delivery_support import (
    WAIT_S,
    bridge,
    caught_up,
    make_ghost,
    wait_for_events,
)
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import V3, User, make_user


def ephemeral(service: FakeAppService) -> list[dict[str, Any]]:
    found = []
    for _, body in service.transactions:
        assert body.get("ephemeral") == body.get("de.sorunome.msc2409.ephemeral")
        found += body.get("ephemeral", [])
    return found


async def wait_for_ephemeral(service: FakeAppService, kind: str, room_id: str | None) -> None:
    def seen(s: FakeAppService) -> bool:
        return any(
            e["type"] == kind and (room_id is None or e.get("room_id") == room_id)
            for e in ephemeral(s)
        )

    async with asyncio.timeout(WAIT_S):
        await service.wait_for(seen)


async def bridged_room(
    make_homeserver: HarnessFactory, url: str, tmp_path: Path, **overrides: Any
) -> tuple[HomeserverHarness, User, str]:
    hs = await homeserver_with(
        make_homeserver, tmp_path, bridge(url, receive_ephemeral=True, **overrides)
    )
    alice = await make_user(hs, "alice")
    ghost = await make_ghost(hs, "_bridge_bob")
    room_id = await alice.create_room(preset="public_chat")
    await ghost.join(room_id)
    return hs, alice, room_id


async def test_typing_is_pushed(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    _hs, alice, room_id = await bridged_room(make_homeserver, url, tmp_path)
    private = await alice.create_room()
    await alice.request(
        "PUT", f"/rooms/{private}/typing/{alice.user_id}", {"typing": True, "timeout": 10000}
    )
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 10000}
    )
    await wait_for_ephemeral(service, "m.typing", room_id)
    typing = [e for e in ephemeral(service) if e["type"] == "m.typing"]
    assert typing[-1] == {
        "type": "m.typing",
        "room_id": room_id,
        "content": {"user_ids": [alice.user_id]},
    }
    assert all(e["room_id"] != private for e in typing)


async def test_receipts_are_pushed_private_ones_only_of_its_users(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    hs, alice, room_id = await bridged_room(make_homeserver, url, tmp_path)
    event_id = await alice.send(room_id, "read me")
    await wait_for_events(service, [event_id])
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read.private/{event_id}", {})
    await caught_up(hs)
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
    await wait_for_ephemeral(service, "m.receipt", room_id)
    receipts = [e for e in ephemeral(service) if e["type"] == "m.receipt"]
    assert len(receipts) == 1
    content = receipts[0]["content"]
    assert list(content) == [event_id]
    assert set(content[event_id]) == {"m.read"}  # alice's private receipt stays hers
    assert "ts" in content[event_id]["m.read"][alice.user_id]


async def test_receipts_survive_a_restart(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    first, alice, room_id = await bridged_room(make_homeserver, url, tmp_path)
    event_id = await alice.send(room_id, "read me")
    await wait_for_events(service, [event_id])
    await first.client.close()
    service.down = True
    second = await homeserver_with(make_homeserver, tmp_path, bridge(url, receive_ephemeral=True))
    alice.hs = second
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
    await second.client.close()  # stored as a transaction, not yet accepted
    service.down = False
    await homeserver_with(make_homeserver, tmp_path, bridge(url, receive_ephemeral=True))
    await wait_for_ephemeral(service, "m.receipt", room_id)


async def test_presence_of_users_sharing_a_room_is_pushed(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    hs, alice, _room_id = await bridged_room(make_homeserver, url, tmp_path)
    loner = await make_user(hs, "loner")
    await loner.request("PUT", f"/presence/{loner.user_id}/status", {"presence": "online"})
    await alice.request(
        "PUT", f"/presence/{alice.user_id}/status", {"presence": "online", "status_msg": "hi"}
    )
    await wait_for_ephemeral(service, "m.presence", None)
    presence = [e for e in ephemeral(service) if e["type"] == "m.presence"]
    assert [e["sender"] for e in presence] == [alice.user_id]
    assert presence[0]["content"]["presence"] == "online"
    assert presence[0]["content"]["status_msg"] == "hi"


async def test_no_ephemeral_without_receive_ephemeral(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await make_user(as_hs, "alice")
    ghost = await make_ghost(as_hs, "_bridge_bob")
    room_id = await alice.create_room(preset="public_chat")
    await ghost.join(room_id)
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 10000}
    )
    sent = await alice.send(room_id, "after typing")
    await wait_for_events(service, [sent])
    assert ephemeral(service) == []


async def test_to_device_for_its_users_with_msc3202(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    hs = await homeserver_with(
        make_homeserver, tmp_path, bridge(url, **{"org.matrix.msc3202": True})
    )
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    ghost_id, session = await hs.server.client.accounts.register(
        "_bridge_bob", None, app_service=hs.server.client.appservices.by_id("bridge")
    )
    assert session is not None
    messages = {
        ghost_id: {session.device_id: {"secret": "for the ghost"}},
        bob.user_id: {bob.device_id: {"secret": "for bob"}},
    }
    await alice.request("PUT", "/sendToDevice/m.test/t1", {"messages": messages})

    def seen(s: FakeAppService) -> bool:
        return any(body.get("de.sorunome.msc2409.to_device") for _, body in s.transactions)

    async with asyncio.timeout(WAIT_S):
        await service.wait_for(seen)
    pushed = [
        m for _, b in service.transactions for m in b.get("de.sorunome.msc2409.to_device", [])
    ]
    assert pushed == [
        {
            "type": "m.test",
            "sender": alice.user_id,
            "content": {"secret": "for the ghost"},
            "to_user_id": ghost_id,
            "to_device_id": session.device_id,
        }
    ]
    body = next(b for _, b in service.transactions if b.get("de.sorunome.msc2409.to_device"))
    # MSC3202: the key counts of the recipient's devices come with it
    counts = body["org.matrix.msc3202.device_one_time_keys_count"]
    assert counts[ghost_id] == {session.device_id: {}}
    fallback = body["org.matrix.msc3202.device_unused_fallback_key_types"]
    assert fallback[ghost_id] == {session.device_id: []}
    assert bob.user_id not in counts


async def test_device_list_changes_of_users_sharing_its_rooms_with_msc3202(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    hs, alice, _room_id = await bridged_room(
        make_homeserver, url, tmp_path, **{"org.matrix.msc3202": True}
    )
    loner = await make_user(hs, "loner")
    await loner.create_room()
    # a new login of alice (in the bridged room) and of loner (sharing nothing)
    for user in (loner, alice):
        resp = await hs.client.post(
            V3 + "/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.user_id},
                "password": "correct horse",
            },
        )
        assert resp.status == 200, await resp.text()

    def seen(s: FakeAppService) -> bool:
        return any(
            alice.user_id in body.get("org.matrix.msc3202.device_lists", {}).get("changed", [])
            for _, body in s.transactions
        )

    async with asyncio.timeout(WAIT_S):
        await service.wait_for(seen)
    changed = {
        user_id
        for _, body in service.transactions
        for user_id in body.get("org.matrix.msc3202.device_lists", {}).get("changed", [])
    }
    assert loner.user_id not in changed
    assert all(
        body["org.matrix.msc3202.device_lists"]["left"] == []
        for _, body in service.transactions
        if "org.matrix.msc3202.device_lists" in body
    )


async def test_no_device_lists_without_msc3202(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    hs, alice, room_id = await bridged_room(make_homeserver, url, tmp_path)
    resp = await hs.client.post(
        V3 + "/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": alice.user_id},
            "password": "correct horse",
        },
    )
    assert resp.status == 200
    event_id = await alice.send(room_id, "after the login")
    await wait_for_events(service, [event_id])
    assert not any("org.matrix.msc3202.device_lists" in body for _, body in service.transactions)
