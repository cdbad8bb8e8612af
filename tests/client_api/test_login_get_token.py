"""POST /_matrix/client/v1/login/get_token (login_via_existing_session)."""

from __future__ import annotations

from tests.conftest import HarnessFactory
from tests.rooms.helpers import make_user

PATH = "/_matrix/client/v1/login/get_token"
ENABLED = {"enabled": True}


async def test_disabled_by_default(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    alice = await make_user(hs, "alice")
    resp = await hs.client.post(PATH, json={}, headers=alice.auth)
    assert resp.status == 404 and (await resp.json())["errcode"] == "M_UNRECOGNIZED"
    caps = await alice.request("GET", "/capabilities")
    assert caps["capabilities"]["m.get_login_token"] == {"enabled": False}
    flows = await alice.request("GET", "/login")
    assert {"type": "m.login.token", "get_login_token": True} not in flows["flows"]


async def test_token_after_reauthentication_logs_in_another_device(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(login_via_existing_session=ENABLED)
    alice = await make_user(hs, "alice")
    caps = await alice.request("GET", "/capabilities")
    assert caps["capabilities"]["m.get_login_token"] == {"enabled": True}
    flows = (await alice.request("GET", "/login"))["flows"]
    assert {"type": "m.login.token", "get_login_token": True} in flows
    # user-interactive auth first
    resp = await hs.client.post(PATH, json={}, headers=alice.auth)
    assert resp.status == 401
    session = (await resp.json())["session"]
    wrong = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "wrong",
        "session": session,
    }
    resp = await hs.client.post(PATH, json={"auth": wrong}, headers=alice.auth)
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_FORBIDDEN"
    right = {**wrong, "password": "correct horse"}
    resp = await hs.client.post(PATH, json={"auth": right}, headers=alice.auth)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["expires_in_ms"] == 300_000 and isinstance(body["login_token"], str)
    login = await hs.client.post(
        "/_matrix/client/v3/login", json={"type": "m.login.token", "token": body["login_token"]}
    )
    logged_in = await login.json()
    assert login.status == 200 and logged_in["user_id"] == alice.user_id
    assert logged_in["device_id"] != alice.device_id
    # once only
    again = await hs.client.post(
        "/_matrix/client/v3/login", json={"type": "m.login.token", "token": body["login_token"]}
    )
    assert again.status == 403


async def test_tokens_expire_and_are_rate_limited(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(
        login_via_existing_session={
            "enabled": True,
            "require_ui_auth": False,
            "token_timeout": "1m",
        }
    )
    alice = await make_user(hs, "alice")
    tokens = []
    for _ in range(5):
        resp = await hs.client.post(PATH, json={}, headers=alice.auth)
        assert resp.status == 200
        body = await resp.json()
        assert body["expires_in_ms"] == 60_000
        tokens.append(body["login_token"])
    resp = await hs.client.post(PATH, json={}, headers=alice.auth)
    assert resp.status == 429 and (await resp.json())["errcode"] == "M_LIMIT_EXCEEDED"
    hs.clock.advance(61)
    resp = await hs.client.post(
        "/_matrix/client/v3/login", json={"type": "m.login.token", "token": tokens[0]}
    )
    assert resp.status == 403
    resp = await hs.client.post(PATH, json={})
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"
