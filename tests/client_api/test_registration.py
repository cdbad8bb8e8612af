"""Registration: UIA, availability, tokens, guests, shared-secret admin registration."""

from __future__ import annotations

import hashlib
import hmac

from tests.conftest import HarnessFactory, HomeserverHarness

REGISTER = "/_matrix/client/v3/register"


async def count_users(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM users"))


async def test_uia_flow_then_register_and_whoami(hs: HomeserverHarness) -> None:
    first = await hs.client.post(REGISTER, json={"username": "alice", "password": "pw"})
    assert first.status == 401
    state = await first.json()
    assert state["flows"] == [{"stages": ["m.login.dummy"]}]
    assert state["params"] == {}
    assert isinstance(state["session"], str)
    assert "completed" in state
    second = await hs.client.post(
        REGISTER,
        json={
            "username": "alice",
            "password": "pw",
            "initial_device_display_name": "phone",
            "auth": {"type": "m.login.dummy", "session": state["session"]},
        },
    )
    assert second.status == 200
    body = await second.json()
    assert body["user_id"] == "@alice:test.local"
    assert body["device_id"] and body["access_token"]
    who = await hs.client.get(
        "/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert who.status == 200
    assert await who.json() == {
        "user_id": "@alice:test.local",
        "device_id": body["device_id"],
        "is_guest": False,
    }
    devices = await hs.client.get(
        "/_matrix/client/v3/devices", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert (await devices.json())["devices"][0]["display_name"] == "phone"


async def test_params_from_first_request_are_kept(hs: HomeserverHarness) -> None:
    first = await hs.client.post(REGISTER, json={"username": "bob", "password": "pw"})
    session = (await first.json())["session"]
    second = await hs.client.post(
        REGISTER, json={"auth": {"type": "m.login.dummy", "session": session}}
    )
    assert second.status == 200
    assert (await second.json())["user_id"] == "@bob:test.local"


async def test_taken_and_invalid_usernames(hs: HomeserverHarness) -> None:
    await hs.register("carol")
    taken = await hs.client.post(REGISTER, json={"username": "carol", "password": "pw"})
    assert taken.status == 400
    assert (await taken.json())["errcode"] == "M_USER_IN_USE"
    case = await hs.client.post(REGISTER, json={"username": "CAROL", "password": "pw"})
    assert (await case.json())["errcode"] == "M_USER_IN_USE"
    # "eve\n": a trailing newline must not slip past the pattern ($ matches before it)
    for bad in ["has space", "ümlaut", "colon:x", "a" * 300, "", "eve\n", "eve\nx"]:
        resp = await hs.client.post(REGISTER, json={"username": bad, "password": "pw"})
        assert resp.status == 400, bad
        assert (await resp.json())["errcode"] == "M_INVALID_USERNAME", bad
    assert await count_users(hs) == 1


async def test_register_available(hs: HomeserverHarness) -> None:
    url = "/_matrix/client/v3/register/available"
    ok = await hs.client.get(url, params={"username": "dave"})
    assert ok.status == 200 and await ok.json() == {"available": True}
    await hs.register("dave")
    taken = await hs.client.get(url, params={"username": "dave"})
    assert taken.status == 400 and (await taken.json())["errcode"] == "M_USER_IN_USE"
    bad = await hs.client.get(url, params={"username": "Bad Name"})
    assert (await bad.json())["errcode"] == "M_INVALID_USERNAME"


async def test_inhibit_login(hs: HomeserverHarness) -> None:
    body = await hs.register("erin", inhibit_login=True)
    assert body == {"user_id": "@erin:test.local"}


async def test_bad_bodies(hs: HomeserverHarness) -> None:
    not_json = await hs.client.post(REGISTER, data=b"{not json")
    assert not_json.status == 400 and (await not_json.json())["errcode"] == "M_NOT_JSON"
    array = await hs.client.post(REGISTER, json=[1, 2])
    assert array.status == 400 and (await array.json())["errcode"] == "M_BAD_JSON"
    wrong_type = await hs.client.post(REGISTER, json={"username": 5, "password": "pw"})
    assert (await wrong_type.json())["errcode"] == "M_BAD_JSON"
    bad_session = await hs.client.post(
        REGISTER,
        json={
            "username": "x",
            "password": "pw",
            "auth": {"type": "m.login.dummy", "session": "nope"},
        },
    )
    assert bad_session.status == 400
    unknown_stage = await hs.client.post(REGISTER, json={"username": "x", "password": "pw"})
    session = (await unknown_stage.json())["session"]
    wrong_stage = await hs.client.post(
        REGISTER, json={"auth": {"type": "m.login.recaptcha", "session": session}}
    )
    assert wrong_stage.status == 401
    assert (await wrong_stage.json())["errcode"] == "M_UNRECOGNIZED"
    assert await count_users(hs) == 0


async def test_registration_disabled(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(enable_registration=False)
    resp = await hs.client.post(REGISTER, json={"username": "x", "password": "pw"})
    assert resp.status == 403 and (await resp.json())["errcode"] == "M_FORBIDDEN"


async def test_guests_refused_unless_enabled(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    resp = await hs.client.post(REGISTER + "?kind=guest", json={})
    assert resp.status == 403 and (await resp.json())["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"


async def test_guest_registration_when_enabled(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(allow_guest_access=True)
    resp = await hs.client.post(REGISTER + "?kind=guest", json={})
    assert resp.status == 200
    body = await resp.json()
    who = await hs.client.get(
        "/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert (await who.json())["is_guest"] is True


async def test_registration_token_flow(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(registration_requires_token=True)
    await hs.server.stores.registration_tokens.create("letmein", 1, None)
    validity = await hs.client.get(
        "/_matrix/client/v1/register/m.login.registration_token/validity",
        params={"token": "letmein"},
    )
    assert await validity.json() == {"valid": True}
    first = await hs.client.post(REGISTER, json={"username": "tok", "password": "pw"})
    state = await first.json()
    # As Synapse: the token goes in front of every flow.
    assert state["flows"] == [{"stages": ["m.login.registration_token", "m.login.dummy"]}]
    wrong = await hs.client.post(
        REGISTER,
        json={
            "auth": {
                "type": "m.login.registration_token",
                "token": "nope",
                "session": state["session"],
            }
        },
    )
    assert wrong.status == 401 and (await wrong.json())["errcode"] == "M_UNAUTHORIZED"
    right = await hs.client.post(
        REGISTER,
        json={
            "auth": {
                "type": "m.login.registration_token",
                "token": "letmein",
                "session": state["session"],
            }
        },
    )
    assert right.status == 401
    assert (await right.json())["completed"] == ["m.login.registration_token"]
    done = await hs.client.post(
        REGISTER, json={"auth": {"type": "m.login.dummy", "session": state["session"]}}
    )
    assert done.status == 200
    token = await hs.server.stores.registration_tokens.get("letmein")
    assert token is not None and token.completed == 1
    # The single use is spent.
    validity = await hs.client.get(
        "/_matrix/client/v1/register/m.login.registration_token/validity",
        params={"token": "letmein"},
    )
    assert await validity.json() == {"valid": False}


async def test_rate_limited_registration(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(rc_registration={"per_second": 0.1, "burst_count": 2})
    statuses = []
    for i in range(3):
        resp = await hs.client.post(REGISTER, json={"username": f"u{i}", "password": "pw"})
        statuses.append(resp.status)
    assert statuses == [401, 401, 429]
    body = await resp.json()
    assert body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] > 0


def _mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(f"{nonce}\x00{user}\x00{password}\x00{'admin' if admin else 'notadmin'}".encode())
    return mac.hexdigest()


async def test_shared_secret_registration(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(registration_shared_secret="s3cret")
    url = "/_synapse/admin/v1/register"
    nonce = (await (await hs.client.get(url)).json())["nonce"]
    bad = await hs.client.post(
        url, json={"nonce": nonce, "username": "root", "password": "pw", "admin": True, "mac": "00"}
    )
    assert bad.status == 403
    nonce = (await (await hs.client.get(url)).json())["nonce"]
    body = {"nonce": nonce, "username": "root", "password": "pw", "admin": True}
    body["mac"] = _mac("s3cret", nonce, "root", "pw", True)
    ok = await hs.client.post(url, json=body)
    assert ok.status == 200, await ok.text()
    assert (await ok.json())["user_id"] == "@root:test.local"
    replay = await hs.client.post(url, json=body)
    assert replay.status == 400
    user = await hs.server.stores.accounts.get_user("@root:test.local")
    assert user is not None and user.is_admin


async def test_admin_registration_tokens_api(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(registration_shared_secret="s3cret")
    user = await hs.register("plain")
    auth = {"Authorization": f"Bearer {user['access_token']}"}
    denied = await hs.client.post(
        "/_synapse/admin/v1/registration_tokens/new", json={}, headers=auth
    )
    assert denied.status == 403
    await hs.server.stores.accounts.set_admin("@plain:test.local", True)
    created = await hs.client.post(
        "/_synapse/admin/v1/registration_tokens/new",
        json={"token": "abc", "uses_allowed": 3},
        headers=auth,
    )
    assert created.status == 200
    assert (await created.json())["uses_allowed"] == 3
    listed = await hs.client.get("/_synapse/admin/v1/registration_tokens", headers=auth)
    assert [t["token"] for t in (await listed.json())["registration_tokens"]] == ["abc"]
    deleted = await hs.client.delete("/_synapse/admin/v1/registration_tokens/abc", headers=auth)
    assert deleted.status == 200
    missing = await hs.client.get("/_synapse/admin/v1/registration_tokens/abc", headers=auth)
    assert missing.status == 404


async def test_admin_registration_token_rules(make_homeserver: HarnessFactory) -> None:
    """The admin API checks tokens with the same rules as the registration-token command."""
    hs = await make_homeserver()
    user = await hs.register("root")
    await hs.server.stores.accounts.set_admin("@root:test.local", True)
    auth = {"Authorization": f"Bearer {user['access_token']}"}
    new = "/_synapse/admin/v1/registration_tokens/new"
    for body, errcode in [
        ({"token": "bad token!"}, "M_INVALID_PARAM"),
        ({"token": "x" * 65}, "M_INVALID_PARAM"),
        ({"token": ""}, "M_INVALID_PARAM"),
        ({"length": 65}, "M_INVALID_PARAM"),
        ({"length": 0}, "M_INVALID_PARAM"),
        ({"uses_allowed": -3}, "M_INVALID_PARAM"),
        ({"expiry_time": 1}, "M_INVALID_PARAM"),
        ({"uses_allowed": "3"}, "M_BAD_JSON"),
        ({"token": 5}, "M_BAD_JSON"),
    ]:
        resp = await hs.client.post(new, json=body, headers=auth)
        assert resp.status == 400, body
        assert (await resp.json())["errcode"] == errcode, body
    created = await hs.client.post(new, json={"token": "x" * 64, "uses_allowed": 0}, headers=auth)
    assert created.status == 200
    again = await hs.client.post(new, json={"token": "x" * 64}, headers=auth)
    assert again.status == 400 and (await again.json())["errcode"] == "M_INVALID_PARAM"
    url = f"/_synapse/admin/v1/registration_tokens/{'x' * 64}"
    for body, errcode in [
        ({"uses_allowed": -1}, "M_INVALID_PARAM"),
        ({"expiry_time": -1}, "M_INVALID_PARAM"),
        ({"uses_allowed": True}, "M_BAD_JSON"),
    ]:
        resp = await hs.client.put(url, json=body, headers=auth)
        assert resp.status == 400, body
        assert (await resp.json())["errcode"] == errcode, body
    updated = await hs.client.put(url, json={"uses_allowed": 5}, headers=auth)
    assert (await updated.json())["uses_allowed"] == 5
    cleared = await hs.client.put(url, json={"uses_allowed": None}, headers=auth)
    assert (await cleared.json())["uses_allowed"] is None
    missing = await hs.client.put(
        "/_synapse/admin/v1/registration_tokens/nope", json={}, headers=auth
    )
    assert missing.status == 404
