"""Account moderation in the client-server API (spec v1.18):
GET/PUT /_matrix/client/v1/admin/suspend/{userId} and .../lock/{userId}."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

V1 = "/_matrix/client/v1/admin"


async def call(
    hs: HomeserverHarness, user: User | None, method: str, path: str, body: object = None
) -> tuple[int, Any]:
    headers = user.auth if user else {}
    resp = await hs.client.request(method, V1 + path, json=body, headers=headers)
    return resp.status, await resp.json()


async def test_suspend_and_lock_through_the_client_api(hs: HomeserverHarness) -> None:
    admin = await make_user(hs, "admin")
    await hs.server.stores.accounts.set_admin(admin.user_id, True)
    alice = await make_user(hs, "alice")
    caps = await admin.request("GET", "/capabilities")
    assert caps["capabilities"]["m.account_moderation"] == {"suspend": True, "lock": True}
    assert (
        "m.account_moderation" not in (await alice.request("GET", "/capabilities"))["capabilities"]
    )
    room = await alice.create_room(preset="public_chat")

    assert await call(hs, admin, "GET", f"/suspend/{alice.user_id}") == (200, {"suspended": False})
    assert await call(hs, admin, "PUT", f"/suspend/{alice.user_id}", {"suspended": True}) == (
        200,
        {"suspended": True},
    )
    assert await call(hs, admin, "GET", f"/suspend/{alice.user_id}") == (200, {"suspended": True})
    refused = await alice.request(
        "PUT", f"/rooms/{room}/send/m.room.message/s1", {"body": "x"}, expect=403
    )
    assert refused["errcode"] == "M_USER_SUSPENDED"
    await call(hs, admin, "PUT", f"/suspend/{alice.user_id}", {"suspended": False})
    await alice.send(room, "back")

    assert await call(hs, admin, "PUT", f"/lock/{alice.user_id}", {"locked": True}) == (
        200,
        {"locked": True},
    )
    resp = await hs.client.get("/_matrix/client/v3/account/whoami", headers=alice.auth)
    body = await resp.json()
    assert resp.status == 401 and body["errcode"] == "M_USER_LOCKED" and body["soft_logout"]
    assert await call(hs, admin, "GET", f"/lock/{alice.user_id}") == (200, {"locked": True})
    await call(hs, admin, "PUT", f"/lock/{alice.user_id}", {"locked": False})
    resp = await hs.client.get("/_matrix/client/v3/account/whoami", headers=alice.auth)
    assert resp.status == 200


async def test_refusals(hs: HomeserverHarness) -> None:
    admin = await make_user(hs, "admin")
    await hs.server.stores.accounts.set_admin(admin.user_id, True)
    other_admin = await make_user(hs, "admin2")
    await hs.server.stores.accounts.set_admin(other_admin.user_id, True)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    cases = [
        (alice, "PUT", f"/suspend/{bob.user_id}", {"suspended": True}, 403, "M_FORBIDDEN"),
        (alice, "GET", "/lock/@nobody:test.local", None, 403, "M_FORBIDDEN"),
        (None, "GET", f"/lock/{bob.user_id}", None, 401, "M_MISSING_TOKEN"),
        (admin, "PUT", f"/suspend/{admin.user_id}", {"suspended": True}, 403, "M_FORBIDDEN"),
        (admin, "PUT", f"/lock/{other_admin.user_id}", {"locked": True}, 403, "M_FORBIDDEN"),
        (admin, "GET", "/suspend/@bob:elsewhere.example", None, 400, "M_INVALID_PARAM"),
        (admin, "GET", "/suspend/nonsense", None, 400, "M_INVALID_PARAM"),
        (admin, "GET", "/lock/@nobody:test.local", None, 404, "M_NOT_FOUND"),
        (admin, "PUT", f"/lock/{bob.user_id}", {"locked": "yes"}, 400, "M_BAD_JSON"),
        (admin, "PUT", f"/lock/{bob.user_id}", {}, 400, "M_MISSING_PARAM"),
    ]
    for user, method, path, body, status, errcode in cases:
        got = await call(hs, user, method, path, body)
        assert (got[0], got[1].get("errcode")) == (status, errcode), (method, path, got)
    # nothing changed
    assert await call(hs, admin, "GET", f"/suspend/{bob.user_id}") == (200, {"suspended": False})
    assert await call(hs, admin, "GET", f"/lock/{other_admin.user_id}") == (200, {"locked": False})
    await alice.request(
        "POST",
        "/account/deactivate",
        {
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "correct horse",
            }
        },
    )
    assert (await call(hs, admin, "GET", f"/suspend/{alice.user_id}"))[0] == 404
