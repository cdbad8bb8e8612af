"""GET /_synapse/admin/v2/users and v3: filters, orders, paging."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.admin.users.helpers import V1, V2, auth, call, error_of, make_admin
from tests.conftest import HarnessFactory, HomeserverHarness


@pytest.fixture
async def hs(make_homeserver: HarnessFactory) -> HomeserverHarness:
    return await make_homeserver(allow_guest_access=True)


async def names(hs: HomeserverHarness, token: str, query: str = "", version: str = V2) -> list[str]:
    status, body = await call(hs, "GET", f"{version}/users{query}", token)
    assert status == 200, body
    return [u["name"] for u in body["users"]]


async def setup_users(hs: HomeserverHarness) -> str:
    admin = await make_admin(hs)  # @admin, created first
    for localpart in ("carol", "bob", "dave"):
        hs.clock.advance(1)
        await hs.register(localpart)
    guest = await hs.client.post("/_matrix/client/v3/register?kind=guest", json={})
    assert guest.status == 200
    await call(hs, "POST", f"{V1}/deactivate/{quote('@dave:test.local')}", admin, {})
    token = await hs.client.post(
        "/_matrix/client/v3/login",
        json={"type": "m.login.password", "user": "bob", "password": "correct horse"},
    )
    assert token.status == 200
    return admin


async def test_listing_shape_and_default_filters(hs: HomeserverHarness) -> None:
    admin = await setup_users(hs)
    status, body = await call(hs, "GET", f"{V2}/users?guests=false", admin)
    assert status == 200
    assert body["total"] == 3
    assert "next_token" not in body
    assert [u["name"] for u in body["users"]] == [
        "@admin:test.local",
        "@bob:test.local",
        "@carol:test.local",
    ]
    bob = body["users"][1]
    assert set(bob) == {
        "name",
        "is_guest",
        "admin",
        "user_type",
        "deactivated",
        "erased",
        "shadow_banned",
        "displayname",
        "avatar_url",
        "creation_ts",
        "last_seen_ts",
        "locked",
    }
    assert bob["displayname"] == "bob"
    assert bob["admin"] is False and bob["deactivated"] is False and bob["is_guest"] is False
    assert body["users"][0]["admin"] is True
    # guests are included by default, deactivated users only when asked
    everyone = await names(hs, admin)
    assert len(everyone) == 4 and "@dave:test.local" not in everyone
    assert "@dave:test.local" in await names(hs, admin, "?deactivated=true")


async def test_v3_deactivated_is_a_tri_state(hs: HomeserverHarness) -> None:
    admin = await setup_users(hs)
    v3 = "/_synapse/admin/v3"
    assert await names(hs, admin, "?deactivated=true&guests=false", v3) == ["@dave:test.local"]
    assert "@dave:test.local" not in await names(hs, admin, "?deactivated=false", v3)
    assert len(await names(hs, admin, "?guests=false", v3)) == 4


async def test_name_user_id_and_admin_filters(hs: HomeserverHarness) -> None:
    admin = await setup_users(hs)
    await call(hs, "PUT", f"{V2}/users/{quote('@carol:test.local')}", admin, {"displayname": "Zed"})
    assert await names(hs, admin, "?name=zE") == ["@carol:test.local"]
    assert await names(hs, admin, "?name=bo") == ["@bob:test.local"]
    # the server name is not searched by name, it is by user_id
    assert await names(hs, admin, "?name=test.local") == []
    assert await names(hs, admin, "?user_id=b%3Atest") == ["@bob:test.local"]
    assert await names(hs, admin, "?admins=true") == ["@admin:test.local"]
    assert "@admin:test.local" not in await names(hs, admin, "?admins=false")
    # LIKE wildcards in the search are taken literally
    assert await names(hs, admin, "?user_id=%25") == []


async def test_orders_and_direction(hs: HomeserverHarness) -> None:
    admin = await setup_users(hs)
    query = "?guests=false"
    assert await names(hs, admin, query + "&dir=b") == [
        "@carol:test.local",
        "@bob:test.local",
        "@admin:test.local",
    ]
    assert await names(hs, admin, query + "&order_by=creation_ts") == [
        "@admin:test.local",
        "@carol:test.local",
        "@bob:test.local",
    ]
    assert (await names(hs, admin, query + "&order_by=admin&dir=b"))[0] == "@admin:test.local"
    # bob logged in: he was seen, the others' devices were too (registration)
    status, body = await call(hs, "GET", f"{V2}/users{query}&order_by=last_seen_ts", admin)
    assert status == 200 and body["total"] == 3
    for order in (
        "name",
        "is_guest",
        "admin",
        "user_type",
        "deactivated",
        "shadow_banned",
        "displayname",
        "avatar_url",
        "creation_ts",
        "last_seen_ts",
        "locked",
    ):
        for direction in ("f", "b"):
            status, body = await call(
                hs, "GET", f"{V2}/users?order_by={order}&dir={direction}", admin
            )
            assert status == 200 and body["total"] == 4, (order, body)


async def test_paging(hs: HomeserverHarness) -> None:
    admin = await setup_users(hs)
    status, first = await call(hs, "GET", f"{V2}/users?guests=false&limit=2", admin)
    assert status == 200
    assert first["total"] == 3 and first["next_token"] == "2"
    assert [u["name"] for u in first["users"]] == ["@admin:test.local", "@bob:test.local"]
    status, second = await call(hs, "GET", f"{V2}/users?guests=false&limit=2&from=2", admin)
    assert [u["name"] for u in second["users"]] == ["@carol:test.local"]
    assert "next_token" not in second


async def test_bad_listing_parameters(hs: HomeserverHarness) -> None:
    admin = await setup_users(hs)
    for query in ("from=-1", "limit=-5", "limit=x", "order_by=password", "dir=up", "guests=maybe"):
        assert await error_of(hs, "GET", f"{V2}/users?{query}", admin) == (
            400,
            "M_INVALID_PARAM",
        ), query


async def test_locked_and_typed_users(hs: HomeserverHarness) -> None:
    admin = await setup_users(hs)
    carol = quote("@carol:test.local")
    assert (await call(hs, "PUT", f"{V2}/users/{carol}", admin, {"locked": True}))[0] == 200
    bob = quote("@bob:test.local")
    assert (await call(hs, "PUT", f"{V2}/users/{bob}", admin, {"user_type": "bot"}))[0] == 200
    listed = await names(hs, admin, "?guests=false")
    assert "@carol:test.local" not in listed
    assert "@carol:test.local" in await names(hs, admin, "?guests=false&locked=true")
    assert await names(hs, admin, "?guests=false&not_user_type=bot") == ["@admin:test.local"]
    assert await names(hs, admin, "?guests=false&not_user_type=") == ["@bob:test.local"]
    headers = auth(admin)
    response = await hs.client.get(
        f"{V2}/users?guests=false&order_by=user_type&dir=b", headers=headers
    )
    assert (await response.json())["users"][0]["name"] == "@bob:test.local"
