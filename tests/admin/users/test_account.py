"""Query, create or modify an account; reset password; admin flag; username check."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.admin.users.helpers import V1, V2, admin_and_user, call, error_of, user_path
from tests.conftest import HomeserverHarness

USER = "@user:test.local"
NEW = "@newbie:test.local"


async def login(hs: HomeserverHarness, user: str, password: str) -> int:
    response = await hs.client.post(
        "/_matrix/client/v3/login",
        json={"type": "m.login.password", "user": user, "password": password},
    )
    return response.status


async def test_query_account(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    status, body = await call(hs, "GET", user_path(V2, USER), admin)
    assert status == 200
    assert body["name"] == USER
    assert body["displayname"] == "user"
    assert body["admin"] is False and body["deactivated"] is False and body["erased"] is False
    assert body["threepids"] == [] and body["external_ids"] == []
    assert body["creation_ts"] == hs.clock.time_ms() // 1000
    assert body["last_seen_ts"] is not None
    for key in ("consent_server_notice_sent", "consent_version", "consent_ts", "appservice_id"):
        assert body[key] is None
    assert body["user_type"] is None and body["locked"] is False
    assert body["shadow_banned"] is False and body["is_guest"] is False


async def test_create_account_then_log_in(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    hs.clock.advance(5)
    status, body = await call(
        hs,
        "PUT",
        user_path(V2, NEW),
        admin,
        {
            "password": "s3cret",
            "displayname": "New Bie",
            "avatar_url": "mxc://test.local/abc",
            "admin": True,
            "user_type": "bot",
            "threepids": [{"medium": "email", "address": "new@example.org"}],
            "external_ids": [{"auth_provider": "cas", "external_id": "nb"}],
        },
    )
    assert status == 201, body
    assert body["name"] == NEW
    assert body["displayname"] == "New Bie"
    assert body["avatar_url"] == "mxc://test.local/abc"
    assert body["admin"] is True and body["user_type"] == "bot"
    assert [(t["medium"], t["address"]) for t in body["threepids"]] == [
        ("email", "new@example.org")
    ]
    assert body["threepids"][0]["added_at"] == hs.clock.time_ms()
    assert body["external_ids"] == [{"auth_provider": "cas", "external_id": "nb"}]
    assert await login(hs, "newbie", "s3cret") == 200
    assert await hs.server.client.accounts.is_admin(NEW)


async def test_modify_account(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    status, body = await call(
        hs,
        "PUT",
        user_path(V2, USER),
        admin,
        {
            "displayname": "Renamed",
            "threepids": [
                {"medium": "email", "address": "a@example.org"},
                {"medium": "msisdn", "address": "447000000000"},
            ],
        },
    )
    assert status == 200, body
    assert body["displayname"] == "Renamed"
    assert len(body["threepids"]) == 2
    # the profile seen by clients changed too
    profile = await hs.client.get(f"/_matrix/client/v3/profile/{quote(USER)}")
    assert (await profile.json())["displayname"] == "Renamed"
    # threepids are replaced as a whole; an empty display name removes it
    status, body = await call(
        hs,
        "PUT",
        user_path(V2, USER),
        admin,
        {"displayname": "", "threepids": [{"medium": "email", "address": "b@example.org"}]},
    )
    assert status == 200
    assert body["displayname"] is None
    assert [t["address"] for t in body["threepids"]] == ["b@example.org"]
    # a new password logs the devices out unless told not to
    status, _ = await call(
        hs, "PUT", user_path(V2, USER), admin, {"password": "other", "logout_devices": False}
    )
    assert status == 200
    assert (await call(hs, "GET", "/_matrix/client/v3/account/whoami", user))[0] == 200
    assert await login(hs, "user", "other") == 200
    status, _ = await call(hs, "PUT", user_path(V2, USER), admin, {"password": "third"})
    assert status == 200
    assert await error_of(hs, "GET", "/_matrix/client/v3/account/whoami", user) == (
        401,
        "M_UNKNOWN_TOKEN",
    )
    assert await login(hs, "user", "other") == 403
    assert await login(hs, "user", "third") == 200


async def test_deactivate_and_reactivate_through_put(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    status, body = await call(hs, "PUT", user_path(V2, USER), admin, {"deactivated": True})
    assert status == 200 and body["deactivated"] is True
    assert await error_of(hs, "GET", "/_matrix/client/v3/account/whoami", user) == (
        401,
        "M_UNKNOWN_TOKEN",
    )
    assert await login(hs, "user", "correct horse") == 403
    status, body = await call(
        hs, "PUT", user_path(V2, USER), admin, {"deactivated": False, "password": "back"}
    )
    assert status == 200 and body["deactivated"] is False
    assert await login(hs, "user", "back") == 200


async def test_locked_account_tokens_are_refused(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    status, body = await call(hs, "PUT", user_path(V2, USER), admin, {"locked": True})
    assert status == 200 and body["locked"] is True
    status, payload = await call(hs, "GET", "/_matrix/client/v3/account/whoami", user)
    assert (status, payload["errcode"], payload["soft_logout"]) == (401, "M_USER_LOCKED", True)
    status, _ = await call(hs, "PUT", user_path(V2, USER), admin, {"locked": False})
    assert (await call(hs, "GET", "/_matrix/client/v3/account/whoami", user))[0] == 200


async def test_external_id_of_another_user_is_a_conflict(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    ids = {"external_ids": [{"auth_provider": "cas", "external_id": "shared"}]}
    assert (await call(hs, "PUT", user_path(V2, "@admin:test.local"), admin, ids))[0] == 200
    status, _ = await call(hs, "PUT", user_path(V2, USER), admin, ids)
    assert status == 409
    status, body = await call(hs, "GET", user_path(V2, USER), admin)
    assert body["external_ids"] == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"admin": "yes"}, (400, "M_BAD_JSON")),
        ({"password": 12}, (400, "M_UNKNOWN")),
        ({"password": "x" * 513}, (400, "M_UNKNOWN")),
        ({"logout_devices": "no"}, (400, "M_UNKNOWN")),
        ({"deactivated": 1}, (400, "M_UNKNOWN")),
        ({"locked": "true"}, (400, "M_UNKNOWN")),
        ({"deactivated": True, "locked": True}, (400, "M_UNKNOWN")),
        ({"user_type": "wizard"}, (400, "M_UNKNOWN")),
        ({"threepids": [{"medium": "email"}]}, (400, "M_MISSING_PARAM")),
        ({"threepids": "a@example.org"}, (400, "M_BAD_JSON")),
        ({"external_ids": [{"auth_provider": "cas"}]}, (400, "M_MISSING_PARAM")),
        ({"displayname": 5}, (400, "M_BAD_JSON")),
        ({"avatar_url": "https://example.org/a.png"}, (400, "M_BAD_JSON")),
    ],
)
async def test_bad_bodies_change_nothing(
    hs: HomeserverHarness, body: dict[str, object], expected: tuple[int, str]
) -> None:
    admin, user = await admin_and_user(hs)
    _, before = await call(hs, "GET", user_path(V2, USER), admin)
    assert await error_of(hs, "PUT", user_path(V2, USER), admin, body) == expected
    _, after = await call(hs, "GET", user_path(V2, USER), admin)
    assert after == before
    assert (await call(hs, "GET", "/_matrix/client/v3/account/whoami", user))[0] == 200
    # nor is an account created from a bad body
    assert await error_of(hs, "PUT", user_path(V2, NEW), admin, body) == expected
    assert await hs.server.stores.accounts.get_user(NEW) is None


async def test_put_not_json(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    response = await hs.client.put(
        user_path(V2, NEW), data=b"{nope", headers={"Authorization": f"Bearer {admin}"}
    )
    assert response.status == 400
    assert (await response.json())["errcode"] == "M_NOT_JSON"
    assert await hs.server.stores.accounts.get_user(NEW) is None


async def test_an_admin_may_not_demote_themselves(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    me = "@admin:test.local"
    status, payload = await call(hs, "PUT", user_path(V2, me), admin, {"admin": False})
    assert (status, payload["error"]) == (400, "You may not demote yourself.")
    status, payload = await call(hs, "PUT", user_path(V1, me, "/admin"), admin, {"admin": False})
    assert (status, payload["error"]) == (400, "You may not demote yourself.")
    assert await hs.server.client.accounts.is_admin(me)


async def test_admin_flag(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    assert await call(hs, "GET", user_path(V1, USER, "/admin"), admin) == (200, {"admin": False})
    assert await call(hs, "PUT", user_path(V1, USER, "/admin"), admin, {"admin": True}) == (200, {})
    assert await call(hs, "GET", user_path(V1, USER, "/admin"), admin) == (200, {"admin": True})
    assert (await call(hs, "GET", f"{V2}/users", user))[0] == 200
    assert await error_of(hs, "PUT", user_path(V1, USER, "/admin"), admin, {}) == (
        400,
        "M_MISSING_PARAM",
    )
    assert await error_of(hs, "PUT", user_path(V1, USER, "/admin"), admin, {"admin": 1}) == (
        400,
        "M_BAD_JSON",
    )
    assert await hs.server.client.accounts.is_admin(USER)


async def test_reset_password(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    path = f"{V1}/reset_password/{quote(USER)}"
    assert await error_of(hs, "POST", path, admin, {}) == (400, "M_MISSING_PARAM")
    assert await error_of(hs, "POST", path, admin, {"new_password": 3}) == (400, "M_BAD_JSON")
    assert await error_of(
        hs, "POST", path, admin, {"new_password": "n", "logout_devices": "x"}
    ) == (400, "M_BAD_JSON")
    assert await login(hs, "user", "correct horse") == 200
    status, body = await call(
        hs, "POST", path, admin, {"new_password": "fresh", "logout_devices": False}
    )
    assert (status, body) == (200, {})
    assert (await call(hs, "GET", "/_matrix/client/v3/account/whoami", user))[0] == 200
    assert await login(hs, "user", "fresh") == 200
    assert (await call(hs, "POST", path, admin, {"new_password": "fresher"}))[0] == 200
    assert await error_of(hs, "GET", "/_matrix/client/v3/account/whoami", user) == (
        401,
        "M_UNKNOWN_TOKEN",
    )
    assert await login(hs, "user", "fresh") == 403
    assert await login(hs, "user", "fresher") == 200
    assert await error_of(
        hs, "POST", f"{V1}/reset_password/{quote(NEW)}", admin, {"new_password": "x"}
    ) == (404, "M_NOT_FOUND")


async def test_username_available(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    path = f"{V1}/username_available"
    assert await call(hs, "GET", f"{path}?username=free", admin) == (200, {"available": True})
    assert await error_of(hs, "GET", f"{path}?username=user", admin) == (400, "M_USER_IN_USE")
    assert await error_of(hs, "GET", f"{path}?username=Bad!", admin) == (
        400,
        "M_INVALID_USERNAME",
    )
    assert await error_of(hs, "GET", path, admin) == (400, "M_MISSING_PARAM")
