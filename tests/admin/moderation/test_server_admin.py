"""Server-wide admin endpoints: the server version and the background updates API."""

from __future__ import annotations

from importlib import metadata

from tests.admin.moderation.helpers import (
    ADMIN,
    admin_and_user,
    auth,
    check_admin_only,
    expect_error,
)
from tests.conftest import HomeserverHarness


async def test_server_version_is_open_like_synapse(hs: HomeserverHarness) -> None:
    response = await hs.client.get(f"{ADMIN}/server_version")
    assert response.status == 200
    assert await response.json() == {"server_version": metadata.version("homeserver")}


async def test_background_updates(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    response = await hs.client.get(f"{ADMIN}/background_updates/status", headers=auth(admin))
    assert await response.json() == {"enabled": True, "current_updates": {}}
    response = await hs.client.post(
        f"{ADMIN}/background_updates/enabled", json={"enabled": False}, headers=auth(admin)
    )
    assert await response.json() == {"enabled": False}
    response = await hs.client.get(f"{ADMIN}/background_updates/enabled", headers=auth(admin))
    assert await response.json() == {"enabled": False}
    response = await hs.client.get(f"{ADMIN}/background_updates/status", headers=auth(admin))
    assert await response.json() == {"enabled": False, "current_updates": {}}
    response = await hs.client.post(
        f"{ADMIN}/background_updates/enabled", json={"enabled": "yes"}, headers=auth(admin)
    )
    await expect_error(response, 400, "M_BAD_JSON")
    response = await hs.client.post(
        f"{ADMIN}/background_updates/enabled", data=b"{not json", headers=auth(admin)
    )
    await expect_error(response, 400, "M_NOT_JSON")
    for method, path in (
        ("GET", f"{ADMIN}/background_updates/status"),
        ("GET", f"{ADMIN}/background_updates/enabled"),
        ("POST", f"{ADMIN}/background_updates/enabled"),
    ):
        await check_admin_only(hs, user, method, path, json={"enabled": True})
    response = await hs.client.get(f"{ADMIN}/background_updates/enabled", headers=auth(admin))
    assert await response.json() == {"enabled": False}
    response = await hs.client.post(
        f"{ADMIN}/background_updates/enabled", json={}, headers=auth(admin)
    )
    assert await response.json() == {"enabled": True}


async def test_a_deactivated_admin_is_refused(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    first = await hs.client.post(
        "/_matrix/client/v3/account/deactivate", json={}, headers=auth(admin)
    )
    session = (await first.json())["session"]
    response = await hs.client.post(
        "/_matrix/client/v3/account/deactivate",
        json={
            "auth": {
                "type": "m.login.password",
                "user": "admin",
                "password": "correct horse",
                "session": session,
            }
        },
        headers=auth(admin),
    )
    assert response.status == 200
    record = await hs.server.stores.accounts.get_user("@admin:test.local")
    assert record is not None and record.is_admin and record.deactivated  # still flagged
    for method, path in (
        ("GET", f"{ADMIN}/background_updates/status"),
        ("GET", f"{ADMIN}/event_reports"),
        ("GET", f"{ADMIN}/user_reports"),
        ("POST", f"{ADMIN}/media/delete?before_ts=99999999999999"),
        ("POST", f"{ADMIN}/user/@user:test.local/media/quarantine"),
        ("POST", f"{ADMIN}/send_server_notice"),
    ):
        response = await hs.client.request(method, path, headers=auth(admin), json={})
        await expect_error(response, 401, "M_UNKNOWN_TOKEN")
