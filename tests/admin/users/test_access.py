"""Every user admin endpoint: no token 401, a non-admin 403, a deactivated admin's
token no longer works, remote and unknown users get Synapse's errors."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.admin.users.helpers import V1, V2, admin_and_user, call, error_of, user_path
from tests.conftest import HomeserverHarness

USER = "@user:test.local"

ENDPOINTS = [
    ("GET", f"{V2}/users", None),
    ("GET", "/_synapse/admin/v3/users", None),
    ("GET", user_path(V2, USER), None),
    ("PUT", user_path(V2, USER), {"displayname": "x"}),
    ("POST", f"{V1}/deactivate/{quote(USER)}", {}),
    ("POST", f"{V1}/reset_password/{quote(USER)}", {"new_password": "pw"}),
    ("GET", f"{V1}/whois/{quote(USER)}", None),
    ("GET", user_path(V2, USER, "/devices"), None),
    ("POST", user_path(V2, USER, "/devices"), {"device_id": "NEW"}),
    ("GET", user_path(V2, USER, "/devices/D"), None),
    ("PUT", user_path(V2, USER, "/devices/D"), {"display_name": "x"}),
    ("DELETE", user_path(V2, USER, "/devices/D"), None),
    ("POST", user_path(V2, USER, "/delete_devices"), {"devices": []}),
    ("GET", user_path(V1, USER, "/joined_rooms"), None),
    ("GET", user_path(V1, USER, "/media"), None),
    ("DELETE", user_path(V1, USER, "/media"), None),
    ("POST", user_path(V1, USER, "/login"), {}),
    ("GET", user_path(V1, USER, "/accountdata"), None),
    ("GET", user_path(V1, USER, "/pushers"), None),
    ("GET", user_path(V1, USER, "/admin"), None),
    ("PUT", user_path(V1, USER, "/admin"), {"admin": True}),
    ("POST", user_path(V1, USER, "/shadow_ban"), None),
    ("DELETE", user_path(V1, USER, "/shadow_ban"), None),
    ("GET", user_path(V1, USER, "/override_ratelimit"), None),
    ("POST", user_path(V1, USER, "/override_ratelimit"), {}),
    ("DELETE", user_path(V1, USER, "/override_ratelimit"), None),
    ("GET", f"{V1}/username_available?username=free", None),
    ("PUT", f"{V1}/suspend/{quote(USER)}", {"suspend": True}),
    ("GET", user_path(V1, USER, "/memberships"), None),
    ("GET", f"{V1}/auth_providers/cas/users/someone", None),
    ("GET", f"{V1}/threepid/email/users/a%40example.org", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_needs_a_token_and_an_admin(
    hs: HomeserverHarness, method: str, path: str, body: object
) -> None:
    _, user = await admin_and_user(hs)
    await hs.register("other")
    other_path = path.replace(quote(USER), quote("@other:test.local"))
    assert await error_of(hs, method, other_path, None, body) == (401, "M_MISSING_TOKEN")
    assert await error_of(hs, method, other_path, user, body) == (403, "M_FORBIDDEN")
    record = await hs.server.stores.accounts.get_user("@other:test.local")
    assert record is not None and not record.is_admin and not record.deactivated


async def test_a_deactivated_admin_can_no_longer_use_the_api(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    second = (await hs.register("admin2"))["access_token"]
    await hs.server.stores.accounts.set_admin("@admin2:test.local", True)
    assert (await call(hs, "GET", f"{V2}/users", second))[0] == 200
    status, _ = await call(hs, "POST", f"{V1}/deactivate/{quote('@admin2:test.local')}", admin, {})
    assert status == 200
    assert await error_of(hs, "GET", f"{V2}/users", second) == (401, "M_UNKNOWN_TOKEN")


@pytest.mark.parametrize(
    ("method", "tail", "version", "body", "message"),
    [
        ("GET", "", V2, None, "Can only look up local users"),
        ("PUT", "", V2, {}, "This endpoint can only be used with local users"),
        ("POST", "/login", V1, {}, "Only local users can be logged in as"),
        ("POST", "/shadow_ban", V1, None, "Only local users can be shadow-banned"),
        ("POST", "/override_ratelimit", V1, {}, "Only local users can be ratelimited"),
        ("GET", "/devices", V2, None, "Can only look up local users"),
        ("GET", "/media", V1, None, "Can only look up local users"),
        ("GET", "/pushers", V1, None, "Can only look up local users"),
    ],
)
async def test_remote_users_are_refused(
    hs: HomeserverHarness, method: str, tail: str, version: str, body: object, message: str
) -> None:
    admin, _ = await admin_and_user(hs)
    status, payload = await call(
        hs, method, user_path(version, "@bob:elsewhere.example", tail), admin, body
    )
    assert status == 400
    assert payload["error"] == message
    assert await hs.server.stores.accounts.get_user("@bob:elsewhere.example") is None


async def test_remote_deactivate_whois_and_reset_are_refused(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    remote = quote("@bob:elsewhere.example")
    status, payload = await call(hs, "POST", f"{V1}/deactivate/{remote}", admin, {})
    assert (status, payload["error"]) == (400, "Can only deactivate local users")
    status, payload = await call(hs, "GET", f"{V1}/whois/{remote}", admin)
    assert (status, payload["error"]) == (400, "Can only whois a local user")
    status, _ = await call(
        hs, "POST", f"{V1}/reset_password/{remote}", admin, {"new_password": "x"}
    )
    assert status == 400


@pytest.mark.parametrize(
    ("method", "tail", "version", "body"),
    [
        ("GET", "", V2, None),
        ("GET", "/devices", V2, None),
        ("POST", "/devices", V2, {"device_id": "D"}),
        ("GET", "/media", V1, None),
        ("POST", "/login", V1, {}),
        ("GET", "/accountdata", V1, None),
        ("GET", "/pushers", V1, None),
        ("GET", "/admin", V1, None),
        ("POST", "/shadow_ban", V1, None),
        ("GET", "/override_ratelimit", V1, None),
    ],
)
async def test_unknown_users_are_not_found(
    hs: HomeserverHarness, method: str, tail: str, version: str, body: object
) -> None:
    admin, _ = await admin_and_user(hs)
    path = user_path(version, "@nobody:test.local", tail)
    assert await error_of(hs, method, path, admin, body) == (404, "M_NOT_FOUND")
    assert await hs.server.stores.accounts.get_user("@nobody:test.local") is None


async def test_unknown_user_deactivate_is_not_found(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    path = f"{V1}/deactivate/{quote('@nobody:test.local')}"
    assert await error_of(hs, "POST", path, admin, {}) == (404, "M_NOT_FOUND")


async def test_a_string_that_is_no_user_id_is_invalid(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    assert await error_of(hs, "GET", f"{V2}/users/nobody", admin) == (400, "M_INVALID_PARAM")
