"""``POST /login`` with ``m.login.application_service``: the as_token logs in a
registered user of the service's namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.appservice.conftest import (
    AS_TOKEN,
    FakeAppService,
    as_headers,
    homeserver_with,
    registration,
)
from tests.appservice.test_users_register import AS_TYPE, as_register, assert_error
from tests.conftest import HarnessFactory, HomeserverHarness

LOGIN = "/_matrix/client/v3/login"


def login_body(user: str, **extra: Any) -> dict[str, Any]:
    return {"type": AS_TYPE, "identifier": {"type": "m.id.user", "user": user}, **extra}


async def ghost(hs: HomeserverHarness, localpart: str) -> str:
    resp = await as_register(hs, {"type": AS_TYPE, "username": localpart, "inhibit_login": True})
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["user_id"])


async def devices_of(hs: HomeserverHarness, user_id: str) -> list[str]:
    return [d.device_id for d in await hs.server.stores.devices.get_devices(user_id)]


async def test_flows_offer_the_type_when_a_service_is_registered(
    as_hs: HomeserverHarness, make_homeserver: HarnessFactory
) -> None:
    flows = (await (await as_hs.client.get(LOGIN)).json())["flows"]
    assert {"type": AS_TYPE} in flows
    plain = await make_homeserver()
    flows = (await (await plain.client.get(LOGIN)).json())["flows"]
    assert {"type": AS_TYPE} not in flows


async def test_as_logs_in_a_ghost(as_hs: HomeserverHarness) -> None:
    user_id = await ghost(as_hs, "_bridge_alice")
    resp = await as_hs.client.post(
        LOGIN,
        json=login_body(user_id, device_id="BRIDGEDEV", initial_device_display_name="Bridge"),
        headers=as_headers(),
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["user_id"] == user_id and body["device_id"] == "BRIDGEDEV"
    assert body["home_server"] == "test.local"
    whoami = await as_hs.client.get(
        "/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert await whoami.json() == {"user_id": user_id, "device_id": "BRIDGEDEV", "is_guest": False}


async def test_a_localpart_and_the_sender_may_log_in(as_hs: HomeserverHarness) -> None:
    await ghost(as_hs, "_bridge_bob")
    by_localpart = await as_hs.client.post(
        LOGIN, json=login_body("_bridge_bob"), headers=as_headers()
    )
    assert (await by_localpart.json())["user_id"] == "@_bridge_bob:test.local"
    sender = await as_hs.client.post(LOGIN, json=login_body("bridgebot"), headers=as_headers())
    assert sender.status == 200, await sender.text()
    assert (await sender.json())["user_id"] == "@bridgebot:test.local"


async def test_a_user_outside_the_namespace_is_refused(as_hs: HomeserverHarness) -> None:
    await as_hs.register("alice")
    resp = await as_hs.client.post(
        LOGIN, json=login_body("@alice:test.local"), headers=as_headers()
    )
    await assert_error(resp, 403, "M_FORBIDDEN")
    assert await devices_of(as_hs, "@alice:test.local") != []  # only the registration's
    assert len(await devices_of(as_hs, "@alice:test.local")) == 1


async def test_an_unregistered_namespace_user_is_refused(as_hs: HomeserverHarness) -> None:
    resp = await as_hs.client.post(
        LOGIN, json=login_body("@_bridge_nobody:test.local"), headers=as_headers()
    )
    await assert_error(resp, 403, "M_FORBIDDEN")
    assert await as_hs.server.stores.accounts.get_user("@_bridge_nobody:test.local") is None


async def test_a_deactivated_ghost_is_refused(as_hs: HomeserverHarness) -> None:
    user_id = await ghost(as_hs, "_bridge_gone")
    await as_hs.server.client.accounts.deactivate(user_id)
    resp = await as_hs.client.post(LOGIN, json=login_body(user_id), headers=as_headers())
    await assert_error(resp, 403, "M_USER_DEACTIVATED")
    assert await devices_of(as_hs, user_id) == []


async def test_the_type_needs_an_as_token(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    user_token = await as_hs.client.post(
        LOGIN,
        json=login_body("@alice:test.local"),
        headers={"Authorization": f"Bearer {alice['access_token']}"},
    )
    await assert_error(user_token, 401, "M_UNKNOWN_TOKEN")
    missing = await as_hs.client.post(LOGIN, json=login_body("@_bridge_x:test.local"))
    await assert_error(missing, 401, "M_MISSING_TOKEN")
    assert len(await devices_of(as_hs, "@alice:test.local")) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"type": AS_TYPE},
        {"type": AS_TYPE, "identifier": "@_bridge_a:test.local"},
        {"type": AS_TYPE, "identifier": {"type": "m.id.thirdparty", "medium": "email"}},
        {"type": AS_TYPE, "identifier": {"type": "m.id.user", "user": 5}},
        {"type": AS_TYPE, "identifier": {"type": "m.id.user", "user": ""}},
    ],
)
async def test_bad_identifiers_are_refused(as_hs: HomeserverHarness, body: dict[str, Any]) -> None:
    user_id = await ghost(as_hs, "_bridge_a")
    resp = await as_hs.client.post(LOGIN, json=body, headers=as_headers())
    await assert_error(resp, 400, "M_INVALID_PARAM")
    assert await devices_of(as_hs, user_id) == []


async def test_msc4190_services_cannot_log_in(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    url = appservice[1]
    hs = await homeserver_with(
        make_homeserver, tmp_path, registration(url, **{"io.element.msc4190": True})
    )
    user_id = await ghost(hs, "_bridge_e2ee")
    resp = await hs.client.post(LOGIN, json=login_body(user_id), headers=as_headers(AS_TOKEN))
    await assert_error(resp, 400, "M_APPSERVICE_LOGIN_UNSUPPORTED")
    assert await devices_of(hs, user_id) == []


async def test_login_limits_apply_only_to_rate_limited_services(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    url = appservice[1]
    tight = {"per_second": 0.001, "burst_count": 1}
    limits = {"address": tight, "account": tight, "failed_attempts": tight}
    free = await homeserver_with(make_homeserver, tmp_path, registration(url), rc_login=limits)
    user_id = await ghost(free, "_bridge_busy")
    for _ in range(3):
        resp = await free.client.post(LOGIN, json=login_body(user_id), headers=as_headers())
        assert resp.status == 200, await resp.text()
    limited_dir = tmp_path / "limited"
    limited_dir.mkdir()
    limited = await homeserver_with(
        make_homeserver, limited_dir, registration(url, rate_limited=True), rc_login=limits
    )
    first = await limited.client.post(LOGIN, json=login_body(user_id), headers=as_headers())
    assert first.status == 200, await first.text()
    second = await limited.client.post(LOGIN, json=login_body(user_id), headers=as_headers())
    await assert_error(second, 429, "M_LIMIT_EXCEEDED")
