"""Room aliases in an application service's namespace, and the alias and user queries
the server makes to the service before it answers "not found"."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from tests.appservice.conftest import FakeAppService, as_headers
from tests.conftest import HomeserverHarness

ALIAS = "#_bridge_portal:test.local"


def auth(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


def decoded(service: FakeAppService) -> list[tuple[str, str]]:
    return [(method, unquote(path)) for method, path in service.requests]


def alias_path(alias: str) -> str:
    return f"/_matrix/client/v3/directory/room/{quote(alias)}"


async def make_room(hs: HomeserverHarness, user: dict[str, Any]) -> str:
    resp = await hs.client.post("/_matrix/client/v3/createRoom", json={}, headers=auth(user))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["room_id"])


async def test_user_cannot_take_an_exclusive_alias(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await make_room(as_hs, alice)
    resp = await as_hs.client.put(alias_path(ALIAS), json={"room_id": room_id}, headers=auth(alice))
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_EXCLUSIVE"
    assert await as_hs.server.stores.rooms.get_alias(ALIAS) is None


async def test_user_may_take_other_aliases(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await make_room(as_hs, alice)
    resp = await as_hs.client.put(
        alias_path("#plain:test.local"), json={"room_id": room_id}, headers=auth(alice)
    )
    assert resp.status == 200, await resp.text()


async def test_service_makes_and_deletes_its_aliases_without_membership(
    as_hs: HomeserverHarness,
) -> None:
    alice = await as_hs.register("alice")
    room_id = await make_room(as_hs, alice)
    resp = await as_hs.client.put(
        alias_path(ALIAS), json={"room_id": room_id}, headers=as_headers()
    )
    assert resp.status == 200, await resp.text()
    resp = await as_hs.client.get(alias_path(ALIAS), headers=as_headers())
    assert resp.status == 200
    assert (await resp.json())["room_id"] == room_id
    # the owner cannot delete an alias the service holds exclusively ...
    resp = await as_hs.client.delete(alias_path(ALIAS), headers=auth(alice))
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_EXCLUSIVE"
    # ... the service can
    resp = await as_hs.client.delete(alias_path(ALIAS), headers=as_headers())
    assert resp.status == 200, await resp.text()
    assert await as_hs.server.stores.rooms.get_alias(ALIAS) is None
    resp = await as_hs.client.delete(alias_path(ALIAS), headers=as_headers())
    assert resp.status == 404


async def test_service_cannot_make_aliases_outside_its_namespace(
    as_hs: HomeserverHarness,
) -> None:
    alice = await as_hs.register("alice")
    room_id = await make_room(as_hs, alice)
    resp = await as_hs.client.put(
        alias_path("#other:test.local"), json={"room_id": room_id}, headers=as_headers()
    )
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_EXCLUSIVE"
    assert await as_hs.server.stores.rooms.get_alias("#other:test.local") is None
    await as_hs.client.put(
        alias_path("#mine:test.local"), json={"room_id": room_id}, headers=auth(alice)
    )
    resp = await as_hs.client.delete(alias_path("#mine:test.local"), headers=as_headers())
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_EXCLUSIVE"
    assert await as_hs.server.stores.rooms.get_alias("#mine:test.local") is not None


async def test_service_alias_bad_inputs(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    await make_room(as_hs, alice)
    for body, status, errcode in (
        ({"room_id": "not-a-room"}, 400, "M_INVALID_PARAM"),
        ({"room_id": "!unknown:test.local"}, 404, "M_NOT_FOUND"),
        ({}, 400, "M_MISSING_PARAM"),
    ):
        resp = await as_hs.client.put(alias_path(ALIAS), json=body, headers=as_headers())
        assert resp.status == status, (body, await resp.text())
        assert (await resp.json())["errcode"] == errcode
    resp = await as_hs.client.put(
        alias_path("#_bridge_x:elsewhere.example"),
        json={"room_id": "!r:test.local"},
        headers=as_headers(),
    )
    assert resp.status == 400
    assert await as_hs.server.stores.rooms.get_alias(ALIAS) is None


async def test_unknown_alias_asks_the_service(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await as_hs.register("alice")
    room_id = await make_room(as_hs, alice)

    async def create(alias: str) -> None:
        resp = await as_hs.client.put(
            alias_path(alias), json={"room_id": room_id}, headers=as_headers()
        )
        assert resp.status == 200
        service.known_aliases.add(alias)

    service.on_alias_query = create
    resp = await as_hs.client.get(alias_path(ALIAS), headers=auth(alice))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["room_id"] == room_id
    assert ("GET", f"/_matrix/app/v1/rooms/{ALIAS}") in decoded(service)


async def test_join_by_unknown_alias_asks_the_service(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await as_hs.register("alice")
    bob = await as_hs.register("bob")
    resp = await as_hs.client.post(
        "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=auth(alice)
    )
    room_id = (await resp.json())["room_id"]

    async def create(alias: str) -> None:
        await as_hs.client.put(alias_path(alias), json={"room_id": room_id}, headers=as_headers())
        service.known_aliases.add(alias)

    service.on_alias_query = create
    resp = await as_hs.client.post(f"/_matrix/client/v3/join/{quote(ALIAS)}", headers=auth(bob))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["room_id"] == room_id


async def test_alias_the_service_does_not_know_is_not_found(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await as_hs.register("alice")
    resp = await as_hs.client.get(alias_path(ALIAS), headers=auth(alice))
    assert resp.status == 404
    assert (await resp.json())["errcode"] == "M_NOT_FOUND"
    assert len(service.requests) == 1
    # an alias in no namespace asks nobody
    resp = await as_hs.client.get(alias_path("#nobody:test.local"), headers=auth(alice))
    assert resp.status == 404
    assert len(service.requests) == 1


async def test_alias_query_with_the_service_down_is_not_found(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    service.down = True
    alice = await as_hs.register("alice")
    resp = await as_hs.client.get(alias_path(ALIAS), headers=auth(alice))
    assert resp.status == 404


async def test_federation_directory_query_asks_the_service(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await as_hs.register("alice")
    room_id = await make_room(as_hs, alice)

    async def create(alias: str) -> None:
        await as_hs.client.put(alias_path(alias), json={"room_id": room_id}, headers=as_headers())
        service.known_aliases.add(alias)

    service.on_alias_query = create
    directory = as_hs.server.client.directory
    found, _servers = await directory.resolve_alias(ALIAS)
    assert found == room_id


async def test_invite_of_unknown_namespace_user_asks_the_service(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await as_hs.register("alice")
    room_id = await make_room(as_hs, alice)
    ghost = "@_bridge_ghost:test.local"

    async def register(user_id: str) -> None:
        # as a bridge does: it registers the ghost, then answers yes
        made = await as_hs.client.post(
            "/_matrix/client/v3/register",
            json={
                "type": "m.login.application_service",
                "username": "_bridge_ghost",
                "inhibit_login": True,
            },
            headers=as_headers(),
        )
        assert made.status == 200, await made.text()
        service.known_users.add(user_id)

    service.on_user_query = register
    resp = await as_hs.client.post(
        f"/_matrix/client/v3/rooms/{room_id}/invite", json={"user_id": ghost}, headers=auth(alice)
    )
    assert resp.status == 200, await resp.text()
    assert ("GET", f"/_matrix/app/v1/users/{ghost}") in decoded(service)
    assert await as_hs.server.stores.accounts.get_user(ghost) is not None
    # a known user, and a user outside the namespace, ask nobody
    service.requests.clear()
    bob = await as_hs.register("bob")
    for user_id in (ghost, bob["user_id"]):
        await as_hs.client.post(
            f"/_matrix/client/v3/rooms/{room_id}/invite",
            json={"user_id": user_id},
            headers=auth(alice),
        )
    assert [r for r in service.requests if "/users/" in r[1]] == []
