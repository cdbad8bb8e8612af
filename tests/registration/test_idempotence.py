"""Registration is idempotent (SyTest 11register.pl): repeating the request of a
session that registered an account returns that account, with a new login."""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.registration.support import REGISTER, V3, count_users


async def register_twice(hs: HomeserverHarness, body: dict[str, Any]) -> tuple[Any, Any, str]:
    first = await hs.client.post(REGISTER, json=body)
    assert first.status == 401
    session = (await first.json())["session"]
    again = {**body, "auth": {"session": session, "type": "m.login.dummy"}}
    one = await hs.client.post(REGISTER, json=again)
    assert one.status == 200, await one.text()
    two = await hs.client.post(REGISTER, json=again)
    assert two.status == 200, await two.text()
    return await one.json(), await two.json(), session


async def whoami(hs: HomeserverHarness, token: str) -> Any:
    resp = await hs.client.get(f"{V3}/account/whoami", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    return await resp.json()


async def test_without_username(hs: HomeserverHarness) -> None:
    one, two, _ = await register_twice(hs, {"password": "sUp3rs3kr1t"})
    assert one["user_id"] == two["user_id"]
    assert one["access_token"] != two["access_token"]
    assert one["device_id"] != two["device_id"]
    assert (await whoami(hs, one["access_token"]))["user_id"] == one["user_id"]
    assert (await whoami(hs, two["access_token"]))["user_id"] == one["user_id"]
    assert await count_users(hs) == 1


async def test_with_username(hs: HomeserverHarness) -> None:
    one, two, session = await register_twice(hs, {"username": "Erin", "password": "pw"})
    assert one["user_id"] == two["user_id"] == "@erin:test.local"
    assert await count_users(hs) == 1
    # another username with the same session is refused, nothing is registered
    other = await hs.client.post(
        REGISTER,
        json={
            "username": "frank",
            "password": "pw",
            "auth": {"session": session, "type": "m.login.dummy"},
        },
    )
    assert other.status == 400 and (await other.json())["errcode"] == "M_UNKNOWN"
    assert await count_users(hs) == 1


async def test_inhibit_login_on_repeat(hs: HomeserverHarness) -> None:
    one, two, _ = await register_twice(
        hs, {"username": "gina", "password": "pw", "inhibit_login": True}
    )
    assert one == two == {"user_id": "@gina:test.local"}


async def test_other_sessions_still_see_the_name_taken(hs: HomeserverHarness) -> None:
    await register_twice(hs, {"username": "hank", "password": "pw"})
    resp = await hs.client.post(REGISTER, json={"username": "hank", "password": "pw"})
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_USER_IN_USE"


async def test_the_session_expires(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    body = {"username": "ivy", "password": "pw"}
    _, _, session = await register_twice(hs, body)
    hs.clock.advance(31 * 60)
    resp = await hs.client.post(
        REGISTER, json={**body, "auth": {"session": session, "type": "m.login.dummy"}}
    )
    assert resp.status == 400
    assert (await resp.json())["errcode"] in ("M_USER_IN_USE", "M_UNKNOWN")
    assert await count_users(hs) == 1
