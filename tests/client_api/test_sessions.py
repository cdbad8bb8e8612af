"""Login, refresh, logout, devices, password change and deactivation."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from homeserver.clock import FakeClock
from homeserver.server import Homeserver
from storage.connect import open_postgres, open_sqlite
from storage.database import Database
from tests.conftest import HomeserverHarness, make_config

V3 = "/_matrix/client/v3"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(hs: HomeserverHarness, user: str, password: str, **extra: Any) -> Any:
    resp = await hs.client.post(
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            **extra,
        },
    )
    return resp.status, await resp.json()


async def whoami_status(hs: HomeserverHarness, token: str) -> tuple[int, Any]:
    resp = await hs.client.get(f"{V3}/account/whoami", headers=bearer(token))
    return resp.status, await resp.json()


async def test_login_flows_and_password_login(hs: HomeserverHarness) -> None:
    flows = await hs.client.get(f"{V3}/login")
    assert {"type": "m.login.password"} in (await flows.json())["flows"]
    await hs.register("alice", "pw1")
    status, body = await login(hs, "alice", "pw1")
    assert status == 200
    assert body["user_id"] == "@alice:test.local"
    status, body = await login(hs, "@alice:test.local", "pw1")
    assert status == 200
    # The deprecated top-level `user` field still works.
    resp = await hs.client.post(
        f"{V3}/login", json={"type": "m.login.password", "user": "alice", "password": "pw1"}
    )
    assert resp.status == 200
    assert (await whoami_status(hs, body["access_token"]))[0] == 200


async def test_wrong_password_and_unknown_user_are_forbidden(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    for user, password in (("alice", "wrong"), ("nobody", "pw1")):
        status, body = await login(hs, user, password)
        assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    resp = await hs.client.post(f"{V3}/login", json={"type": "m.login.magic", "user": "alice"})
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_UNKNOWN"
    resp = await hs.client.post(f"{V3}/login", json={"type": "m.login.password", "password": "x"})
    assert resp.status == 400


async def test_login_reuses_device_id_and_revokes_old_token(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    _, first = await login(hs, "alice", "pw1", device_id="LAPTOP")
    _, second = await login(hs, "alice", "pw1", device_id="LAPTOP")
    assert first["device_id"] == second["device_id"] == "LAPTOP"
    assert (await whoami_status(hs, first["access_token"]))[0] == 401
    assert (await whoami_status(hs, second["access_token"]))[0] == 200


async def test_missing_and_unknown_tokens(hs: HomeserverHarness) -> None:
    resp = await hs.client.get(f"{V3}/account/whoami")
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"
    status, body = await whoami_status(hs, "syt_nonsense")
    assert status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN"
    # The deprecated query parameter works too.
    user = await hs.register("q")
    resp = await hs.client.get(
        f"{V3}/account/whoami", params={"access_token": user["access_token"]}
    )
    assert resp.status == 200


async def test_refresh_tokens(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    status, body = await login(hs, "alice", "pw1", refresh_token=True)
    assert status == 200 and body["expires_in_ms"] > 0 and body["refresh_token"]
    resp = await hs.client.post(f"{V3}/refresh", json={"refresh_token": body["refresh_token"]})
    assert resp.status == 200
    refreshed = await resp.json()
    assert refreshed["access_token"] != body["access_token"]
    # The old access token is gone; the new one works.
    assert (await whoami_status(hs, body["access_token"]))[0] == 401
    assert (await whoami_status(hs, refreshed["access_token"]))[0] == 200
    # Once the new pair is used, the old refresh token is dead.
    again = await hs.client.post(f"{V3}/refresh", json={"refresh_token": body["refresh_token"]})
    assert again.status == 401 and (await again.json())["errcode"] == "M_UNKNOWN_TOKEN"
    bogus = await hs.client.post(f"{V3}/refresh", json={"refresh_token": "nope"})
    assert bogus.status == 401


async def test_expired_access_token_is_soft_logout(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    _, body = await login(hs, "alice", "pw1", refresh_token=True)
    hs.clock.advance(body["expires_in_ms"] / 1000 + 1)
    status, err = await whoami_status(hs, body["access_token"])
    assert status == 401 and err["errcode"] == "M_UNKNOWN_TOKEN" and err["soft_logout"] is True


async def test_logout_and_logout_all(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    _, a = await login(hs, "alice", "pw1")
    _, b = await login(hs, "alice", "pw1")
    _, c = await login(hs, "alice", "pw1")
    resp = await hs.client.post(f"{V3}/logout", headers=bearer(a["access_token"]))
    assert resp.status == 200
    assert (await whoami_status(hs, a["access_token"]))[0] == 401
    assert (await whoami_status(hs, b["access_token"]))[0] == 200
    devices = await (await hs.client.get(f"{V3}/devices", headers=bearer(b["access_token"]))).json()
    assert a["device_id"] not in {d["device_id"] for d in devices["devices"]}
    resp = await hs.client.post(f"{V3}/logout/all", headers=bearer(b["access_token"]))
    assert resp.status == 200
    assert (await whoami_status(hs, b["access_token"]))[0] == 401
    assert (await whoami_status(hs, c["access_token"]))[0] == 401


async def test_devices_rename_and_delete_with_uia(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    _, a = await login(hs, "alice", "pw1", device_id="AAA", initial_device_display_name="A")
    _, b = await login(hs, "alice", "pw1", device_id="BBB")
    auth = bearer(a["access_token"])
    one = await hs.client.get(f"{V3}/devices/AAA", headers=auth)
    assert (await one.json())["display_name"] == "A"
    renamed = await hs.client.put(
        f"{V3}/devices/AAA", json={"display_name": "Renamed"}, headers=auth
    )
    assert renamed.status == 200
    one = await hs.client.get(f"{V3}/devices/AAA", headers=auth)
    assert (await one.json())["display_name"] == "Renamed"
    missing = await hs.client.get(f"{V3}/devices/NOPE", headers=auth)
    assert missing.status == 404 and (await missing.json())["errcode"] == "M_NOT_FOUND"
    missing = await hs.client.put(f"{V3}/devices/NOPE", json={"display_name": "x"}, headers=auth)
    assert missing.status == 404
    bad = await hs.client.put(f"{V3}/devices/AAA", json={"display_name": 3}, headers=auth)
    assert bad.status == 400 and (await bad.json())["errcode"] == "M_BAD_JSON"

    first = await hs.client.delete(f"{V3}/devices/BBB", headers=auth)
    assert first.status == 401
    session = (await first.json())["session"]
    wrong = await hs.client.delete(
        f"{V3}/devices/BBB",
        headers=auth,
        json={
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "bad",
                "session": session,
            }
        },
    )
    assert wrong.status == 401 and (await wrong.json())["errcode"] == "M_FORBIDDEN"
    assert (await whoami_status(hs, b["access_token"]))[0] == 200
    ok = await hs.client.delete(
        f"{V3}/devices/BBB",
        headers=auth,
        json={
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "pw1",
                "session": session,
            }
        },
    )
    assert ok.status == 200
    assert (await whoami_status(hs, b["access_token"]))[0] == 401

    _, c = await login(hs, "alice", "pw1", device_id="CCC")
    first = await hs.client.post(f"{V3}/delete_devices", json={"devices": ["CCC"]}, headers=auth)
    session = (await first.json())["session"]
    ok = await hs.client.post(
        f"{V3}/delete_devices",
        headers=auth,
        json={
            "devices": ["CCC"],
            "auth": {
                "type": "m.login.password",
                "user": "alice",
                "password": "pw1",
                "session": session,
            },
        },
    )
    assert ok.status == 200
    assert (await whoami_status(hs, c["access_token"]))[0] == 401


async def test_uia_session_cannot_be_reused_for_another_user(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    await hs.register("mallory", "pw2")
    _, a = await login(hs, "alice", "pw1")
    _, m = await login(hs, "mallory", "pw2")
    first = await hs.client.post(
        f"{V3}/delete_devices", json={"devices": []}, headers=bearer(a["access_token"])
    )
    session = (await first.json())["session"]
    # Mallory proves her own password, in Alice's session, with her own token.
    stolen = await hs.client.post(
        f"{V3}/delete_devices",
        headers=bearer(m["access_token"]),
        json={
            "devices": [a["device_id"]],
            "auth": {
                "type": "m.login.password",
                "user": "mallory",
                "password": "pw2",
                "session": session,
            },
        },
    )
    assert stolen.status == 403
    # Mallory's password does not satisfy UIA for Alice: refused outright (403, as
    # Synapse), not another 401 to try again.
    wrong_user = await hs.client.post(
        f"{V3}/delete_devices",
        headers=bearer(a["access_token"]),
        json={
            "devices": [],
            "auth": {
                "type": "m.login.password",
                "user": "mallory",
                "password": "pw2",
                "session": session,
            },
        },
    )
    assert wrong_user.status == 403
    assert (await wrong_user.json())["errcode"] == "M_FORBIDDEN"
    assert (await whoami_status(hs, a["access_token"]))[0] == 200


async def test_change_password_logs_out_other_devices(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    _, a = await login(hs, "alice", "pw1")
    _, b = await login(hs, "alice", "pw1")
    auth = bearer(a["access_token"])
    first = await hs.client.post(
        f"{V3}/account/password", json={"new_password": "pw2"}, headers=auth
    )
    assert first.status == 401
    session = (await first.json())["session"]
    ok = await hs.client.post(
        f"{V3}/account/password",
        headers=auth,
        json={
            "new_password": "pw2",
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "pw1",
                "session": session,
            },
        },
    )
    assert ok.status == 200
    assert (await whoami_status(hs, a["access_token"]))[0] == 200
    assert (await whoami_status(hs, b["access_token"]))[0] == 401
    assert (await login(hs, "alice", "pw1"))[0] == 403
    assert (await login(hs, "alice", "pw2"))[0] == 200


async def test_change_password_can_keep_devices(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    _, a = await login(hs, "alice", "pw1")
    _, b = await login(hs, "alice", "pw1")
    auth = bearer(a["access_token"])
    first = await hs.client.post(
        f"{V3}/account/password",
        json={"new_password": "pw2", "logout_devices": False},
        headers=auth,
    )
    session = (await first.json())["session"]
    ok = await hs.client.post(
        f"{V3}/account/password",
        headers=auth,
        json={
            "new_password": "pw2",
            "logout_devices": False,
            "auth": {
                "type": "m.login.password",
                "user": "alice",
                "password": "pw1",
                "session": session,
            },
        },
    )
    assert ok.status == 200
    assert (await whoami_status(hs, b["access_token"]))[0] == 200


async def test_deactivate(hs: HomeserverHarness) -> None:
    await hs.register("alice", "pw1")
    _, a = await login(hs, "alice", "pw1")
    auth = bearer(a["access_token"])
    first = await hs.client.post(f"{V3}/account/deactivate", json={}, headers=auth)
    session = (await first.json())["session"]
    ok = await hs.client.post(
        f"{V3}/account/deactivate",
        headers=auth,
        json={
            "auth": {
                "type": "m.login.password",
                "user": "alice",
                "password": "pw1",
                "session": session,
            }
        },
    )
    assert ok.status == 200
    assert (await ok.json())["id_server_unbind_result"] == "success"  # nothing to unbind
    assert (await whoami_status(hs, a["access_token"]))[0] == 401
    status, _ = await login(hs, "alice", "pw1")
    assert status == 403
    taken = await hs.client.get(f"{V3}/register/available", params={"username": "alice"})
    assert taken.status == 400


async def _open_database(engine: str, tmp_path: Path, conninfo: str, schema: str) -> Database:
    if engine == "sqlite":
        return await open_sqlite(tmp_path / "restart.db")
    return await open_postgres(conninfo, min_size=1, max_size=4, search_path=schema)


async def _start(tmp_path: Path, db: Database) -> HomeserverHarness:
    server = await Homeserver.build(make_config(tmp_path), clock=FakeClock(), db=db)
    test_server = TestServer(server.make_app({"client"}))
    await test_server.start_server(access_log=None)
    client: TestClient[Any, Any] = TestClient(test_server)
    await client.start_server()
    return HomeserverHarness(server, client, FakeClock())


async def _stop(hs: HomeserverHarness) -> None:
    await hs.client.close()  # stops the background work
    await hs.server.close()  # and closes the database


async def test_restart_keeps_users_and_tokens(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A server stopped (database closed) and started again over the same SQLite file
    or PostgreSQL schema still knows its users, their passwords, tokens and devices."""
    conninfo, schema = "", ""
    if engine == "postgres":
        conninfo = request.getfixturevalue("pg_database")
        schema = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    first = await _start(tmp_path, await _open_database(engine, tmp_path, conninfo, schema))
    try:
        user = await first.register("alice", "pw1", initial_device_display_name="Phone")
        status, other = await login(first, "alice", "pw1", device_id="TABLET")
        assert status == 200
        revoked = await first.client.post(f"{V3}/logout", headers=bearer(other["access_token"]))
        assert revoked.status == 200
    finally:
        await _stop(first)

    second = await _start(tmp_path, await _open_database(engine, tmp_path, conninfo, schema))
    try:
        assert second.server.db is not first.server.db
        status, body = await whoami_status(second, user["access_token"])
        assert status == 200 and body["device_id"] == user["device_id"]
        assert (await whoami_status(second, other["access_token"]))[0] == 401
        devices = await second.client.get(f"{V3}/devices", headers=bearer(user["access_token"]))
        assert [
            (d["device_id"], d.get("display_name")) for d in (await devices.json())["devices"]
        ] == [(user["device_id"], "Phone")]
        assert (await login(second, "alice", "pw1"))[0] == 200
        assert (await login(second, "alice", "wrong"))[0] == 403
    finally:
        await _stop(second)
