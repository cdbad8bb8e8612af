"""Logging in through OpenID Connect providers (Synapse's oidc_providers), against a
fake provider on loopback signing real JWTs, on both database engines."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.sso.oidc_support import (
    CALLBACK,
    CLIENT_ID,
    FakeOidc,
    authorize,
    callback,
    oidc_homeserver,
    oidc_login_page,
    provider_config,
    start_login,
)
from tests.sso.support import CLIENT_URL, V3, FakeCas, login_token_of, token_login


async def login_flows(hs: HomeserverHarness) -> list[dict[str, Any]]:
    resp = await hs.client.get(f"{V3}/login")
    assert resp.status == 200
    return list((await resp.json())["flows"])


async def oidc_token_login(hs: HomeserverHarness, **extra: Any) -> dict[str, Any]:
    status, page = await oidc_login_page(hs)
    assert status == 200, page
    status, body = await token_login(hs, login_token_of(page), **extra)
    assert status == 200, body
    return dict(body)


async def displayname(hs: HomeserverHarness, user_id: str) -> Any:
    resp = await hs.client.get(f"{V3}/profile/{user_id}/displayname")
    return (await resp.json()).get("displayname")


# -- GET /login and the redirect ------------------------------------------------------


async def test_login_flows_list_cas_and_every_oidc_provider(
    make_homeserver: HarnessFactory, oidc: FakeOidc, cas: FakeCas
) -> None:
    hs = await oidc_homeserver(
        make_homeserver,
        oidc,
        cas_config={"server_url": cas.base_url},
        oidc_providers=[
            provider_config(oidc, "one", idp_icon="mxc://hs.test/i", idp_brand="one"),
            provider_config(oidc, "two"),
        ],
    )
    assert await login_flows(hs) == [
        {"type": "m.login.cas"},
        {
            "type": "m.login.sso",
            "identity_providers": [
                {"id": "cas", "name": "CAS"},
                {
                    "id": "oidc-one",
                    "name": "Provider one",
                    "icon": "mxc://hs.test/i",
                    "brand": "one",
                },
                {"id": "oidc-two", "name": "Provider two"},
            ],
        },
        {"type": "m.login.token"},
        {"type": "m.login.password"},
    ]


async def test_redirect_starts_the_code_flow_with_state_nonce_and_pkce(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc, scopes=["openid", "profile"])
    walk = await start_login(hs)
    # a single provider needs no idpId
    await start_login(hs, idp=None)
    parts = urlsplit(walk.authorize_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == oidc.base_url + "/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"] == "openid profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    # the cookie carries no readable secret beyond what the browser already knows
    assert CLIENT_ID not in walk.cookie


async def test_pkce_never_and_unknown_provider(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc, pkce_method="never")
    walk = await start_login(hs)
    assert "code_challenge" not in walk.authorize_url
    status, page, _ = await callback(hs, await authorize(walk), walk.cookie)
    assert status == 200, page
    resp = await hs.client.get(
        f"{V3}/login/sso/redirect/oidc-nope", params={"redirectUrl": CLIENT_URL}
    )
    assert resp.status == 404 and (await resp.json())["errcode"] == "M_NOT_FOUND"
    resp = await hs.client.get(
        f"{V3}/login/sso/redirect/oidc-test", params={"redirectUrl": "javascript:alert(1)"}
    )
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_INVALID_PARAM"


async def test_several_providers_and_no_idp_show_the_picker(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(
        make_homeserver,
        oidc,
        oidc_providers=[provider_config(oidc, "one"), provider_config(oidc, "two")],
    )
    resp = await hs.client.get(
        f"{V3}/login/sso/redirect", params={"redirectUrl": CLIENT_URL}, allow_redirects=False
    )
    assert resp.status == 302
    picker = urlsplit(resp.headers["Location"])
    assert picker.path == "/_synapse/client/pick_idp"
    resp = await hs.client.get(f"{picker.path}?{picker.query}")
    page = await resp.text()
    assert resp.status == 200 and "Provider one" in page and "Provider two" in page
    resp = await hs.client.get(
        "/_synapse/client/pick_idp",
        params={"redirectUrl": CLIENT_URL, "idp": "oidc-two"},
        allow_redirects=False,
    )
    assert resp.status == 302 and resp.headers["Location"].startswith(oidc.base_url)
    assert resp.cookies["oidc_session"].value
    resp = await hs.client.get("/_synapse/client/pick_idp", params={"redirectUrl": "javascript:x"})
    assert resp.status == 400


# -- a whole login ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_login_creates_the_user_and_a_one_time_login_token(
    make_homeserver: HarnessFactory, oidc: FakeOidc, alg: str
) -> None:
    oidc.alg = alg
    hs = await oidc_homeserver(make_homeserver, oidc)
    status, page = await oidc_login_page(hs)
    assert status == 200, page
    assert "has been created" in page
    token = login_token_of(page)
    status, body = await token_login(hs, token)
    assert status == 200, body
    user_id = body["user_id"]
    assert user_id == f"@alice:{hs.server.config.server_name}"
    assert await displayname(hs, user_id) == "Alice"
    providers = await hs.server.stores.external_ids.get_providers_of_user(user_id)
    assert "oidc-test" in providers
    # single use
    status, body = await token_login(hs, token)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    # the same subject logs in to the same account, whatever its name now
    oidc.user["preferred_username"] = "renamed"
    again = await oidc_token_login(hs)
    assert again["user_id"] == user_id
    # the provider checked the PKCE verifier of each exchange
    assert all("code_verifier" in request for request in oidc.token_requests)


async def test_email_template_gives_a_new_user_their_email(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    mapping = {
        "config": {
            "localpart_template": "{{ user.preferred_username }}",
            "email_template": "{{ user.email }}",
        }
    }
    hs = await oidc_homeserver(make_homeserver, oidc, user_mapping_provider=mapping)
    oidc.user["email"] = "Alice@Example.COM"
    login = await oidc_token_login(hs)
    threepids = await hs.server.stores.user_admin.threepids(login["user_id"])
    assert [(t.medium, t.address) for t in threepids] == [("email", "alice@example.com")]
    # another user mapped to the same address does not take it
    oidc.user = {"sub": "u-bob", "preferred_username": "bob", "email": "alice@example.com"}
    bob = await oidc_token_login(hs)
    assert await hs.server.stores.user_admin.threepids(bob["user_id"]) == []


async def test_login_token_expires_after_two_minutes(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    status, page = await oidc_login_page(hs)
    hs.clock.advance(121)
    status, body = await token_login(hs, login_token_of(page))
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"


async def test_whitelisted_client_is_redirected_straight_away_and_form_post_works(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc, sso={"client_whitelist": ["https://client"]})
    walk = await start_login(hs)
    status, _page, resp = await callback(hs, await authorize(walk), walk.cookie, method="POST")
    assert status == 302
    location = resp.headers["Location"]
    assert location.startswith(CLIENT_URL + "&loginToken=")
    # the session cookies are cleared
    assert resp.cookies["oidc_session"].value == ""
    token = parse_qs(urlsplit(location).query)["loginToken"][0]
    status, body = await token_login(hs, token)
    assert status == 200, body


@pytest.mark.parametrize("method", ["client_secret_post", "none"])
async def test_client_auth_methods(
    make_homeserver: HarnessFactory, oidc: FakeOidc, method: str
) -> None:
    oidc.auth_method = method
    hs = await oidc_homeserver(make_homeserver, oidc, client_auth_method=method)
    await oidc_token_login(hs)
    assert "client_secret" not in oidc.token_requests[-1] or method == "client_secret_post"


async def test_userinfo_endpoint_and_attribute_requirements(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(
        make_homeserver,
        oidc,
        user_profile_method="userinfo_endpoint",
        attribute_requirements=[{"attribute": "groups", "value": "staff"}],
    )
    await oidc_token_login(hs)
    assert oidc.userinfo_fetches == 1


async def test_attribute_requirement_not_met_is_refused(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(
        make_homeserver,
        oidc,
        attribute_requirements=[{"attribute": "groups", "one_of": ["admins", "staff"]}],
    )
    oidc.user["groups"] = ["users"]
    status, page = await oidc_login_page(hs)
    assert status == 403 and "unauthorised" in page
    assert (
        await hs.server.stores.accounts.get_user("@alice:" + hs.server.config.server_name) is None
    )
    oidc.user["groups"] = ["users", "staff"]
    await oidc_token_login(hs)


async def test_taken_localpart_gets_a_number_or_is_linked_if_allowed(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    existing = await hs.register("alice")
    login = await oidc_token_login(hs)
    assert login["user_id"] == existing["user_id"].replace("@alice:", "@alice1:")
    oidc.user = {"sub": "u-other", "preferred_username": "alice", "name": "Other"}
    login = await oidc_token_login(hs)
    assert login["user_id"].startswith("@alice2:")


async def test_allow_existing_users_links_the_account(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc, allow_existing_users=True)
    existing = await hs.register("alice")
    login = await oidc_token_login(hs)
    assert login["user_id"] == existing["user_id"]


async def test_registration_disabled_refuses_new_users(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc, enable_registration=False)
    status, page = await oidc_login_page(hs)
    assert status == 400 and "registrations are disabled" in page
    assert (
        await hs.server.stores.accounts.get_user("@alice:" + hs.server.config.server_name) is None
    )


# -- the callback refuses what it must --------------------------------------------------


async def test_wrong_state_missing_cookie_and_forged_cookie(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    walk = await start_login(hs)
    back = await authorize(walk)
    status, page, _ = await callback(hs, back, None)
    assert status == 400 and "missing_session" in page
    other = await start_login(hs)
    status, page, _ = await callback(hs, back, other.cookie)
    assert status == 400 and "mismatching_session" in page
    payload, _, mac = walk.cookie.partition(".")
    status, page, _ = await callback(hs, back, payload + "." + mac[::-1])
    assert status == 400 and "mismatching_session" in page
    status, page, _ = await callback(hs, back, "garbage")
    assert status == 400 and "invalid_session" in page
    status, page, _ = await callback(hs, CALLBACK + "?code=x", walk.cookie)
    assert status == 400 and "State parameter is missing" in page
    # nothing of this reached the token endpoint; the right pair still works
    assert oidc.token_requests == []
    status, page, _ = await callback(hs, back, walk.cookie)
    assert status == 200, page


async def test_expired_session_cookie(make_homeserver: HarnessFactory, oidc: FakeOidc) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    walk = await start_login(hs)
    back = await authorize(walk)
    hs.clock.advance(3601)
    status, page, _ = await callback(hs, back, walk.cookie)
    assert status == 400 and "invalid_session" in page


async def test_provider_error_is_shown(make_homeserver: HarnessFactory, oidc: FakeOidc) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    walk = await start_login(hs)
    status, page, _ = await callback(
        hs, CALLBACK + "?error=access_denied&error_description=User+said+no", walk.cookie
    )
    assert status == 400 and "access_denied" in page and "User said no" in page


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"nonce": "not-the-nonce"}, "nonce"),
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "https://evil.example/"}, "iss"),
        ({"exp": 1_600_000_000}, "expired"),
        ({"iat": 1_800_000_000}, "future"),
        ({"sub": None}, "sub"),
    ],
)
async def test_bad_id_tokens_are_refused(
    make_homeserver: HarnessFactory, oidc: FakeOidc, overrides: dict[str, Any], why: str
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    oidc.id_token_overrides = overrides
    status, page = await oidc_login_page(hs)
    assert status == 400 and "invalid_token" in page, page
    assert why in page
    assert (
        await hs.server.stores.accounts.get_user("@alice:" + hs.server.config.server_name) is None
    )


async def test_bad_signature_is_refused(make_homeserver: HarnessFactory, oidc: FakeOidc) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    oidc.resign_with_other_key = True
    status, page = await oidc_login_page(hs)
    assert status == 400 and "signature" in page


async def test_unknown_kid_refetches_the_jwks_once(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    oidc.published = ["ec1"]
    status, page = await oidc_login_page(hs)
    assert status == 400 and "key the provider does not list" in page
    assert oidc.jwks_fetches == 2
    # the key appears (rotation): found on the refetch
    oidc.published = ["rsa1", "ec1"]
    await oidc_token_login(hs)
    assert oidc.jwks_fetches == 3
    # and kept
    oidc.user = {"sub": "u-bob", "preferred_username": "bob"}
    await oidc_token_login(hs)
    assert oidc.jwks_fetches == 3


async def test_token_endpoint_error(make_homeserver: HarnessFactory, oidc: FakeOidc) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    oidc.token_error = (400, {"error": "invalid_grant", "error_description": "Code used"})
    status, page = await oidc_login_page(hs)
    assert status == 400 and "invalid_grant" in page and "Code used" in page
    oidc.token_error = (500, {})
    status, page = await oidc_login_page(hs)
    assert status == 502 and "fetch_error" in page
    # a wrong client secret is the provider's invalid_client
    oidc.token_error = None
    oidc.auth_method = "client_secret_post"
    status, page = await oidc_login_page(hs)
    assert status == 400 and "invalid_client" in page


async def test_discovery_failures_give_a_clear_error(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    oidc.discovery_status = 500
    resp = await hs.client.get(
        f"{V3}/login/sso/redirect/oidc-test",
        params={"redirectUrl": CLIENT_URL},
        allow_redirects=False,
    )
    page = await resp.text()
    assert resp.status == 503 and "discovery_error" in page and "Provider test" in page
    assert "oidc_session" not in resp.cookies
    # once the provider is back, discovery is retried
    oidc.discovery_status = 200
    await oidc_token_login(hs)


async def test_discovery_without_needed_endpoints_is_refused(
    make_homeserver: HarnessFactory, oidc: FakeOidc
) -> None:
    hs = await oidc_homeserver(make_homeserver, oidc)
    oidc.discovery_overrides = {"jwks_uri": 5}
    resp = await hs.client.get(
        f"{V3}/login/sso/redirect/oidc-test",
        params={"redirectUrl": CLIENT_URL},
        allow_redirects=False,
    )
    page = await resp.text()
    assert resp.status == 503 and "discovery_error" in page and "jwks_uri" in page
