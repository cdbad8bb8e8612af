"""Identity assertion: the as_token acts as the service's sender, or as a user of its
namespace named by ``user_id``; anything else is refused."""

from __future__ import annotations

from tests.appservice.conftest import as_headers
from tests.conftest import HomeserverHarness


async def test_as_token_acts_as_the_sender(as_hs: HomeserverHarness) -> None:
    resp = await as_hs.client.get("/_matrix/client/v3/account/whoami", headers=as_headers())
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user_id"] == "@bridgebot:test.local"


async def test_user_outside_the_namespace_is_refused(as_hs: HomeserverHarness) -> None:
    await as_hs.register("alice")
    resp = await as_hs.client.get(
        "/_matrix/client/v3/account/whoami",
        params={"user_id": "@alice:test.local"},
        headers=as_headers(),
    )
    assert resp.status == 403
    assert (await resp.json())["errcode"] == "M_FORBIDDEN"


async def test_unregistered_namespace_user_is_refused(as_hs: HomeserverHarness) -> None:
    resp = await as_hs.client.get(
        "/_matrix/client/v3/account/whoami",
        params={"user_id": "@_bridge_nobody:test.local"},
        headers=as_headers(),
    )
    assert resp.status == 403


async def test_remote_user_is_refused(as_hs: HomeserverHarness) -> None:
    resp = await as_hs.client.get(
        "/_matrix/client/v3/account/whoami",
        params={"user_id": "@_bridge_x:elsewhere.example"},
        headers=as_headers(),
    )
    assert resp.status == 403


async def test_unknown_device_is_refused(as_hs: HomeserverHarness) -> None:
    resp = await as_hs.client.get(
        "/_matrix/client/v3/account/whoami",
        params={"device_id": "NOPE"},
        headers=as_headers(),
    )
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_UNKNOWN_DEVICE"


async def test_user_id_is_ignored_for_a_user_token(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    resp = await as_hs.client.get(
        "/_matrix/client/v3/account/whoami",
        params={"user_id": "@bridgebot:test.local"},
        headers={"Authorization": f"Bearer {alice['access_token']}"},
    )
    assert resp.status == 200
    assert (await resp.json())["user_id"] == "@alice:test.local"
