"""Profiles, capabilities, discovery, and the shape of errors for bad requests."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import HarnessFactory, HomeserverHarness

V3 = "/_matrix/client/v3"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_profile_fields(hs: HomeserverHarness) -> None:
    alice = await hs.register("alice")
    auth = bearer(alice["access_token"])
    url = f"{V3}/profile/@alice:test.local"
    assert await (await hs.client.get(url)).json() == {"displayname": "alice"}
    ok = await hs.client.put(f"{url}/displayname", json={"displayname": "Alice W"}, headers=auth)
    assert ok.status == 200
    ok = await hs.client.put(
        f"{url}/avatar_url", json={"avatar_url": "mxc://test.local/abc"}, headers=auth
    )
    assert ok.status == 200
    ok = await hs.client.put(f"{url}/m.tz", json={"m.tz": "Europe/Paris"}, headers=auth)
    assert ok.status == 200
    ok = await hs.client.put(
        f"{url}/org.example.pronouns", json={"org.example.pronouns": ["she"]}, headers=auth
    )
    assert ok.status == 200
    profile = await (await hs.client.get(url)).json()
    assert profile == {
        "displayname": "Alice W",
        "avatar_url": "mxc://test.local/abc",
        "m.tz": "Europe/Paris",
        "org.example.pronouns": ["she"],
    }
    field = await hs.client.get(f"{url}/displayname")
    assert await field.json() == {"displayname": "Alice W"}
    deleted = await hs.client.delete(f"{url}/m.tz", headers=auth)
    assert deleted.status == 200
    missing = await hs.client.get(f"{url}/m.tz")
    assert missing.status == 404


async def test_profile_errors(hs: HomeserverHarness) -> None:
    alice = await hs.register("alice")
    await hs.register("bob")
    auth = bearer(alice["access_token"])
    other = await hs.client.put(
        f"{V3}/profile/@bob:test.local/displayname", json={"displayname": "x"}, headers=auth
    )
    assert other.status == 403 and (await other.json())["errcode"] == "M_FORBIDDEN"
    unknown = await hs.client.get(f"{V3}/profile/@nobody:test.local")
    assert unknown.status == 404 and (await unknown.json())["errcode"] == "M_NOT_FOUND"
    url = f"{V3}/profile/@alice:test.local"
    wrong_type = await hs.client.put(f"{url}/displayname", json={"displayname": 5}, headers=auth)
    assert wrong_type.status == 400 and (await wrong_type.json())["errcode"] == "M_BAD_JSON"
    missing_key = await hs.client.put(f"{url}/displayname", json={"other": "x"}, headers=auth)
    assert missing_key.status == 400 and (await missing_key.json())["errcode"] == "M_MISSING_PARAM"
    bad_key = await hs.client.put(f"{url}/Bad-Key", json={"Bad-Key": 1}, headers=auth)
    assert bad_key.status == 400 and (await bad_key.json())["errcode"] == "M_INVALID_PARAM"
    bad_avatar = await hs.client.put(
        f"{url}/avatar_url", json={"avatar_url": "http://x"}, headers=auth
    )
    assert bad_avatar.status == 400
    too_big = await hs.client.put(
        f"{url}/org.example.big", json={"org.example.big": "x" * 70000}, headers=auth
    )
    assert too_big.status in (400, 413)
    no_auth = await hs.client.put(f"{url}/displayname", json={"displayname": "x"})
    assert no_auth.status == 401
    assert await (await hs.client.get(url)).json() == {"displayname": "alice"}


async def test_versions_capabilities_wellknown(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(
        public_baseurl="https://matrix.test.local/", serve_server_wellknown=True
    )
    versions = await (await hs.client.get("/_matrix/client/versions")).json()
    assert "v1.1" in versions["versions"]
    wk = await (await hs.client.get("/.well-known/matrix/client")).json()
    assert wk == {"m.homeserver": {"base_url": "https://matrix.test.local/"}}
    server_wk = await (await hs.client.get("/.well-known/matrix/server")).json()
    assert server_wk == {"m.server": "test.local:443"}
    caps_unauth = await hs.client.get(f"{V3}/capabilities")
    assert caps_unauth.status == 401
    alice = await hs.register("alice")
    caps = await (
        await hs.client.get(f"{V3}/capabilities", headers=bearer(alice["access_token"]))
    ).json()
    room_versions = caps["capabilities"]["m.room_versions"]
    assert room_versions["default"] == "12"
    assert set(room_versions["available"]) >= {str(v) for v in range(1, 13)}
    assert caps["capabilities"]["m.change_password"] == {"enabled": True}


async def test_unknown_endpoint_and_wrong_method(hs: HomeserverHarness) -> None:
    unknown = await hs.client.get("/_matrix/client/v3/no/such/thing")
    assert unknown.status == 404 and (await unknown.json())["errcode"] == "M_UNRECOGNIZED"
    wrong = await hs.client.delete("/_matrix/client/v3/login")
    assert wrong.status == 405 and (await wrong.json())["errcode"] == "M_UNRECOGNIZED"


async def test_cors_on_responses_and_preflight(hs: HomeserverHarness) -> None:
    resp = await hs.client.get("/_matrix/client/versions")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    err = await hs.client.get("/_matrix/client/v3/account/whoami")
    assert err.headers["Access-Control-Allow-Origin"] == "*"
    pre = await hs.client.options("/_matrix/client/v3/login")
    assert pre.status in (200, 204)
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]


async def test_oversized_body_refused(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(max_request_body_size="1K")
    resp = await hs.client.post(
        "/_matrix/client/v3/register", data=b'{"username": "' + b"a" * 4000 + b'"}'
    )
    assert resp.status == 413 and (await resp.json())["errcode"] == "M_TOO_LARGE"


async def test_secrets_never_logged(hs: HomeserverHarness, caplog: object) -> None:
    import logging

    import pytest

    from homeserver.__main__ import quiet_driver_loggers

    assert isinstance(caplog, pytest.LogCaptureFixture)
    quiet_driver_loggers()
    with caplog.at_level(logging.DEBUG):
        alice = await hs.register("alice", "hunter2hunter2")
        await hs.client.get(
            "/_matrix/client/v3/account/whoami", params={"access_token": alice["access_token"]}
        )
    text = caplog.text
    assert "hunter2hunter2" not in text
    stored = await hs.server.db.fetchall("t", "SELECT clientdict FROM ui_auth_sessions")
    assert all("hunter2" not in row[0] for row in stored)
    assert alice["access_token"] not in text
    assert "/_matrix/client/v3/account/whoami" in text


async def test_profile_of_an_invalid_user_id(hs: HomeserverHarness) -> None:
    """Not a user ID (or one with an empty localpart): 400 M_INVALID_PARAM, without
    asking another server (GET /profile/@:b was a 502 after a remote lookup of "b")."""
    for user_id in ("@:b", "@:test.local", "alice", "@alice", "@alice:", "@alice:bad host"):
        for suffix in ("", "/displayname"):
            resp = await hs.client.get(f"{V3}/profile/{user_id}{suffix}")
            body = await resp.json()
            assert resp.status == 400, (user_id, body)
            assert body["errcode"] == "M_INVALID_PARAM", (user_id, body)


async def test_registration_tokens_are_not_logged(
    make_homeserver: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hs = await make_homeserver()
    admin = await hs.register("root")
    await hs.server.stores.accounts.set_admin("@root:test.local", True)
    auth = bearer(admin["access_token"])
    caplog.set_level(logging.INFO, logger="homeserver.access")
    base = "/_synapse/admin/v1/registration_tokens"
    created = await hs.client.post(f"{base}/new", json={"token": "Sekr1t"}, headers=auth)
    assert created.status == 200
    assert (await hs.client.get(f"{base}/Sekr1t", headers=auth)).status == 200
    assert (await hs.client.put(f"{base}/Sekr1t", json={}, headers=auth)).status == 200
    assert (await hs.client.delete(f"{base}/Sekr1t", headers=auth)).status == 200
    validity = "/_matrix/client/v1/register/m.login.registration_token/validity"
    assert (await hs.client.get(validity, params={"token": "Sekr1t"})).status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "homeserver.access"]
    assert len(lines) == 5
    assert not any("Sekr1t" in line for line in lines), lines
    assert any(f"GET {base}/<redacted> 200" in line for line in lines), lines
    assert any(f"POST {base}/new 200" in line for line in lines), lines


async def test_json_content_type_has_no_charset(make_homeserver: HarnessFactory) -> None:
    """RFC 8259 defines no parameter for application/json; Synapse sends none and
    clients (SyTest among them) compare the header literally: answers, errors, gzip."""
    hs = await make_homeserver()
    alice = await hs.register("alice")
    for method, path, headers in (
        ("GET", "/_matrix/client/versions", {}),
        ("GET", f"{V3}/account/whoami", bearer(alice["access_token"])),
        ("GET", f"{V3}/account/whoami", {}),  # 401 M_MISSING_TOKEN
        ("GET", f"{V3}/no/such/endpoint", {}),  # 404 M_UNRECOGNIZED
        ("GET", "/_matrix/key/v2/server", {}),
    ):
        resp = await hs.client.request(method, path, headers=headers)
        assert resp.headers["Content-Type"] == "application/json", (path, resp.status)
        await resp.json()
