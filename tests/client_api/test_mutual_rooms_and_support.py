"""GET /_matrix/client/v1/mutual_rooms and GET /.well-known/matrix/support."""

from __future__ import annotations

from client_api.versions import support_document
from homeserver.rooms import membership
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import make_user


async def test_mutual_rooms_lists_rooms_both_are_joined_to(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    shared = []
    for _ in range(3):
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        shared.append(room)
    left = await alice.create_room(preset="public_chat")
    await bob.join(left)
    await bob.leave(left)
    invited = await alice.create_room(preset="private_chat")
    await alice.invite(invited, bob.user_id)
    await carol.create_room(preset="public_chat")
    path = f"/_matrix/client/v1/mutual_rooms?user_id={bob.user_id}"
    resp = await hs.client.get(path, headers=alice.auth)
    body = await resp.json()
    assert resp.status == 200
    assert body == {"joined": sorted(shared), "count": 3}
    # nobody shares anything with a stranger, or with a user that does not exist
    for other in (carol.user_id, "@ghost:test.local"):
        resp = await hs.client.get(
            f"/_matrix/client/v1/mutual_rooms?user_id={other}", headers=alice.auth
        )
        assert await resp.json() == {"joined": [], "count": 0}


async def test_mutual_rooms_pages(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    shared = []
    for _ in range(5):
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        shared.append(room)
    service = hs.server.client.membership
    seen: list[str] = []
    token: str | None = None
    while True:
        page, count, token = await service.mutual_rooms(alice.user_id, bob.user_id, token, 2)
        assert count == 5
        seen += page
        if token is None:
            break
    assert seen == sorted(shared)
    assert membership.MUTUAL_ROOMS_PAGE == 100


async def test_mutual_rooms_bad_requests(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    base = "/_matrix/client/v1/mutual_rooms"
    for query, errcode in (
        ("", "M_MISSING_PARAM"),
        (f"?user_id={alice.user_id}", "M_INVALID_PARAM"),
        ("?user_id=bob", "M_INVALID_PARAM"),
        ("?user_id=@Bob:test.local", "M_INVALID_PARAM"),
        ("?user_id=@bob:test.local&from=x", "M_INVALID_PARAM"),
    ):
        resp = await hs.client.get(base + query, headers=alice.auth)
        assert resp.status == 400 and (await resp.json())["errcode"] == errcode, query
    resp = await hs.client.get(base + "?user_id=@bob:test.local")
    assert resp.status == 401


def test_support_document_from_admin_contact() -> None:
    assert support_document(None) is None
    assert support_document("mailto:admin@example.com") == {
        "contacts": [{"role": "m.role.admin", "email_address": "admin@example.com"}]
    }
    assert support_document("@admin:example.com") == {
        "contacts": [{"role": "m.role.admin", "matrix_id": "@admin:example.com"}]
    }
    assert support_document("https://example.com/help") == {
        "support_page": "https://example.com/help"
    }


async def test_support_well_known(make_homeserver: HarnessFactory) -> None:
    plain = await make_homeserver()
    resp = await plain.client.get("/.well-known/matrix/support")
    assert resp.status == 404 and (await resp.json())["errcode"] == "M_NOT_FOUND"
    hs = await make_homeserver(admin_contact="mailto:ops@test.local")
    resp = await hs.client.get("/.well-known/matrix/support")
    assert resp.status == 200
    assert (await resp.json())["contacts"][0]["email_address"] == "ops@test.local"
