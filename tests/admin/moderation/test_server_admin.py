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
