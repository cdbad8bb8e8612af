"""User-interactive authentication: malformed ``auth`` dicts get Matrix errors, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import HomeserverHarness

V3 = "/_matrix/client/v3"

# (auth dict with the session filled in where "S" appears, expected status, errcode or None)
MALFORMED_AUTH: list[tuple[dict[str, Any], int, str | None]] = [
    ({"type": [1], "session": "S"}, 400, "M_BAD_JSON"),
    ({"type": {"a": 1}, "session": "S"}, 400, "M_BAD_JSON"),
    ({"type": 5, "session": "S"}, 400, "M_BAD_JSON"),
    ({"type": True, "session": "S"}, 400, "M_BAD_JSON"),
    ({"type": [1]}, 400, "M_BAD_JSON"),
    ({"type": "m.login.dummy", "session": ["S"]}, 400, "M_BAD_JSON"),
    ({"type": "m.login.dummy", "session": {"id": "S"}}, 400, "M_BAD_JSON"),
    ({"type": "m.login.dummy", "session": 7}, 400, "M_BAD_JSON"),
    ({"type": "m.login.dummy", "session": ""}, 400, "M_UNKNOWN"),
    ({"type": "m.login.dummy", "session": "no-such-session"}, 400, "M_UNKNOWN"),
    ({"type": "m.login.unknown", "session": "S"}, 401, "M_UNRECOGNIZED"),
    ({"type": "", "session": "S"}, 401, "M_UNRECOGNIZED"),
]

# Fields of the m.login.password stage, malformed.
MALFORMED_PASSWORD_AUTH: list[tuple[dict[str, Any], int, str | None]] = [
    ({"identifier": "alice", "password": "pw1"}, 400, "M_BAD_JSON"),
    ({"identifier": ["alice"], "password": "pw1"}, 400, "M_BAD_JSON"),
    (
        {"identifier": {"type": ["m.id.user"], "user": "alice"}, "password": "pw1"},
        400,
        "M_BAD_JSON",
    ),
    ({"identifier": {"type": "m.id.user", "user": 5}, "password": "pw1"}, 400, "M_BAD_JSON"),
    ({"identifier": {"type": "m.id.user", "user": "alice"}, "password": ["pw1"]}, 401, None),
    ({"identifier": {"type": "m.id.user", "user": "alice"}, "password": None}, 401, None),
    ({"identifier": {"type": "m.id.phone"}, "password": "pw1"}, 401, "M_UNKNOWN"),
    ({"user": {"name": "alice"}, "password": "pw1"}, 400, "M_BAD_JSON"),
    ({"password": "pw1"}, 401, "M_MISSING_PARAM"),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_session(auth: dict[str, Any], session: str) -> dict[str, Any]:
    return {k: session if v == "S" else v for k, v in auth.items()}


async def check(resp: Any, status: int, errcode: str | None) -> None:
    body = await resp.json()
    assert resp.status == status, body
    assert isinstance(body.get("errcode"), str) and isinstance(body.get("error"), str)
    if errcode is not None:
        assert body["errcode"] == errcode, body


@pytest.mark.parametrize(("auth", "status", "errcode"), MALFORMED_AUTH)
async def test_malformed_auth_on_register(
    hs: HomeserverHarness, auth: dict[str, Any], status: int, errcode: str | None
) -> None:
    body = {"username": "alice", "password": "pw1"}
    first = await hs.client.post(f"{V3}/register", json=body)
    session = (await first.json())["session"]
    resp = await hs.client.post(
        f"{V3}/register", json={**body, "auth": with_session(auth, session)}
    )
    await check(resp, status, errcode)
    # Nothing was registered, and the session still works.
    done = await hs.client.post(
        f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}}
    )
    assert done.status == 200, await done.text()


@pytest.mark.parametrize(("auth", "status", "errcode"), MALFORMED_AUTH)
async def test_malformed_auth_on_delete_devices(
    hs: HomeserverHarness, auth: dict[str, Any], status: int, errcode: str | None
) -> None:
    alice = await hs.register("alice", "pw1")
    headers = bearer(alice["access_token"])
    body = {"devices": [alice["device_id"]]}
    first = await hs.client.post(f"{V3}/delete_devices", json=body, headers=headers)
    session = (await first.json())["session"]
    resp = await hs.client.post(
        f"{V3}/delete_devices",
        json={**body, "auth": with_session(auth, session)},
        headers=headers,
    )
    await check(resp, status, errcode)
    whoami = await hs.client.get(f"{V3}/account/whoami", headers=headers)
    assert whoami.status == 200


@pytest.mark.parametrize(("stage_fields", "status", "errcode"), MALFORMED_PASSWORD_AUTH)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/delete_devices", {"devices": []}),
        ("POST", "/account/password", {"new_password": "pw2"}),
        ("POST", "/account/deactivate", {}),
        ("DELETE", "/devices/{device_id}", {}),
    ],
)
async def test_malformed_password_stage(
    hs: HomeserverHarness,
    method: str,
    path: str,
    body: dict[str, Any],
    stage_fields: dict[str, Any],
    status: int,
    errcode: str | None,
) -> None:
    alice = await hs.register("alice", "pw1")
    headers = bearer(alice["access_token"])
    url = V3 + path.format(device_id=alice["device_id"])
    first = await hs.client.request(method, url, json=body, headers=headers)
    assert first.status == 401
    session = (await first.json())["session"]
    auth = {"type": "m.login.password", "session": session, **stage_fields}
    resp = await hs.client.request(method, url, json={**body, "auth": auth}, headers=headers)
    await check(resp, status, errcode)
    # The account is untouched: the old password and the token still work.
    whoami = await hs.client.get(f"{V3}/account/whoami", headers=headers)
    assert whoami.status == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/devices/{device_id}", {}),
        ("POST", "/delete_devices", {"devices": ["{device_id}"]}),
        ("POST", "/account/password", {"new_password": "pw3"}),
    ],
)
async def test_password_of_another_user_is_refused(
    hs: HomeserverHarness, method: str, path: str, body: dict[str, Any]
) -> None:
    """Eve holds alice's stolen token: her own password proves nothing for alice (403,
    as Synapse), and alice's still does."""
    alice = await hs.register("alice", "pw1")
    await hs.register("eve", "pw-eve")
    login = await hs.client.post(
        f"{V3}/login",
        json={"type": "m.login.password", "user": "alice", "password": "pw1", "device_id": "D2"},
    )
    assert login.status == 200
    headers = bearer(alice["access_token"])
    url = V3 + path.format(device_id="D2")
    filled = {k: (["D2"] if v == ["{device_id}"] else v) for k, v in body.items()}
    first = await hs.client.request(method, url, json=filled, headers=headers)
    session = (await first.json())["session"]
    eve_auth = {
        "type": "m.login.password",
        "session": session,
        "identifier": {"type": "m.id.user", "user": "@eve:test.local"},
        "password": "pw-eve",
    }
    refused = await hs.client.request(
        method, url, json={**filled, "auth": eve_auth}, headers=headers
    )
    await check(refused, 403, "M_FORBIDDEN")
    device = await hs.client.get(f"{V3}/devices/D2", headers=headers)
    assert device.status == 200
    alice_auth = {**eve_auth, "identifier": {"type": "m.id.user", "user": "alice"}}
    alice_auth["password"] = "pw1"
    done = await hs.client.request(
        method, url, json={**filled, "auth": alice_auth}, headers=headers
    )
    assert done.status == 200, await done.text()
