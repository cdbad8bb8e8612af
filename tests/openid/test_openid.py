"""OpenID tokens through the HTTP API: a user asks for one, a third party checks it
at /_matrix/federation/v1/openid/userinfo."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import make_user

USERINFO = "/_matrix/federation/v1/openid/userinfo"


async def userinfo(hs: HomeserverHarness, token: str | None) -> tuple[int, Any]:
    params = {} if token is None else {"access_token": token}
    resp = await hs.client.get(USERINFO, params=params)
    return resp.status, await resp.json()


async def test_a_token_tells_whose_it_is(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    body = await alice.request("POST", f"/user/{alice.user_id}/openid/request_token", {})
    assert body["matrix_server_name"] == "test.local"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert await userinfo(hs, body["access_token"]) == (200, {"sub": alice.user_id})
    # the OpenID token is not an access token
    resp = await hs.client.get(
        "/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert resp.status == 401


async def test_a_token_expires_after_an_hour(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    body = await alice.request("POST", f"/user/{alice.user_id}/openid/request_token", {})
    hs.clock.advance(3599)
    assert (await userinfo(hs, body["access_token"]))[0] == 200
    hs.clock.advance(1)
    status, error = await userinfo(hs, body["access_token"])
    assert (status, error["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_unknown_and_missing_tokens_are_refused(hs: HomeserverHarness) -> None:
    status, error = await userinfo(hs, "an/invalid/token")
    assert (status, error["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, error = await userinfo(hs, None)
    assert (status, error["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_no_token_for_another_user(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    error = await alice.request("POST", f"/user/{bob.user_id}/openid/request_token", {}, expect=403)
    assert error["errcode"] == "M_FORBIDDEN"


async def test_request_needs_authentication_and_a_json_object(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    path = f"/_matrix/client/v3/user/{alice.user_id}/openid/request_token"
    resp = await hs.client.post(path, json={})
    assert resp.status == 401
    assert (await resp.json())["errcode"] == "M_MISSING_TOKEN"
    error = await alice.request(
        "POST", f"/user/{alice.user_id}/openid/request_token", [1], expect=400
    )
    assert error["errcode"] == "M_BAD_JSON"


async def test_the_openid_resource_serves_userinfo_alone(hs: HomeserverHarness) -> None:
    paths = {(method, path) for method, path, _ in hs.server.routes_for({"openid"})}
    assert paths == {("GET", USERINFO)}
