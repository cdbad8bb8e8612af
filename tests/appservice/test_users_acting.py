"""An application service acting on the client API: as its sender or its ghosts
(``user_id=``), ``ts=`` on sends, the rate-limit exemption, profiles, deactivation
and device management without UIA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.appservice.conftest import FakeAppService, as_headers, homeserver_with, registration
from tests.appservice.test_users_register import AS_TYPE, as_register, assert_error
from tests.conftest import HarnessFactory, HomeserverHarness

V3 = "/_matrix/client/v3"
TIGHT = {"per_second": 0.001, "burst_count": 1}


async def ghost(hs: HomeserverHarness, localpart: str, **extra: Any) -> dict[str, Any]:
    resp = await as_register(hs, {"type": AS_TYPE, "username": localpart, **extra})
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


def user_headers(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def public_room(hs: HomeserverHarness, creator: dict[str, Any]) -> str:
    resp = await hs.client.post(
        f"{V3}/createRoom", json={"preset": "public_chat"}, headers=user_headers(creator)
    )
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["room_id"])


async def join_as(hs: HomeserverHarness, room_id: str, user_id: str | None = None) -> Any:
    params = {"user_id": user_id} if user_id else {}
    return await hs.client.post(
        f"{V3}/rooms/{room_id}/join", json={}, params=params, headers=as_headers()
    )


async def event_ts(hs: HomeserverHarness, room_id: str, event_id: str) -> int:
    stored = await hs.server.stores.events.get_event(event_id)
    assert stored is not None and stored.event.room_id == room_id
    return int(stored.event.pdu["origin_server_ts"])


# -- whoami and identity ------------------------------------------------------------


async def test_whoami_has_no_device_without_one(as_hs: HomeserverHarness) -> None:
    resp = await as_hs.client.get(f"{V3}/account/whoami", headers=as_headers())
    assert await resp.json() == {"user_id": "@bridgebot:test.local", "is_guest": False}
    body = await ghost(as_hs, "_bridge_dev")
    with_device = await as_hs.client.get(
        f"{V3}/account/whoami",
        params={"user_id": body["user_id"], "device_id": body["device_id"]},
        headers=as_headers(),
    )
    assert await with_device.json() == {
        "user_id": body["user_id"],
        "device_id": body["device_id"],
        "is_guest": False,
    }


async def test_a_ghost_must_register_before_joining(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    early = await join_as(as_hs, room_id, "@_bridge_late:test.local")
    await assert_error(early, 403, "M_FORBIDDEN")
    assert (
        await as_hs.server.client.membership.membership_of(room_id, "@_bridge_late:test.local")
        is None
    )
    await ghost(as_hs, "_bridge_late", inhibit_login=True)
    joined = await join_as(as_hs, room_id, "@_bridge_late:test.local")
    assert joined.status == 200, await joined.text()


async def test_the_sender_joins_without_registering(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    for params in ({}, {"user_id": "@bridgebot:test.local"}):
        resp = await as_hs.client.post(
            f"{V3}/join/{room_id}", json={}, params=params, headers=as_headers()
        )
        assert resp.status == 200, await resp.text()
    member = await as_hs.client.get(
        f"{V3}/rooms/{room_id}/state/m.room.member/@bridgebot:test.local",
        headers=user_headers(alice),
    )
    assert (await member.json())["membership"] == "join"


# -- profiles of ghosts ------------------------------------------------------------


async def test_as_sets_a_ghosts_profile(as_hs: HomeserverHarness) -> None:
    user_id = (await ghost(as_hs, "_bridge_pic", inhibit_login=True))["user_id"]
    profile = f"{V3}/profile/{user_id}"
    for key, value in (("displayname", "Ghost"), ("avatar_url", "http://somewhere/pic.jpg")):
        resp = await as_hs.client.put(
            f"{profile}/{key}", json={key: value}, params={"user_id": user_id}, headers=as_headers()
        )
        assert resp.status == 200, await resp.text()
    got = await (await as_hs.client.get(profile)).json()
    assert got == {"displayname": "Ghost", "avatar_url": "http://somewhere/pic.jpg"}


async def test_as_cannot_set_another_users_profile(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    url = f"{V3}/profile/{alice['user_id']}/displayname"
    for params in ({"user_id": alice["user_id"]}, {}):
        resp = await as_hs.client.put(
            url, json={"displayname": "Pwned"}, params=params, headers=as_headers()
        )
        await assert_error(resp, 403, "M_FORBIDDEN")
    got = await (await as_hs.client.get(url)).json()
    assert got == {"displayname": "alice"}


# -- ts= ---------------------------------------------------------------------------


async def test_ts_sets_the_time_of_an_as_event(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    user_id = (await ghost(as_hs, "_bridge_ts", inhibit_login=True))["user_id"]
    assert (await join_as(as_hs, room_id, user_id)).status == 200
    sent = await as_hs.client.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "from the past"},
        params={"user_id": user_id, "ts": "1234567890123"},
        headers=as_headers(),
    )
    assert sent.status == 200, await sent.text()
    assert await event_ts(as_hs, room_id, (await sent.json())["event_id"]) == 1234567890123
    state = await as_hs.client.put(
        f"{V3}/rooms/{room_id}/state/m.room.topic/",
        json={"topic": "old topic"},
        params={"ts": "1000"},
        headers=as_headers(),
    )
    assert state.status == 403  # the sender is not in the room: nothing is sent
    # with alice's own token ts is ignored
    topic = await as_hs.client.put(
        f"{V3}/rooms/{room_id}/state/m.room.topic/",
        json={"topic": "new topic"},
        params={"ts": "1000"},
        headers=user_headers(alice),
    )
    assert topic.status == 200
    assert await event_ts(as_hs, room_id, (await topic.json())["event_id"]) != 1000


async def test_ts_on_state_and_member_events(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    user_id = (await ghost(as_hs, "_bridge_st", inhibit_login=True))["user_id"]
    assert (await join_as(as_hs, room_id, user_id)).status == 200
    member = await as_hs.client.put(
        f"{V3}/rooms/{room_id}/state/m.room.member/{user_id}",
        json={"membership": "join", "displayname": "Bridged"},
        params={"user_id": user_id, "ts": "2000"},
        headers=as_headers(),
    )
    assert member.status == 200, await member.text()
    assert await event_ts(as_hs, room_id, (await member.json())["event_id"]) == 2000
    state = await as_hs.client.put(
        f"{V3}/rooms/{room_id}/state/org.example.bridge/x",
        json={"n": 1},
        params={"user_id": user_id, "ts": "3000"},
        headers=as_headers(),
    )
    # a ghost without power may not: the event is refused and nothing is stored
    assert state.status == 403


@pytest.mark.parametrize("ts", ["abc", "-5", "1.5", "", "9007199254740992", "١٢"])
async def test_a_bad_ts_is_refused(as_hs: HomeserverHarness, ts: str) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    assert (await join_as(as_hs, room_id)).status == 200
    before = await as_hs.server.stores.events.get_forward_extremities(room_id)
    resp = await as_hs.client.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/bad",
        json={"msgtype": "m.text", "body": "x"},
        params={"ts": ts},
        headers=as_headers(),
    )
    await assert_error(resp, 400, "M_INVALID_PARAM")
    assert await as_hs.server.stores.events.get_forward_extremities(room_id) == before


async def test_ts_is_ignored_for_normal_users(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    as_hs.clock.advance(5)
    resp = await as_hs.client.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "now"},
        params={"ts": "not even a number"},
        headers=user_headers(alice),
    )
    assert resp.status == 200, await resp.text()
    ts = await event_ts(as_hs, room_id, (await resp.json())["event_id"])
    assert ts == as_hs.clock.time_ms()


# -- rate limits -------------------------------------------------------------------


async def limited_homeserver(
    make_homeserver: HarnessFactory, tmp_path: Path, url: str, *, rate_limited: bool
) -> HomeserverHarness:
    return await homeserver_with(
        make_homeserver,
        tmp_path,
        registration(url, rate_limited=rate_limited),
        rc_message=TIGHT,
        rc_room_creation=TIGHT,
        rc_joins={"local": TIGHT, "remote": TIGHT},
        rc_presence={"per_user": TIGHT},
    )


async def burst(hs: HomeserverHarness, user_id: str | None) -> list[int]:
    """Two of each limited action by the service (as ``user_id``); their statuses."""
    params = {"user_id": user_id} if user_id else {}
    statuses: list[int] = []
    rooms = []
    for _ in range(2):
        resp = await hs.client.post(
            f"{V3}/createRoom", json={"preset": "public_chat"}, params=params, headers=as_headers()
        )
        statuses.append(resp.status)
        if resp.status == 200:
            rooms.append((await resp.json())["room_id"])
    room_id = rooms[0]
    for n in range(2):
        resp = await hs.client.put(
            f"{V3}/rooms/{room_id}/send/m.room.message/m{n}",
            json={"msgtype": "m.text", "body": "x"},
            params=params,
            headers=as_headers(),
        )
        statuses.append(resp.status)
    who = user_id or "@bridgebot:test.local"
    for state in ("online", "offline"):
        resp = await hs.client.put(
            f"{V3}/presence/{who}/status",
            json={"presence": state},
            params=params,
            headers=as_headers(),
        )
        statuses.append(resp.status)
    return statuses


async def test_as_users_are_exempt_from_rate_limits(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    hs = await limited_homeserver(make_homeserver, tmp_path, appservice[1], rate_limited=False)
    assert set(await burst(hs, None)) == {200}
    user_id = (await ghost(hs, "_bridge_fast", inhibit_login=True))["user_id"]
    assert set(await burst(hs, user_id)) == {200}
    # joins too
    alice = await hs.register("alice")
    rooms = [await public_room(hs, alice)]
    for room_id in rooms:
        assert (await join_as(hs, room_id, user_id)).status == 200
    alice_room = await hs.client.post(f"{V3}/createRoom", json={}, headers=user_headers(alice))
    assert alice_room.status == 429  # a normal user is limited


async def test_rate_limited_services_are_limited(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    hs = await limited_homeserver(make_homeserver, tmp_path, appservice[1], rate_limited=True)
    assert await burst(hs, None) == [200, 429, 200, 429, 200, 429]


# -- deactivation ------------------------------------------------------------------


async def test_as_deactivates_a_ghost_without_uia(as_hs: HomeserverHarness) -> None:
    body = await ghost(as_hs, "_bridge_bye")
    resp = await as_hs.client.post(
        f"{V3}/account/deactivate",
        json={},
        params={"user_id": body["user_id"]},
        headers=as_headers(),
    )
    assert resp.status == 200, await resp.text()
    record = await as_hs.server.stores.accounts.get_user(body["user_id"])
    assert record is not None and record.deactivated
    gone = await as_hs.client.get(f"{V3}/account/whoami", headers=user_headers(body))
    assert gone.status == 401
    again = await as_hs.client.get(
        f"{V3}/account/whoami", params={"user_id": body["user_id"]}, headers=as_headers()
    )
    assert again.status == 403


async def test_a_ghost_with_its_own_token_still_needs_uia(as_hs: HomeserverHarness) -> None:
    body = await ghost(as_hs, "_bridge_self")
    resp = await as_hs.client.post(f"{V3}/account/deactivate", json={}, headers=user_headers(body))
    assert resp.status == 401
    record = await as_hs.server.stores.accounts.get_user(body["user_id"])
    assert record is not None and not record.deactivated


# -- devices (MSC4190) ---------------------------------------------------------------


async def test_as_creates_and_deletes_devices_of_its_users(as_hs: HomeserverHarness) -> None:
    user_id = (await ghost(as_hs, "_bridge_e2ee", inhibit_login=True))["user_id"]
    params = {"user_id": user_id}
    url = f"{V3}/devices/BRIDGEDEV"
    created = await as_hs.client.put(
        url, json={"display_name": "Bridge"}, params=params, headers=as_headers()
    )
    assert created.status == 201, await created.text()
    renamed = await as_hs.client.put(
        url, json={"display_name": "Bridge 2"}, params=params, headers=as_headers()
    )
    assert renamed.status == 200
    devices = await as_hs.server.stores.devices.get_devices(user_id)
    assert [(d.device_id, d.display_name) for d in devices] == [("BRIDGEDEV", "Bridge 2")]
    # the service may now act as that device
    whoami = await as_hs.client.get(
        f"{V3}/account/whoami", params={**params, "device_id": "BRIDGEDEV"}, headers=as_headers()
    )
    assert (await whoami.json())["device_id"] == "BRIDGEDEV"
    deleted = await as_hs.client.delete(url, params=params, headers=as_headers())
    assert deleted.status == 200, await deleted.text()
    assert await as_hs.server.stores.devices.get_devices(user_id) == []
    for device_id in ("D1", "D2"):
        await as_hs.client.put(
            f"{V3}/devices/{device_id}", json={}, params=params, headers=as_headers()
        )
    bulk = await as_hs.client.post(
        f"{V3}/delete_devices",
        json={"devices": ["D1", "D2"]},
        params=params,
        headers=as_headers(),
    )
    assert bulk.status == 200, await bulk.text()
    assert await as_hs.server.stores.devices.get_devices(user_id) == []


async def test_device_bad_inputs(as_hs: HomeserverHarness) -> None:
    user_id = (await ghost(as_hs, "_bridge_dv", inhibit_login=True))["user_id"]
    params = {"user_id": user_id}
    bad_name = await as_hs.client.put(
        f"{V3}/devices/X", json={"display_name": 5}, params=params, headers=as_headers()
    )
    await assert_error(bad_name, 400, "M_BAD_JSON")
    missing = await as_hs.client.delete(f"{V3}/devices/NOPE", params=params, headers=as_headers())
    await assert_error(missing, 404, "M_NOT_FOUND")
    assert await as_hs.server.stores.devices.get_devices(user_id) == []
    # a normal user cannot create a device this way, nor delete one without UIA
    alice = await as_hs.register("alice")
    created = await as_hs.client.put(f"{V3}/devices/NEW", json={}, headers=user_headers(alice))
    await assert_error(created, 404, "M_NOT_FOUND")
    delete = await as_hs.client.delete(
        f"{V3}/devices/{alice['device_id']}", headers=user_headers(alice)
    )
    assert delete.status == 401
    assert len(await as_hs.server.stores.devices.get_devices(alice["user_id"])) == 1


# -- last seen (track_appservice_user_ips) -------------------------------------------


async def last_seen_ip(hs: HomeserverHarness, user_id: str, device_id: str) -> str | None:
    device = await hs.server.stores.devices.get_device(user_id, device_id)
    assert device is not None
    return device.last_seen_ip


async def test_as_requests_leave_no_ip_unless_tracked(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    url = appservice[1]
    untracked = await homeserver_with(make_homeserver, tmp_path, registration(url))
    body = await ghost(untracked, "_bridge_ip")
    params = {"user_id": body["user_id"], "device_id": body["device_id"]}
    resp = await untracked.client.get(f"{V3}/account/whoami", params=params, headers=as_headers())
    assert resp.status == 200
    assert await last_seen_ip(untracked, body["user_id"], body["device_id"]) is None
    # the ghost's own token is an ordinary session: tracked
    await untracked.client.get(f"{V3}/account/whoami", headers=user_headers(body))
    assert await last_seen_ip(untracked, body["user_id"], body["device_id"]) == "127.0.0.1"

    tracked_dir = tmp_path / "tracked"
    tracked_dir.mkdir()
    tracked = await homeserver_with(
        make_homeserver, tracked_dir, registration(url), track_appservice_user_ips=True
    )
    other = await ghost(tracked, "_bridge_ip2")
    params = {"user_id": other["user_id"], "device_id": other["device_id"]}
    await tracked.client.get(f"{V3}/account/whoami", params=params, headers=as_headers())
    assert await last_seen_ip(tracked, other["user_id"], other["device_id"]) == "127.0.0.1"


async def test_last_seen_is_written_at_most_every_two_minutes(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    await as_hs.client.get(f"{V3}/account/whoami", headers=user_headers(alice))
    device = await as_hs.server.stores.devices.get_device(alice["user_id"], alice["device_id"])
    assert device is not None and device.last_seen_ip == "127.0.0.1"
    first = device.last_seen_ts
    as_hs.clock.advance(60)
    await as_hs.client.get(f"{V3}/account/whoami", headers=user_headers(alice))
    device = await as_hs.server.stores.devices.get_device(alice["user_id"], alice["device_id"])
    assert device is not None and device.last_seen_ts == first
    as_hs.clock.advance(61)
    await as_hs.client.get(f"{V3}/account/whoami", headers=user_headers(alice))
    device = await as_hs.server.stores.devices.get_device(alice["user_id"], alice["device_id"])
    assert device is not None and device.last_seen_ts == as_hs.clock.time_ms()
