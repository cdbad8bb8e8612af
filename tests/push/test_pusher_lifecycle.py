"""Pushers go with the device that set them: logout, device deletion, a password
change that logs the other devices out, and deactivation (every pusher)."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.push.support import pool, pusher_body
from tests.rooms.helpers import User

URL = "https://push.example.com/_matrix/push/v1/notify"
PASSWORD = "correct horse"
APP = "com.example.app.ios"


async def login(hs: HomeserverHarness, user: User) -> User:
    """Another device of ``user`` (a new login)."""
    resp = await hs.client.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.user_id},
            "password": PASSWORD,
        },
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return User(hs, body["user_id"], body["access_token"], body["device_id"])


async def alice_with_two_pushers(hs: HomeserverHarness) -> tuple[User, User]:
    """Alice's first device sets pushkey "mine", her second device "other"."""
    body = await hs.register("alice", PASSWORD)
    alice = User(hs, body["user_id"], body["access_token"], body["device_id"])
    phone = await login(hs, alice)
    await alice.request("POST", "/pushers/set", pusher_body(URL, pushkey="mine"))
    await phone.request("POST", "/pushers/set", pusher_body(URL, pushkey="other", append=True))
    assert await pushkeys(alice) == ["mine", "other"]
    return alice, phone


async def pushkeys(user: User) -> list[str]:
    return [p["pushkey"] for p in (await user.request("GET", "/pushers"))["pushers"]]


async def with_password(user: User, method: str, path: str, body: dict[str, Any]) -> Any:
    """A request behind user-interactive auth, completed with the password."""
    first = await user.request(method, path, body, expect=401)
    body = {
        **body,
        "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.user_id},
            "password": PASSWORD,
            "session": first["session"],
        },
    }
    return await user.request(method, path, body)


async def test_password_change_deletes_the_other_devices_pushers(hs: HomeserverHarness) -> None:
    alice, _phone = await alice_with_two_pushers(hs)
    await with_password(alice, "POST", "/account/password", {"new_password": "new one"})
    assert await pushkeys(alice) == ["mine"]
    # and their delivery queues stopped
    assert pool(hs).pusher(alice.user_id, APP, "other") is None
    assert pool(hs).pusher(alice.user_id, APP, "mine") is not None


async def test_password_change_keeping_devices_keeps_pushers(hs: HomeserverHarness) -> None:
    alice, phone = await alice_with_two_pushers(hs)
    await with_password(
        alice, "POST", "/account/password", {"new_password": "new one", "logout_devices": False}
    )
    assert await pushkeys(alice) == ["mine", "other"]
    assert pool(hs).pusher(alice.user_id, APP, "other") is not None
    await phone.request("GET", "/account/whoami")


async def test_failed_password_change_keeps_pushers(hs: HomeserverHarness) -> None:
    alice, _phone = await alice_with_two_pushers(hs)
    first = await alice.request("POST", "/account/password", {"new_password": "x"}, expect=401)
    wrong = {
        "new_password": "new one",
        "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": alice.user_id},
            "password": "not it",
            "session": first["session"],
        },
    }
    await alice.request("POST", "/account/password", wrong, expect=401)
    assert await pushkeys(alice) == ["mine", "other"]


async def test_logout_and_device_deletion_delete_that_devices_pushers(
    hs: HomeserverHarness,
) -> None:
    alice, phone = await alice_with_two_pushers(hs)
    await phone.request("POST", "/logout", {})
    assert await pushkeys(alice) == ["mine"]
    tablet = await login(hs, alice)
    await tablet.request("POST", "/pushers/set", pusher_body(URL, pushkey="tab", append=True))
    await with_password(alice, "DELETE", f"/devices/{tablet.device_id}", {})
    assert await pushkeys(alice) == ["mine"]
    assert pool(hs).pusher(alice.user_id, APP, "tab") is None
    # a logout touches only its own user's pushers
    body = await hs.register("bob", PASSWORD)
    bob = User(hs, body["user_id"], body["access_token"], body["device_id"])
    await bob.request("POST", "/pushers/set", pusher_body(URL, pushkey="bobs", append=True))
    await alice.request("POST", "/logout", {})
    assert await pushkeys(bob) == ["bobs"]


async def test_deactivation_deletes_every_pusher(hs: HomeserverHarness) -> None:
    alice, _phone = await alice_with_two_pushers(hs)
    await with_password(alice, "POST", "/account/deactivate", {})
    rows = await hs.server.db.fetchall(
        "t", "SELECT pushkey FROM pushers WHERE user_id = $1", alice.user_id
    )
    assert rows == []
    assert pool(hs).pusher(alice.user_id, APP, "mine") is None
    assert pool(hs).pusher(alice.user_id, APP, "other") is None
