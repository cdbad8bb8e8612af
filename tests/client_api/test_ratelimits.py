"""Rate limits: rc_login (per address, account, failed attempts) and UIA re-auth; rc_joins,
rc_room_creation and rc_presence."""

from __future__ import annotations

from typing import Any

from tests.conftest import UNLIMITED, HarnessFactory, HomeserverHarness

V3 = "/_matrix/client/v3"
TWO = {"per_second": 0.1, "burst_count": 2}


def rc_login(**limits: dict[str, float]) -> dict[str, Any]:
    return {"address": UNLIMITED, "account": UNLIMITED, "failed_attempts": UNLIMITED, **limits}


async def login(hs: HomeserverHarness, user: str, password: str) -> tuple[int, Any]:
    resp = await hs.client.post(
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        },
    )
    return resp.status, await resp.json()


def assert_limited(status: int, body: Any) -> None:
    assert status == 429, body
    assert body["errcode"] == "M_LIMIT_EXCEEDED"
    assert isinstance(body["retry_after_ms"], int) and body["retry_after_ms"] > 0


async def test_logins_per_address(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(rc_login=rc_login(address=TWO))
    await hs.register("alice", "pw1")
    await hs.register("bob", "pw2")
    # Every attempt from the address counts, whoever it is for and however it ends.
    assert (await login(hs, "alice", "pw1"))[0] == 200
    assert (await login(hs, "bob", "wrong"))[0] == 403
    status, body = await login(hs, "bob", "pw2")
    assert_limited(status, body)
    hs.clock.advance(body["retry_after_ms"] / 1000)
    assert (await login(hs, "bob", "pw2"))[0] == 200


async def test_logins_per_account(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(rc_login=rc_login(account=TWO))
    await hs.register("alice", "pw1")
    await hs.register("bob", "pw2")
    # Failed attempts do not spend the account's logins (as Synapse).
    assert (await login(hs, "alice", "wrong"))[0] == 403
    assert (await login(hs, "alice", "pw1"))[0] == 200
    assert (await login(hs, "@alice:test.local", "pw1"))[0] == 200
    assert_limited(*await login(hs, "alice", "pw1"))
    # Another account is not affected.
    assert (await login(hs, "bob", "pw2"))[0] == 200
    hs.clock.advance(10)
    assert (await login(hs, "alice", "pw1"))[0] == 200


async def test_failed_login_attempts(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(rc_login=rc_login(failed_attempts=TWO))
    await hs.register("alice", "pw1")
    await hs.register("bob", "pw2")
    assert (await login(hs, "alice", "wrong"))[0] == 403
    # The localpart and the full user ID are the same account's attempts.
    assert (await login(hs, "@Alice:test.local", "wrong"))[0] == 403
    # Once they are spent even the right password is refused until the bucket refills.
    status, body = await login(hs, "alice", "pw1")
    assert_limited(status, body)
    assert (await login(hs, "bob", "pw2"))[0] == 200
    hs.clock.advance(body["retry_after_ms"] / 1000)
    assert (await login(hs, "alice", "pw1"))[0] == 200
    # Unknown users are limited as well (no user enumeration by timing the 429).
    assert (await login(hs, "nobody", "x"))[0] == 403
    assert (await login(hs, "nobody", "x"))[0] == 403
    assert_limited(*await login(hs, "nobody", "x"))


def password_auth(session: str, password: str) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": password,
        "session": session,
    }


async def delete_device(hs: HomeserverHarness, token: str, device_id: str, password: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{V3}/devices/{device_id}"
    first = await hs.client.delete(url, headers=headers)
    assert first.status == 401
    session = (await first.json())["session"]
    resp = await hs.client.delete(
        url, json={"auth": password_auth(session, password)}, headers=headers
    )
    return resp.status, await resp.json()


async def test_uia_password_does_not_spend_account_logins(
    make_homeserver: HarnessFactory,
) -> None:
    """After as many logins as rc_login.account allows, the user can still confirm
    their password to change it or delete devices (the UIA stage is not a login)."""
    hs = await make_homeserver(rc_login=rc_login(account=TWO))
    await hs.register("alice", "pw1")
    _, a = await login(hs, "alice", "pw1")
    _, b = await login(hs, "alice", "pw1")
    assert_limited(*await login(hs, "alice", "pw1"))
    headers = {"Authorization": f"Bearer {a['access_token']}"}
    assert await delete_device(hs, a["access_token"], b["device_id"], "pw1") == (200, {})
    first = await hs.client.post(
        f"{V3}/account/password", json={"new_password": "pw2"}, headers=headers
    )
    session = (await first.json())["session"]
    changed = await hs.client.post(
        f"{V3}/account/password",
        json={"new_password": "pw2", "auth": password_auth(session, "pw1")},
        headers=headers,
    )
    assert changed.status == 200, await changed.text()


async def test_uia_failed_attempts_are_limited(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(rc_login=rc_login(failed_attempts=TWO))
    await hs.register("alice", "pw1")
    _, a = await login(hs, "alice", "pw1")
    _, b = await login(hs, "alice", "pw1")
    for _ in range(2):
        status, body = await delete_device(hs, a["access_token"], b["device_id"], "wrong")
        assert status == 401 and body["errcode"] == "M_FORBIDDEN"
    status, body = await delete_device(hs, a["access_token"], b["device_id"], "pw1")
    assert_limited(status, body)
    hs.clock.advance(body["retry_after_ms"] / 1000)
    assert await delete_device(hs, a["access_token"], b["device_id"], "pw1") == (200, {})


async def test_room_creation_per_user(make_homeserver: HarnessFactory) -> None:
    from tests.rooms.helpers import make_user

    hs = await make_homeserver(rc_room_creation=TWO)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await alice.create_room()
    await alice.create_room()
    err = await alice.request("POST", "/createRoom", {}, expect=429)
    assert_limited(429, err)
    await bob.create_room()  # another user's bucket
    hs.clock.advance(err["retry_after_ms"] / 1000)
    await alice.create_room()
    rooms = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM rooms")
    assert rooms == 4


async def test_local_joins_per_user(make_homeserver: HarnessFactory) -> None:
    from tests.rooms.helpers import make_user

    hs = await make_homeserver(rc_joins={"local": TWO, "remote": UNLIMITED})
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    rooms = [await alice.create_room(preset="public_chat") for _ in range(3)]
    await bob.join(rooms[0])
    await bob.join(rooms[1])
    # joining a room again is no new join: it costs nothing
    await bob.join(rooms[0])
    err = await bob.request("POST", f"/join/{rooms[2]}", {}, expect=429)
    assert_limited(429, err)
    assert (await bob.request("GET", "/joined_rooms"))["joined_rooms"].count(rooms[2]) == 0
    hs.clock.advance(err["retry_after_ms"] / 1000)
    await bob.join(rooms[2])


async def test_presence_updates_per_user(make_homeserver: HarnessFactory) -> None:
    from tests.rooms.helpers import make_user

    hs = await make_homeserver(rc_presence={"per_user": TWO})
    alice = await make_user(hs, "alice")
    path = f"/presence/{alice.user_id}/status"
    await alice.request("PUT", path, {"presence": "online"})
    await alice.request("PUT", path, {"presence": "unavailable"})
    err = await alice.request("PUT", path, {"presence": "offline"}, expect=429)
    assert_limited(429, err)
    status = await alice.request("GET", path)
    assert status["presence"] == "unavailable"
