"""Whois, devices and login as a user, through the admin API."""

from __future__ import annotations

from urllib.parse import quote

from tests.admin.users.helpers import V1, V2, admin_and_user, auth, call, error_of, user_path
from tests.conftest import HomeserverHarness

USER = "@user:test.local"
C = "/_matrix/client/v3"


async def test_whois_lists_each_device_with_where_it_was_seen(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    headers = {**auth(user), "User-Agent": "TestAgent/1.0"}
    whoami = await hs.client.get(f"{C}/account/whoami", headers=headers)
    device_id = (await whoami.json())["device_id"]
    status, body = await call(hs, "GET", f"{V1}/whois/{quote(USER)}", admin)
    assert status == 200
    assert body["user_id"] == USER
    assert list(body["devices"]) == [device_id]
    connections = body["devices"][device_id]["sessions"][0]["connections"]
    agents = {c["user_agent"] for c in connections}
    assert "TestAgent/1.0" in agents
    seen = next(c for c in connections if c["user_agent"] == "TestAgent/1.0")
    assert seen["ip"] == "127.0.0.1"
    assert seen["last_seen"] == hs.clock.time_ms()
    # the device listing carries the user agent too
    status, devices = await call(hs, "GET", user_path(V2, USER, "/devices"), admin)
    assert devices["devices"][0]["last_seen_user_agent"] == "TestAgent/1.0"
    assert devices["devices"][0]["last_seen_ip"] == "127.0.0.1"
    # a user may whois themselves, on the client API too (as SyTest's /whois)
    status, own = await call(hs, "GET", f"{C}/admin/whois/{quote(USER)}", user)
    assert status == 200 and own["user_id"] == USER
    status, _ = await call(hs, "GET", f"/_matrix/client/r0/admin/whois/{quote(USER)}", user)
    assert status == 200
    assert await error_of(hs, "GET", f"{C}/admin/whois/{quote('@admin:test.local')}", user) == (
        403,
        "M_FORBIDDEN",
    )


async def test_devices(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    devices_path = user_path(V2, USER, "/devices")
    status, body = await call(hs, "GET", devices_path, admin)
    assert status == 200 and body["total"] == 1
    first = body["devices"][0]
    assert first["user_id"] == USER and first["dehydrated"] is False
    assert (await call(hs, "POST", devices_path, admin, {"device_id": "ADMINMADE"})) == (200, {})
    # creating it again does nothing
    assert (await call(hs, "POST", devices_path, admin, {"device_id": "ADMINMADE"}))[0] == 200
    status, body = await call(hs, "GET", devices_path, admin)
    assert sorted(d["device_id"] for d in body["devices"]) == sorted(
        ["ADMINMADE", first["device_id"]]
    )
    one = user_path(V2, USER, "/devices/ADMINMADE")
    assert await call(hs, "PUT", one, admin, {"display_name": "Kiosk"}) == (200, {})
    status, device = await call(hs, "GET", one, admin)
    assert status == 200
    assert device["display_name"] == "Kiosk" and device["device_id"] == "ADMINMADE"
    assert await error_of(hs, "PUT", one, admin, {"display_name": 7}) == (400, "M_BAD_JSON")
    assert (await call(hs, "GET", one, admin))[1]["display_name"] == "Kiosk"
    missing = user_path(V2, USER, "/devices/NOPE")
    assert await error_of(hs, "GET", missing, admin) == (404, "M_NOT_FOUND")
    assert await error_of(hs, "PUT", missing, admin, {"display_name": "x"}) == (404, "M_NOT_FOUND")
    assert await error_of(hs, "POST", devices_path, admin, {}) == (400, "M_MISSING_PARAM")
    # deleting a device takes its tokens with it
    path = user_path(V2, USER, f"/devices/{first['device_id']}")
    assert await call(hs, "DELETE", path, admin) == (200, {})
    assert await error_of(hs, "GET", f"{C}/account/whoami", user) == (401, "M_UNKNOWN_TOKEN")
    assert await hs.server.stores.devices.get_device(USER, first["device_id"]) is None
    bulk = user_path(V2, USER, "/delete_devices")
    assert await error_of(hs, "POST", bulk, admin, {"devices": "ADMINMADE"}) == (400, "M_BAD_JSON")
    assert await error_of(hs, "POST", bulk, admin, {}) == (400, "M_MISSING_PARAM")
    assert len(await hs.server.stores.devices.get_devices(USER)) == 1
    assert await call(hs, "POST", bulk, admin, {"devices": ["ADMINMADE", "UNKNOWN"]}) == (200, {})
    assert await hs.server.stores.devices.get_devices(USER) == []


async def test_login_as_a_user(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    path = user_path(V1, USER, "/login")
    status, body = await call(hs, "POST", path, admin, {})
    assert status == 200
    token = body["access_token"]
    status, whoami = await call(hs, "GET", f"{C}/account/whoami", token)
    assert status == 200 and whoami["user_id"] == USER
    # no new device for the user to see
    status, devices = await call(hs, "GET", f"{C}/devices", token)
    assert status == 200 and len(devices["devices"]) == 1
    # a token that expires
    status, body = await call(
        hs, "POST", path, admin, {"valid_until_ms": hs.clock.time_ms() + 1000}
    )
    short = body["access_token"]
    assert (await call(hs, "GET", f"{C}/account/whoami", short))[0] == 200
    hs.clock.advance(2)
    assert await error_of(hs, "GET", f"{C}/account/whoami", short) == (401, "M_UNKNOWN_TOKEN")
    assert (await call(hs, "GET", f"{C}/account/whoami", token))[0] == 200
    # not as oneself, not with a bad expiry
    status, payload = await call(
        hs, "POST", user_path(V1, "@admin:test.local", "/login"), admin, {}
    )
    assert (status, payload["error"]) == (400, "Cannot use admin API to login as self")
    assert await error_of(hs, "POST", path, admin, {"valid_until_ms": "soon"}) == (
        400,
        "M_UNKNOWN",
    )
    # the token dies with the account
    assert (await call(hs, "POST", f"{V1}/deactivate/{quote(USER)}", admin, {}))[0] == 200
    assert await error_of(hs, "GET", f"{C}/account/whoami", token) == (401, "M_UNKNOWN_TOKEN")
