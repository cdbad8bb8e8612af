"""Federation destination admin endpoints: the rooms a destination shares with us,
and the reset of its backoff (reset_connection), between two real servers."""

from __future__ import annotations

import pytest

from tests.admin.moderation.helpers import ADMIN, check_admin_only, expect_error
from tests.federation.rooms import bootstrap_room, remote_join, settle, share_room
from tests.federation.servers import ServerFactory
from tests.federation.test_sender import Recorder, timeline_on
from tests.rooms.helpers import make_user

DESTINATIONS = f"{ADMIN}/federation/destinations"


async def test_destination_rooms(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    first, alice, bob = await share_room(a, b)
    second = await alice.create_room(preset="public_chat")
    await bootstrap_room(a, b, second)
    await remote_join(b, bob.user_id, second)
    await settle(a, b)
    await alice.send(second, "hi there")
    last = await alice.send(first, "hello")
    await settle(a)
    admin = await make_user(a.harness, "admin")
    await a.server.stores.accounts.set_admin(admin.user_id, True)
    client = a.harness.client

    response = await client.get(f"{DESTINATIONS}/{b.server_name}/rooms", headers=admin.auth)
    assert response.status == 200
    body = await response.json()
    assert body["total"] == 2 and "next_token" not in body
    assert [r["room_id"] for r in body["rooms"]] == sorted([first, second])
    stored = await a.server.stores.events.get_event(last)
    assert stored is not None
    by_room = {r["room_id"]: r["stream_ordering"] for r in body["rooms"]}
    assert by_room[first] == stored.stream_ordering

    page = await client.get(
        f"{DESTINATIONS}/{b.server_name}/rooms?limit=1&dir=b", headers=admin.auth
    )
    paged = await page.json()
    assert [r["room_id"] for r in paged["rooms"]] == [max(first, second)]
    assert paged["next_token"] == "1" and paged["total"] == 2
    rest = await client.get(
        f"{DESTINATIONS}/{b.server_name}/rooms?limit=1&from=1&dir=b", headers=admin.auth
    )
    assert [r["room_id"] for r in (await rest.json())["rooms"]] == [min(first, second)]

    response = await client.get(f"{DESTINATIONS}/nowhere.test/rooms", headers=admin.auth)
    await expect_error(response, 404, "M_NOT_FOUND")
    for query in ("?dir=up", "?from=-3", "?limit=x"):
        response = await client.get(
            f"{DESTINATIONS}/{b.server_name}/rooms{query}", headers=admin.auth
        )
        await expect_error(response, 400, "M_INVALID_PARAM")
    await check_admin_only(a.harness, alice.token, "GET", f"{DESTINATIONS}/{b.server_name}/rooms")


async def test_reset_connection_sends_the_queue_now(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _ = await share_room(a, b)
    admin = await make_user(a.harness, "admin")
    await a.server.stores.accounts.set_admin(admin.user_id, True)
    client = a.harness.client
    reset = f"{DESTINATIONS}/{b.server_name}/reset_connection"

    await alice.send(room_id, "delivered")
    await settle(a)
    # healthy: nothing to reset
    response = await client.post(reset, json={}, headers=admin.auth)
    await expect_error(response, 400, "M_UNKNOWN")
    response = await client.post(
        f"{DESTINATIONS}/nowhere.test/reset_connection", json={}, headers=admin.auth
    )
    await expect_error(response, 404, "M_NOT_FOUND")

    recorder = Recorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    recorder.down = True
    held = await alice.send(room_id, "held back")
    await settle(a)
    health = await a.server.stores.federation_queue.get_health(b.server_name)
    assert health is not None and health.retry_last_ts > 0
    recorder.down = False
    await a.server.federation_events.sender.retry_due()  # still in backoff: nothing sent
    await settle(a)
    assert held not in await timeline_on(b, room_id)

    await check_admin_only(a.harness, alice.token, "POST", reset, json={})
    health = await a.server.stores.federation_queue.get_health(b.server_name)
    assert health is not None and health.retry_last_ts > 0

    response = await client.post(reset, json={}, headers=admin.auth)
    assert (response.status, await response.json()) == (200, {})
    await settle(a)
    assert held in await timeline_on(b, room_id)
    health = await a.server.stores.federation_queue.get_health(b.server_name)
    assert health is not None and (health.retry_last_ts, health.retry_interval) == (0, 0)
