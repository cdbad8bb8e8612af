"""Helpers of the moderation admin tests: an admin and a user, rooms and messages
through the client API, and error checks."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness

ADMIN = "/_synapse/admin/v1"
CLIENT = "/_matrix/client/v3"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def admin_and_user(hs: HomeserverHarness) -> tuple[str, str]:
    """Register ``@admin`` (made a server admin) and ``@user``; their access tokens."""
    admin = (await hs.register("admin"))["access_token"]
    await hs.server.stores.accounts.set_admin("@admin:test.local", True)
    user = (await hs.register("user"))["access_token"]
    return str(admin), str(user)


async def create_room(hs: HomeserverHarness, token: str, **body: Any) -> str:
    response = await hs.client.post(f"{CLIENT}/createRoom", json=body, headers=auth(token))
    assert response.status == 200, await response.text()
    return str((await response.json())["room_id"])


async def join(hs: HomeserverHarness, token: str, room_id: str) -> None:
    response = await hs.client.post(f"{CLIENT}/rooms/{room_id}/join", json={}, headers=auth(token))
    assert response.status == 200, await response.text()


async def send(hs: HomeserverHarness, token: str, room_id: str, content: dict[str, Any]) -> str:
    response = await hs.client.post(
        f"{CLIENT}/rooms/{room_id}/send/m.room.message", json=content, headers=auth(token)
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["event_id"])


async def expect_error(response: Any, status: int, errcode: str) -> None:
    body = await response.json()
    assert (response.status, body.get("errcode")) == (status, errcode), body


async def check_admin_only(
    hs: HomeserverHarness, user_token: str, method: str, path: str, **kwargs: Any
) -> None:
    """A non-admin gets 403 M_FORBIDDEN, a request without a token 401 M_MISSING_TOKEN."""
    response = await hs.client.request(method, path, headers=auth(user_token), **kwargs)
    await expect_error(response, 403, "M_FORBIDDEN")
    response = await hs.client.request(method, path, **kwargs)
    await expect_error(response, 401, "M_MISSING_TOKEN")
