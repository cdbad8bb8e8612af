"""Application service room directories: PUT/DELETE
/directory/list/appservice/{networkId}/{roomId}, and /publicRooms with
third_party_instance_id and include_all_networks."""

from __future__ import annotations

from typing import Any

from homeserver.rooms.directory import PublicRoomsQuery
from tests.appservice.conftest import as_headers
from tests.conftest import HomeserverHarness

V3 = "/_matrix/client/v3"
INSTANCE = "bridge|libera"


def auth(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


async def public_room(hs: HomeserverHarness, user: dict[str, Any]) -> str:
    resp = await hs.client.post(
        f"{V3}/createRoom", json={"preset": "public_chat"}, headers=auth(user)
    )
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["room_id"])


async def listed(hs: HomeserverHarness, user: dict[str, Any], **body: Any) -> set[str]:
    resp = await hs.client.post(f"{V3}/publicRooms", json=body, headers=auth(user))
    assert resp.status == 200, await resp.text()
    return {entry["room_id"] for entry in (await resp.json())["chunk"]}


async def test_service_lists_are_apart_from_the_main_list(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    resp = await as_hs.client.put(
        f"{V3}/directory/list/appservice/libera/{room_id}",
        json={"visibility": "public"},
        headers=as_headers(),
    )
    assert resp.status == 200, await resp.text()
    assert room_id not in await listed(as_hs, alice)
    assert room_id in await listed(as_hs, alice, third_party_instance_id=INSTANCE)
    assert room_id not in await listed(as_hs, alice, third_party_instance_id="bridge|oftc")
    assert room_id in await listed(as_hs, alice, include_all_networks=True)
    # GET form too
    resp = await as_hs.client.get(
        f"{V3}/publicRooms", params={"third_party_instance_id": INSTANCE}, headers=auth(alice)
    )
    assert room_id in {e["room_id"] for e in (await resp.json())["chunk"]}
    resp = await as_hs.client.get(
        f"{V3}/publicRooms", params={"include_all_networks": "true"}, headers=auth(alice)
    )
    assert room_id in {e["room_id"] for e in (await resp.json())["chunk"]}
    # also published in the main list: in both, and once in the full list
    resp = await as_hs.client.put(
        f"{V3}/directory/list/room/{room_id}", json={"visibility": "public"}, headers=auth(alice)
    )
    assert resp.status == 200
    assert room_id in await listed(as_hs, alice)
    resp = await as_hs.client.post(
        f"{V3}/publicRooms", json={"include_all_networks": True}, headers=auth(alice)
    )
    chunk = (await resp.json())["chunk"]
    assert [e["room_id"] for e in chunk].count(room_id) == 1
    # withdrawn from the service's list, still in the main one
    resp = await as_hs.client.delete(
        f"{V3}/directory/list/appservice/libera/{room_id}", headers=as_headers()
    )
    assert resp.status == 200
    assert room_id not in await listed(as_hs, alice, third_party_instance_id=INSTANCE)
    assert room_id in await listed(as_hs, alice)
    # private withdraws as DELETE does
    await as_hs.client.put(
        f"{V3}/directory/list/appservice/libera/{room_id}", json={}, headers=as_headers()
    )
    assert room_id in await listed(as_hs, alice, third_party_instance_id=INSTANCE)
    await as_hs.client.put(
        f"{V3}/directory/list/appservice/libera/{room_id}",
        json={"visibility": "private"},
        headers=as_headers(),
    )
    assert room_id not in await listed(as_hs, alice, third_party_instance_id=INSTANCE)


async def test_only_services_edit_their_lists(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    for method in ("PUT", "DELETE"):
        resp = await as_hs.client.request(
            method,
            f"{V3}/directory/list/appservice/libera/{room_id}",
            json={"visibility": "public"},
            headers=auth(alice),
        )
        assert resp.status == 403
        assert (await resp.json())["errcode"] == "M_FORBIDDEN"
    assert await as_hs.server.stores.rooms.appservice_public_room_ids() == []


async def test_list_bad_inputs(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    for path, body, status, errcode in (
        (f"libera/{room_id}", {"visibility": "shouting"}, 400, "M_INVALID_PARAM"),
        (f"libera/{room_id}", {"visibility": 1}, 400, "M_BAD_JSON"),
        ("libera/not-a-room", {"visibility": "public"}, 400, "M_INVALID_PARAM"),
        ("libera/!unknown:test.local", {"visibility": "public"}, 404, "M_NOT_FOUND"),
    ):
        resp = await as_hs.client.put(
            f"{V3}/directory/list/appservice/{path}", json=body, headers=as_headers()
        )
        assert resp.status == status, (path, body, await resp.text())
        assert (await resp.json())["errcode"] == errcode
    resp = await as_hs.client.put(
        f"{V3}/directory/list/appservice/libera/{room_id}", data=b"{", headers=as_headers()
    )
    assert resp.status == 400
    assert await as_hs.server.stores.rooms.appservice_public_room_ids() == []


async def test_public_rooms_bad_instance_ids(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    for body in (
        {"third_party_instance_id": "no-bar"},
        {"third_party_instance_id": "|libera"},
        {"third_party_instance_id": "bridge|"},
        {"third_party_instance_id": INSTANCE, "include_all_networks": True},
    ):
        resp = await as_hs.client.post(f"{V3}/publicRooms", json=body, headers=auth(alice))
        assert resp.status == 400, body
        assert (await resp.json())["errcode"] == "M_INVALID_PARAM"
    # an unknown service or network is an empty list
    assert await listed(as_hs, alice, third_party_instance_id="nobody|libera") == set()


async def test_federation_serves_the_service_lists(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    room_id = await public_room(as_hs, alice)
    await as_hs.client.put(
        f"{V3}/directory/list/appservice/libera/{room_id}", json={}, headers=as_headers()
    )
    directory = as_hs.server.client.directory
    rooms = await directory.local_public_rooms(PublicRoomsQuery(third_party_instance_id=INSTANCE))
    assert [e["room_id"] for e in rooms["chunk"]] == [room_id]
    rooms = await directory.local_public_rooms(PublicRoomsQuery())
    assert rooms["chunk"] == []
