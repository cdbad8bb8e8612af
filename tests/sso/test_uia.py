"""User-interactive auth with single sign-on (client-server API: "SSO during
User-Interactive Authentication", "Fallback"): users who log in through CAS are
offered m.login.sso; the fallback page sends them to CAS; the stage is done only when
the CAS user is the session's user."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.sso.oidc_support import (
    FakeOidc,
    Walk,
    authorize,
    callback,
    oidc_homeserver,
    oidc_login_page,
)
from tests.sso.support import (
    CAS_FAILURE,
    V3,
    FakeCas,
    cas_homeserver,
    cas_login_token,
    cas_success,
    link_of,
    login_token_of,
    service_url,
    ticket_request,
    token_login,
)

DEVICE = "login_device"


async def sso_login(hs: HomeserverHarness, cas: FakeCas, name: str) -> dict[str, Any]:
    """Log in as CAS user ``name`` on device DEVICE; the login response."""
    cas.answer = cas_success(name)
    status, body = await token_login(hs, await cas_login_token(hs), device_id=DEVICE)
    assert status == 200, body
    return dict(body)


async def delete_device(
    hs: HomeserverHarness, token: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    resp = await hs.client.delete(
        f"{V3}/devices/{DEVICE}", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return resp.status, dict(await resp.json())


async def device_exists(hs: HomeserverHarness, user_id: str) -> bool:
    return await hs.server.stores.devices.get_device(user_id, DEVICE) is not None


async def fallback(hs: HomeserverHarness, stage: str, **params: str) -> tuple[int, str]:
    resp = await hs.client.get(f"{V3}/auth/{stage}/fallback/web", params=params)
    return resp.status, await resp.text()


async def test_users_who_logged_in_by_sso_are_offered_it(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    registered = await hs.register("alice")
    login = await sso_login(hs, cas, "alice")  # links the CAS identity to @alice
    assert login["user_id"] == registered["user_id"]
    status, body = await delete_device(hs, login["access_token"], {})
    assert status == 401
    assert body["flows"] == [{"stages": ["m.login.password"]}, {"stages": ["m.login.sso"]}]
    # an account made by SSO has no password to offer
    sso_only = await sso_login(hs, cas, "bob")
    status, body = await delete_device(hs, sso_only["access_token"], {})
    assert status == 401 and body["flows"] == [{"stages": ["m.login.sso"]}]


async def test_users_without_an_sso_identity_get_passwords_only(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    alice = await hs.register("alice", device_id=DEVICE)
    status, body = await delete_device(hs, alice["access_token"], {})
    assert status == 401 and body["flows"] == [{"stages": ["m.login.password"]}]
    status, _page = await fallback(hs, "m.login.sso", session=body["session"])
    assert status == 400


async def test_the_fallback_page_sends_the_user_to_cas_for_the_session(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    login = await sso_login(hs, cas, "alice")
    _, body = await delete_device(hs, login["access_token"], {})
    session = body["session"]
    status, page = await fallback(hs, "m.login.sso", session=session)
    assert status == 200
    assert "remove a device from your account" in page
    link = link_of(page)
    assert link.startswith(cas.base_url + "/login?")
    assert parse_qs(urlsplit(link).query) == {"service": [service_url(session=session)]}


async def test_sso_completes_the_stage_for_the_sessions_user(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    login = await sso_login(hs, cas, "alice")
    _, body = await delete_device(hs, login["access_token"], {})
    session = body["session"]
    cas.answer = cas_success("alice")
    status, page, _ = await ticket_request(hs, session=session)
    assert status == 200
    assert 'window.opener.postMessage("authDone", "*")' in page
    assert cas.validations[-1]["service"] == service_url(session=session)
    status, body = await delete_device(hs, login["access_token"], {"auth": {"session": session}})
    assert status == 200, body
    assert not await device_exists(hs, login["user_id"])


async def test_clients_naming_the_sso_stage_are_answered_by_its_result(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    login = await sso_login(hs, cas, "alice")
    _, body = await delete_device(hs, login["access_token"], {})
    session = body["session"]
    auth = {"auth": {"type": "m.login.sso", "session": session}}
    status, body = await delete_device(hs, login["access_token"], auth)
    assert status == 401 and body["completed"] == [] and "errcode" not in body
    await ticket_request(hs, session=session)
    status, body = await delete_device(hs, login["access_token"], auth)
    assert status == 200, body


async def test_another_sso_user_cannot_complete_the_session(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    await sso_login(hs, cas, "mallory")
    await hs.register("alice")
    login = await sso_login(hs, cas, "alice")
    _, body = await delete_device(hs, login["access_token"], {})
    session = body["session"]
    for name in ("mallory", "never_seen_before"):
        cas.answer = cas_success(name)
        status, page, _ = await ticket_request(hs, session=session)
        assert status == 200 and "Wrong account" in page and "authDone" not in page
        status, body = await delete_device(
            hs, login["access_token"], {"auth": {"session": session}}
        )
        assert status == 403 and body["errcode"] == "M_FORBIDDEN"
        assert await device_exists(hs, login["user_id"])
    # a password stage does not rescue a session someone else signed into
    password_auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "correct horse",
        "session": session,
    }
    status, _ = await delete_device(hs, login["access_token"], {"auth": password_auth})
    assert status == 403
    assert await device_exists(hs, login["user_id"])
    # the CAS login of an unknown user in UIA made no account
    assert await hs.server.stores.accounts.get_user("@never_seen_before:test.local") is None


async def test_a_refused_ticket_leaves_the_stage_undone(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    login = await sso_login(hs, cas, "alice")
    _, body = await delete_device(hs, login["access_token"], {})
    session = body["session"]
    cas.answer = CAS_FAILURE
    status, page, _ = await ticket_request(hs, session=session)
    assert status == 401 and "authDone" not in page
    status, body = await delete_device(hs, login["access_token"], {"auth": {"session": session}})
    assert status == 401 and body["completed"] == []
    assert await device_exists(hs, login["user_id"])


async def test_unknown_or_expired_sessions_are_refused(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    login = await sso_login(hs, cas, "alice")
    status, page, _ = await ticket_request(hs, session="no-such-session")
    assert status == 400 and "authDone" not in page
    _, body = await delete_device(hs, login["access_token"], {})
    session = body["session"]
    hs.clock.advance(31 * 60)
    status, page, _ = await ticket_request(hs, session=session)
    assert status == 400 and "authDone" not in page
    status, _ = await fallback(hs, "m.login.sso", session=session)
    assert status == 400


async def test_bad_fallback_requests_are_refused(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    login = await sso_login(hs, cas, "alice")
    _, body = await delete_device(hs, login["access_token"], {})
    for stage, params, status, errcode in [
        ("m.login.sso", {}, 400, "M_MISSING_PARAM"),
        ("m.login.sso", {"session": "nope"}, 400, "M_UNKNOWN"),
        ("m.login.recaptcha", {"session": body["session"]}, 404, "M_UNRECOGNIZED"),
        ("m.login.cas", {"session": body["session"]}, 404, "M_UNRECOGNIZED"),
    ]:
        resp = await hs.client.get(f"{V3}/auth/{stage}/fallback/web", params=params)
        assert resp.status == status, (stage, params)
        assert (await resp.json())["errcode"] == errcode
    # a registration session has no user to re-authenticate
    first = await hs.client.post(f"{V3}/register", json={"username": "zed", "password": "pw"})
    status, _ = await fallback(hs, "m.login.sso", session=(await first.json())["session"])
    assert status == 400


# -- through an OpenID Connect provider -----------------------------------------------


async def test_uia_through_an_oidc_provider(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:

    hs = await oidc_homeserver(make_homeserver, oidc)
    status, page = await oidc_login_page(hs)
    status, login = await token_login(hs, login_token_of(page), device_id=DEVICE)
    assert status == 200, login
    token, user_id = login["access_token"], login["user_id"]
    status, body = await delete_device(hs, token, {})
    assert status == 401 and body["flows"] == [{"stages": ["m.login.sso"]}]
    session = body["session"]
    # the fallback page links to the provider and sets the session cookie
    resp = await hs.client.get(f"{V3}/auth/m.login.sso/fallback/web", params={"session": session})
    page = await resp.text()
    assert resp.status == 200 and "Provider test" in page
    cookie = resp.cookies["oidc_session"].value

    # someone else signs in at the provider: refused, the device stays
    oidc.user = {"sub": "u-mallory", "preferred_username": "mallory"}
    back = await authorize(Walk(link_of(page), cookie))
    status, page, _ = await callback(hs, back, cookie)
    assert status == 200 and "Wrong account" in page
    status, body = await delete_device(hs, token, {"auth": {"session": session}})
    assert status == 403 and await device_exists(hs, user_id)
    # the session's user: done
    oidc.user = {"sub": "u-alice", "preferred_username": "alice"}
    status, body = await delete_device(hs, token, {})
    session = body["session"]
    resp = await hs.client.get(f"{V3}/auth/m.login.sso/fallback/web", params={"session": session})
    page = await resp.text()
    cookie = resp.cookies["oidc_session"].value
    back = await authorize(Walk(link_of(page), cookie))
    status, page, _ = await callback(hs, back, cookie)
    assert status == 200 and "authDone" in page
    status, body = await delete_device(hs, token, {"auth": {"session": session}})
    assert status == 200, body
    assert not await device_exists(hs, user_id)
