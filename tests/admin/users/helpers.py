"""Helpers of the user admin API tests: an admin and a user, requests, errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import HomeserverHarness

V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_path(version: str, user_id: str, tail: str = "") -> str:
    """``/_synapse/admin/{version}/users/{userId}{tail}`` with the user ID escaped."""
    return f"{version}/users/{quote(user_id)}{tail}"


async def make_admin(hs: HomeserverHarness, localpart: str = "admin") -> str:
    token = (await hs.register(localpart))["access_token"]
    await hs.server.stores.accounts.set_admin(f"@{localpart}:test.local", True)
    return str(token)


async def admin_and_user(hs: HomeserverHarness) -> tuple[str, str]:
    admin = await make_admin(hs)
    user = (await hs.register("user"))["access_token"]
    return admin, str(user)


async def call(
    hs: HomeserverHarness, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = auth(token) if token is not None else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    response = await hs.client.request(method, path, **kwargs)
    return response.status, await response.json()


async def error_of(
    hs: HomeserverHarness, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, str]:
    status, payload = await call(hs, method, path, token, body)
    return status, str(payload.get("errcode"))


async def count(hs: HomeserverHarness, table: str, user_id: str) -> int:
    value = await hs.server.db.fetchval(
        "test_count", f"SELECT COUNT(*) FROM {table} WHERE user_id = $1", user_id
    )
    return int(value or 0)
