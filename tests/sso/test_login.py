"""Logging in through CAS (client-server API: "Client login via SSO", m.login.token),
against a fake CAS server on loopback, on both database engines."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.sso.support import (
    CAS_FAILURE,
    CLIENT_URL,
    R0,
    TICKET,
    V3,
    FakeCas,
    cas_homeserver,
    cas_login_token,
    cas_success,
    login_token_of,
    service_url,
    ticket_request,
    token_login,
)

LEGACY = "/_matrix/client/api/v1"


async def login_flows(hs: HomeserverHarness) -> list[dict[str, object]]:
    resp = await hs.client.get(f"{V3}/login")
    assert resp.status == 200
    return list((await resp.json())["flows"])


async def user_exists(hs: HomeserverHarness, user_id: str) -> bool:
    return await hs.server.stores.accounts.get_user(user_id) is not None


# -- GET /login ---------------------------------------------------------------------


async def test_login_flows_list_cas_sso_and_token_as_synapse(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    assert await login_flows(hs) == [
        {"type": "m.login.cas"},
        {"type": "m.login.sso", "identity_providers": [{"id": "cas", "name": "CAS"}]},
        {"type": "m.login.token"},
        {"type": "m.login.password"},
    ]


async def test_identity_provider_shows_its_configured_name_icon_and_brand(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(
        make_homeserver, cas, idp_name="Example", idp_icon="mxc://test.local/i", idp_brand="ex"
    )
    sso = [flow for flow in await login_flows(hs) if flow["type"] == "m.login.sso"]
    assert sso == [
        {
            "type": "m.login.sso",
            "identity_providers": [
                {"id": "cas", "name": "Example", "icon": "mxc://test.local/i", "brand": "ex"}
            ],
        }
    ]


async def test_without_cas_only_passwords_and_no_sso_endpoints(hs: HomeserverHarness) -> None:
    assert await login_flows(hs) == [{"type": "m.login.password"}]
    for path in ("/login/sso/redirect", "/login/cas/ticket", "/auth/m.login.sso/fallback/web"):
        resp = await hs.client.get(V3 + path, params={"redirectUrl": CLIENT_URL, "ticket": "t"})
        assert resp.status == 404
        assert (await resp.json())["errcode"] == "M_UNRECOGNIZED"


# -- GET /login/sso/redirect ----------------------------------------------------------


async def test_sso_redirect_sends_the_browser_to_cas_with_the_service_url(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    paths = [
        f"{V3}/login/sso/redirect",
        f"{R0}/login/sso/redirect",
        f"{LEGACY}/login/sso/redirect",
        f"{V3}/login/cas/redirect",
        f"{R0}/login/cas/redirect",
        f"{V3}/login/sso/redirect/cas",
    ]
    for path in paths:
        resp = await hs.client.get(path, params={"redirectUrl": CLIENT_URL}, allow_redirects=False)
        assert resp.status == 302, (path, await resp.text())
        location = resp.headers["Location"]
        assert location.startswith(cas.base_url + "/login?"), location
        assert parse_qs(urlsplit(location).query) == {
            "service": [service_url(redirectUrl=CLIENT_URL)]
        }
    # exactly as SyTest spells the service URL out (uri_escape of the redirect URL)
    assert service_url(redirectUrl=CLIENT_URL) == (
        "https://hs.test/_matrix/client/r0/login/cas/ticket?redirectUrl="
        "https%3A%2F%2Fclient%3Fp%3Dhttp%253A%252F%252Fserver"
    )


async def test_sso_redirect_refuses_bad_redirect_urls_and_unknown_providers(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    cases = [
        ({}, 400, "M_MISSING_PARAM"),
        ({"redirectUrl": ""}, 400, "M_MISSING_PARAM"),
        ({"redirectUrl": "javascript:alert(document.cookie)"}, 400, "M_INVALID_PARAM"),
        ({"redirectUrl": "data:text/html,hi"}, 400, "M_INVALID_PARAM"),
        ({"redirectUrl": "/relative"}, 400, "M_INVALID_PARAM"),
    ]
    for params, status, errcode in cases:
        resp = await hs.client.get(f"{V3}/login/sso/redirect", params=params, allow_redirects=False)
        assert resp.status == status, params
        assert (await resp.json())["errcode"] == errcode
    resp = await hs.client.get(
        f"{V3}/login/sso/redirect/github", params={"redirectUrl": CLIENT_URL}
    )
    assert resp.status == 404
    assert (await resp.json())["errcode"] == "M_NOT_FOUND"


# -- the ticket and the login token -----------------------------------------------------


async def test_new_cas_user_logs_in_with_the_login_token(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    cas.answer = cas_success("cas_user!")
    status, page, headers = await ticket_request(hs, redirectUrl=CLIENT_URL)
    assert status == 200, page
    assert headers["Content-Type"].startswith("text/html")
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    # the homeserver validated the ticket for the service URL the browser came back to
    assert cas.paths == ["/cas/proxyValidate"]
    assert cas.validations == [{"ticket": TICKET, "service": service_url(redirectUrl=CLIENT_URL)}]
    token = login_token_of(page)
    assert f"{CLIENT_URL}&amp;loginToken={token}" in page  # the client's URL, kept as is
    status, body = await token_login(
        hs, token, device_id="LOGIN_DEVICE", initial_device_display_name="device display"
    )
    assert status == 200, body
    assert body["user_id"] == "@cas_user=21:test.local"
    assert body["device_id"] == "LOGIN_DEVICE"
    assert body["home_server"] == "test.local"
    whoami = await hs.client.get(
        f"{V3}/account/whoami", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert (await whoami.json())["user_id"] == "@cas_user=21:test.local"
    device = await hs.server.stores.devices.get_device("@cas_user=21:test.local", "LOGIN_DEVICE")
    assert device is not None and device.display_name == "device display"
    # an account made by SSO has no password
    account = await hs.server.stores.accounts.get_user("@cas_user=21:test.local")
    assert account is not None and account.password_hash is None


async def test_a_returning_cas_user_logs_into_the_same_account(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    cas.answer = cas_success("Carol")
    first = await token_login(hs, await cas_login_token(hs))
    second = await token_login(hs, await cas_login_token(hs))
    assert first[0] == second[0] == 200
    assert first[1]["user_id"] == second[1]["user_id"] == "@carol:test.local"
    assert first[1]["device_id"] != second[1]["device_id"]


async def test_a_cas_user_named_like_an_existing_account_logs_into_it(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    await hs.register("alice")
    cas.answer = cas_success("ALICE")
    status, body = await token_login(hs, await cas_login_token(hs))
    assert status == 200 and body["user_id"] == "@alice:test.local"
    # the password still works, and the identity is now linked
    assert await hs.server.stores.external_ids.get_user("cas", "ALICE") == "@alice:test.local"


async def test_display_name_comes_from_the_configured_attribute(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas, displayname_attribute="name")
    cas.answer = cas_success("dave", {"name": ["Dave D.", "Other"]})
    await token_login(hs, await cas_login_token(hs))
    resp = await hs.client.get(f"{V3}/profile/@dave:test.local/displayname")
    assert (await resp.json())["displayname"] == "Dave D."
    cas.answer = cas_success("erin")
    await token_login(hs, await cas_login_token(hs))
    resp = await hs.client.get(f"{V3}/profile/@erin:test.local/displayname")
    assert (await resp.json())["displayname"] == "erin"


async def test_numeric_user_names_get_the_prefix(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas, allow_numeric_ids=True, numeric_ids_prefix="n")
    cas.answer = cas_success("12345")
    status, body = await token_login(hs, await cas_login_token(hs))
    assert status == 200 and body["user_id"] == "@n12345:test.local"


async def test_protocol_version_3_validates_at_p3(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas, protocol_version=3)
    await cas_login_token(hs)
    assert cas.paths == ["/cas/p3/proxyValidate"]


async def test_a_login_token_already_in_the_redirect_url_is_replaced(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    status, page, _ = await ticket_request(hs, redirectUrl="https://client/?loginToken=forged")
    assert status == 200
    assert "forged" not in page
    status, _body = await token_login(hs, "forged")
    assert status == 403


async def test_trusted_clients_are_redirected_straight_away(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(
        make_homeserver, cas, sso={"client_whitelist": ["https://app.example.com"]}
    )
    status, _page, headers = await ticket_request(hs, redirectUrl="https://app.example.com/#/")
    assert status == 302
    location = headers["Location"]
    assert location.startswith("https://app.example.com/?loginToken=")
    assert location.endswith("#/")
    token = parse_qs(urlsplit(location).query)["loginToken"][0]
    assert (await token_login(hs, token))[0] == 200
    # a look-alike host is not trusted: the user confirms on a page
    status, page, _ = await ticket_request(hs, redirectUrl="https://app.example.com.evil.net/")
    assert status == 200
    assert "app.example.com.evil.net" in page


async def test_login_tokens_are_single_use(make_homeserver: HarnessFactory, cas: FakeCas) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    token = await cas_login_token(hs)
    assert (await token_login(hs, token))[0] == 200
    status, body = await token_login(hs, token)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"


async def test_login_tokens_expire_after_two_minutes(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    fresh = await cas_login_token(hs)
    stale = await cas_login_token(hs)
    hs.clock.advance(119)
    assert (await token_login(hs, fresh))[0] == 200
    hs.clock.advance(2)
    status, body = await token_login(hs, stale)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"


async def test_bad_login_tokens_are_refused(make_homeserver: HarnessFactory, cas: FakeCas) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    for token, status, errcode in [
        ("syl_not-a-token", 403, "M_FORBIDDEN"),
        ("", 403, "M_FORBIDDEN"),
        (5, 400, "M_BAD_JSON"),
        (None, 400, "M_MISSING_PARAM"),
    ]:
        got_status, body = await token_login(hs, token)
        assert (got_status, body["errcode"]) == (status, errcode), token
    # a bad device_id does not burn the token
    token = await cas_login_token(hs)
    status, body = await token_login(hs, token, device_id=["x"])
    assert status == 400 and body["errcode"] == "M_BAD_JSON"
    assert (await token_login(hs, token))[0] == 200


async def test_a_deactivated_account_gets_no_login(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    cas.answer = cas_success("frank")
    token = await cas_login_token(hs)
    await hs.server.client.accounts.deactivate("@frank:test.local")
    status, body = await token_login(hs, token)
    assert status == 403 and body["errcode"] == "M_USER_DEACTIVATED"
    status, page, _ = await ticket_request(hs, redirectUrl=CLIENT_URL)
    assert status == 403 and "loginToken" not in page


# -- bad tickets and CAS failures ------------------------------------------------------


async def check_refused(
    hs: HomeserverHarness, status: int, *, user_id: str = "@alice:test.local"
) -> None:
    got, page, headers = await ticket_request(hs, redirectUrl=CLIENT_URL)
    assert got == status, page
    assert headers["Content-Type"].startswith("text/html")
    assert "loginToken" not in page
    assert not await user_exists(hs, user_id)


async def test_a_ticket_cas_refuses_logs_nobody_in(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    cas.answer = CAS_FAILURE
    await check_refused(hs, 401)


async def test_cas_errors_and_garbage_log_nobody_in(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    for status, answer in [
        (500, cas_success("alice")),
        (302, cas_success("alice")),
        (200, "<html>CAS login page</html>"),
        (200, ""),
        (200, "yes\nalice\n"),
    ]:
        cas.status, cas.answer = status, answer
        await check_refused(hs, 401)


async def test_an_unreachable_cas_server_logs_nobody_in(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    cas.base_url = "http://127.0.0.1:9/cas"  # discard port: nothing listens
    hs = await cas_homeserver(make_homeserver, cas)
    await check_refused(hs, 401)


async def test_a_cas_server_on_a_blacklisted_address_is_not_contacted(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas, ip_range_whitelist=[])
    await check_refused(hs, 401)
    assert cas.validations == []


async def test_a_missing_required_attribute_logs_nobody_in(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(
        make_homeserver, cas, required_attributes={"group": "staff", "email": None}
    )
    cas.answer = cas_success("alice", {"group": "staff"})
    await check_refused(hs, 400)
    cas.answer = cas_success("alice", {"group": "visitors", "email": "a@example.org"})
    await check_refused(hs, 400)
    cas.answer = cas_success("alice", {"group": ["visitors", "staff"], "email": "a@x.org"})
    status, body = await token_login(hs, await cas_login_token(hs))
    assert status == 200 and body["user_id"] == "@alice:test.local"


async def test_without_registration_only_existing_users_log_in(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas, enable_registration=False)
    await check_refused(hs, 400)
    await hs.register("alice")
    assert (await token_login(hs, await cas_login_token(hs)))[0] == 200


async def test_ticket_requests_need_a_ticket_and_somewhere_to_go(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    for params in [
        {"redirectUrl": CLIENT_URL},
        {"ticket": TICKET},
        {"ticket": "", "redirectUrl": CLIENT_URL},
    ]:
        resp = await hs.client.get(f"{R0}/login/cas/ticket", params=params)
        assert resp.status == 400, params
        assert (await resp.json())["errcode"] == "M_MISSING_PARAM"
    status, page, _ = await ticket_request(hs, redirectUrl="javascript:alert(1)")
    assert status == 400 and "loginToken" not in page
    assert cas.validations == []


async def test_user_names_that_make_no_valid_user_id_are_refused(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    cas.answer = cas_success("x" * 300)
    got, page, _ = await ticket_request(hs, redirectUrl=CLIENT_URL)
    assert got == 400 and "loginToken" not in page


async def test_tickets_and_login_tokens_are_never_logged(
    make_homeserver: HarnessFactory, cas: FakeCas, caplog: pytest.LogCaptureFixture
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    with caplog.at_level(logging.DEBUG):
        token = await cas_login_token(hs)
        assert (await token_login(hs, token))[0] == 200
        assert (await token_login(hs, token))[0] == 403
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/login/cas/ticket" in logged  # the request log line is there...
    assert TICKET not in logged  # ...without the ticket
    assert token not in logged


async def test_a_cas_user_named_like_a_guest_does_not_get_the_guest_account(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas, allow_guest_access=True)
    resp = await hs.client.post(f"{V3}/register?kind=guest", json={})
    guest_id = (await resp.json())["user_id"]
    cas.answer = cas_success(guest_id[1:].split(":")[0])
    got, page, _ = await ticket_request(hs, redirectUrl=CLIENT_URL)
    assert got == 400 and "loginToken" not in page
    assert await hs.server.stores.external_ids.get_providers_of_user(guest_id) == []


async def test_of_two_concurrent_uses_of_a_token_one_logs_in(
    make_homeserver: HarnessFactory, cas: FakeCas
) -> None:
    hs = await cas_homeserver(make_homeserver, cas)
    token = await cas_login_token(hs)
    results = await asyncio.gather(token_login(hs, token), token_login(hs, token))
    assert sorted(status for status, _ in results) == [200, 403]


async def test_an_identity_stays_linked_to_its_first_account(hs: HomeserverHarness) -> None:
    await hs.register("alice")
    await hs.register("bob")
    store = hs.server.stores.external_ids
    assert await store.record("cas", "al", "@alice:test.local") == "@alice:test.local"
    assert await store.record("cas", "al", "@bob:test.local") == "@alice:test.local"
    assert await store.get_user("cas", "al") == "@alice:test.local"
    assert await store.get_user("cas", "AL") is None
    assert await store.get_providers_of_user("@alice:test.local") == ["cas"]
    assert await store.get_providers_of_user("@bob:test.local") == []
