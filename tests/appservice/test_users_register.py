"""``m.login.application_service`` registration, and normal users kept out of the
exclusive namespaces of application services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homeserver.errors import MatrixError
from tests.appservice.conftest import (
    AS_TOKEN,
    SERVER_NAME,
    FakeAppService,
    as_headers,
    homeserver_with,
    registration,
)
from tests.conftest import HarnessFactory, HomeserverHarness

REGISTER = "/_matrix/client/v3/register"
AS_TYPE = "m.login.application_service"


async def as_register(hs: HomeserverHarness, body: dict[str, Any], token: str | None = AS_TOKEN):
    headers = as_headers(token) if token is not None else {}
    return await hs.client.post(REGISTER, json=body, headers=headers)


async def assert_error(resp: Any, status: int, errcode: str) -> None:
    assert resp.status == status, await resp.text()
    assert (await resp.json())["errcode"] == errcode


async def user_exists(hs: HomeserverHarness, user_id: str) -> bool:
    return await hs.server.stores.accounts.get_user(user_id) is not None


# -- m.login.application_service -------------------------------------------------


async def test_as_registers_a_namespace_user(as_hs: HomeserverHarness) -> None:
    resp = await as_register(as_hs, {"type": AS_TYPE, "username": "_bridge_alice"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["user_id"] == "@_bridge_alice:test.local"
    assert body["access_token"] and body["device_id"]
    whoami = await as_hs.client.get(
        "/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert (await whoami.json())["user_id"] == "@_bridge_alice:test.local"
    profile = await as_hs.client.get("/_matrix/client/v3/profile/@_bridge_alice:test.local")
    assert (await profile.json())["displayname"] == "_bridge_alice"


async def test_the_type_may_be_given_in_auth(as_hs: HomeserverHarness) -> None:
    resp = await as_register(as_hs, {"auth": {"type": AS_TYPE}, "username": "_bridge_bob"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user_id"] == "@_bridge_bob:test.local"


async def test_inhibit_login_gives_no_session(as_hs: HomeserverHarness) -> None:
    resp = await as_register(
        as_hs, {"type": AS_TYPE, "username": "_bridge_quiet", "inhibit_login": True}
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"user_id": "@_bridge_quiet:test.local"}
    assert await as_hs.server.stores.devices.get_devices("@_bridge_quiet:test.local") == []


async def test_as_registration_ignores_closed_registration_and_limits(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    hs = await homeserver_with(
        make_homeserver,
        tmp_path,
        registration(appservice[1]),
        enable_registration=False,
        registration_requires_token=True,
        rc_registration={"per_second": 0.001, "burst_count": 1},
    )
    for n in range(3):
        resp = await as_register(hs, {"type": AS_TYPE, "username": f"_bridge_{n}"})
        assert resp.status == 200, await resp.text()
    normal = await hs.client.post(REGISTER, json={"username": "carol", "password": "pw"})
    assert normal.status == 403


async def test_a_user_outside_the_namespace_is_refused(as_hs: HomeserverHarness) -> None:
    resp = await as_register(as_hs, {"type": AS_TYPE, "username": "alice"})
    await assert_error(resp, 400, "M_EXCLUSIVE")
    assert not await user_exists(as_hs, "@alice:test.local")


async def test_another_services_exclusive_namespace_is_refused(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    url = appservice[1]
    wide = registration(url)
    wide["namespaces"]["users"].append({"regex": r"@_irc_.*:test\.local", "exclusive": False})
    irc = registration(
        url,
        id="irc",
        as_token="irc_as_token",
        hs_token="irc_hs_token",
        sender_localpart="ircbot",
        namespaces={"users": [{"regex": r"@_irc_.*:test\.local", "exclusive": True}]},
    )
    hs = await homeserver_with(make_homeserver, tmp_path, wide, irc)
    resp = await as_register(hs, {"type": AS_TYPE, "username": "_irc_nick"})
    await assert_error(resp, 400, "M_EXCLUSIVE")
    assert not await user_exists(hs, "@_irc_nick:test.local")
    resp = await as_register(hs, {"type": AS_TYPE, "username": "_irc_nick"}, "irc_as_token")
    assert resp.status == 200, await resp.text()


async def test_a_taken_user_id_is_in_use(as_hs: HomeserverHarness) -> None:
    first = await as_register(as_hs, {"type": AS_TYPE, "username": "_bridge_alice"})
    assert first.status == 200
    again = await as_register(as_hs, {"type": AS_TYPE, "username": "_bridge_alice"})
    await assert_error(again, 400, "M_USER_IN_USE")
    assert len(await as_hs.server.stores.devices.get_devices("@_bridge_alice:test.local")) == 1


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"type": AS_TYPE}, "M_MISSING_PARAM"),
        ({"type": AS_TYPE, "username": 12}, "M_BAD_JSON"),
        ({"type": AS_TYPE, "username": ""}, "M_INVALID_USERNAME"),
        ({"type": AS_TYPE, "username": "_bridge_a:b"}, "M_INVALID_USERNAME"),
        ({"type": AS_TYPE, "username": "_bridge_ é"}, "M_INVALID_USERNAME"),
        ({"type": AS_TYPE, "username": "_bridge_" + "x" * 250}, "M_INVALID_USERNAME"),
        ({"type": AS_TYPE, "username": "_bridge_x", "inhibit_login": "yes"}, "M_BAD_JSON"),
    ],
)
async def test_bad_bodies_are_refused(
    as_hs: HomeserverHarness, body: dict[str, Any], errcode: str
) -> None:
    resp = await as_register(as_hs, body)
    await assert_error(resp, 400, errcode)
    assert not await user_exists(as_hs, "@_bridge_x:test.local")


async def test_historical_characters_are_allowed_for_a_service(as_hs: HomeserverHarness) -> None:
    resp = await as_register(as_hs, {"type": AS_TYPE, "username": "_bridge_Nick[away]"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user_id"] == "@_bridge_Nick[away]:test.local"


async def test_the_as_type_needs_an_as_token(as_hs: HomeserverHarness) -> None:
    missing = await as_register(as_hs, {"type": AS_TYPE, "username": "_bridge_x"}, None)
    await assert_error(missing, 400, "M_MISSING_TOKEN")
    alice = await as_hs.register("alice")
    user_token = await as_register(
        as_hs, {"type": AS_TYPE, "username": "_bridge_x"}, alice["access_token"]
    )
    await assert_error(user_token, 401, "M_UNKNOWN_TOKEN")
    assert not await user_exists(as_hs, "@_bridge_x:test.local")


async def test_another_type_with_an_access_token_is_refused(as_hs: HomeserverHarness) -> None:
    resp = await as_register(as_hs, {"username": "dave", "password": "pw"})
    await assert_error(resp, 400, "M_UNKNOWN")
    assert not await user_exists(as_hs, "@dave:test.local")


async def test_msc4190_services_must_inhibit_login(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    url = appservice[1]
    hs = await homeserver_with(
        make_homeserver, tmp_path, registration(url, **{"io.element.msc4190": True})
    )
    resp = await as_register(hs, {"type": AS_TYPE, "username": "_bridge_x"})
    await assert_error(resp, 400, "M_APPSERVICE_LOGIN_UNSUPPORTED")
    assert not await user_exists(hs, "@_bridge_x:test.local")
    resp = await as_register(hs, {"type": AS_TYPE, "username": "_bridge_x", "inhibit_login": True})
    assert resp.status == 200, await resp.text()


async def test_the_sender_has_an_account(as_hs: HomeserverHarness) -> None:
    record = await as_hs.server.stores.accounts.get_user(f"@bridgebot:{SERVER_NAME}")
    assert record is not None and record.password_hash is None
    profile = await as_hs.client.get("/_matrix/client/v3/profile/@bridgebot:test.local")
    assert profile.status == 200


# -- normal users and exclusive namespaces ---------------------------------------------


async def test_normal_users_cannot_register_in_an_exclusive_namespace(
    as_hs: HomeserverHarness,
) -> None:
    for name in ("_bridge_alice", "bridgebot"):
        resp = await as_hs.client.post(REGISTER, json={"username": name, "password": "pw"})
        await assert_error(resp, 400, "M_EXCLUSIVE")  # before UIA starts
        available = await as_hs.client.get(
            "/_matrix/client/v3/register/available", params={"username": name}
        )
        await assert_error(available, 400, "M_EXCLUSIVE")
    assert not await user_exists(as_hs, "@_bridge_alice:test.local")


async def test_the_exclusive_check_holds_after_uia(as_hs: HomeserverHarness) -> None:
    """A username given only once UIA completes is checked too."""
    first = await as_hs.client.post(REGISTER, json={"password": "pw"})
    assert first.status == 401
    session = (await first.json())["session"]
    second = await as_hs.client.post(
        REGISTER,
        json={
            "username": "_bridge_late",
            "password": "pw",
            "auth": {"type": "m.login.dummy", "session": session},
        },
    )
    await assert_error(second, 400, "M_EXCLUSIVE")
    assert not await user_exists(as_hs, "@_bridge_late:test.local")


async def test_non_exclusive_namespaces_stay_open(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    url = appservice[1]
    raw = registration(url)
    raw["namespaces"]["users"].append({"regex": r"@shared_.*:test\.local", "exclusive": False})
    hs = await homeserver_with(make_homeserver, tmp_path, raw)
    body = await hs.register("shared_eve")
    assert body["user_id"] == "@shared_eve:test.local"
    resp = await as_register(hs, {"type": AS_TYPE, "username": "shared_frank"})
    assert resp.status == 200, await resp.text()


async def test_admin_registration_is_refused_too(as_hs: HomeserverHarness) -> None:
    with pytest.raises(MatrixError) as caught:
        await as_hs.server.client.accounts.register("_bridge_admin", "pw", admin=True)
    assert caught.value.errcode == "M_EXCLUSIVE"
    assert not await user_exists(as_hs, "@_bridge_admin:test.local")


async def test_guests_never_get_a_reserved_id(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    url = appservice[1]
    raw = registration(url)
    # every numeric ID but those starting with 9 is reserved
    raw["namespaces"]["users"].append({"regex": r"@[0-8][0-9]*:test\.local", "exclusive": True})
    hs = await homeserver_with(make_homeserver, tmp_path, raw, allow_guest_access=True)
    resp = await hs.client.post(REGISTER, params={"kind": "guest"}, json={})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user_id"].startswith("@9")
