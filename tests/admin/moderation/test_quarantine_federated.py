"""Room quarantine seen from both sides of federation (the scenario of SyTest's
51media/48admin-quarantine.pl): the quarantining server answers 404 to its own
users and to other servers; another server's admin quarantines its cached copies."""

from __future__ import annotations

from tests.admin.moderation.helpers import ADMIN
from tests.federation.rooms import settle, share_room
from tests.federation.servers import FederatingServer, ServerFactory
from tests.media.helpers import png_bytes
from tests.rooms.helpers import User, make_user


async def upload_image(server: FederatingServer, user: User, data: bytes) -> str:
    response = await server.harness.client.post(
        "/_matrix/media/v3/upload", data=data, headers={**user.auth, "Content-Type": "image/png"}
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["content_uri"])


async def status_of(server: FederatingServer, user: User, mxc: str, thumbnail: bool) -> int:
    origin, media_id = mxc.removeprefix("mxc://").split("/")
    kind = "thumbnail" if thumbnail else "download"
    query = "?width=32&height=32&method=scale" if thumbnail else ""
    response = await server.harness.client.get(
        f"/_matrix/client/v1/media/{kind}/{origin}/{media_id}{query}", headers=user.auth
    )
    await response.read()
    return response.status


async def make_admin(server: FederatingServer) -> User:
    admin = await make_user(server.harness, "admin")
    await server.server.stores.accounts.set_admin(admin.user_id, True)
    return admin


async def test_room_quarantine_across_servers(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    fresh = await upload_image(a, alice, png_bytes(64, 64))
    cached = await upload_image(a, alice, png_bytes(48, 48, (0, 90, 0)))
    for mxc in (fresh, cached):
        await alice.request(
            "POST",
            f"/rooms/{room_id}/send/m.room.message",
            {"msgtype": "m.image", "body": "test.png", "url": mxc},
        )
    await settle(a, b)
    assert await status_of(b, bob, cached, thumbnail=False) == 200  # now in b's cache

    a_admin = await make_admin(a)
    response = await a.harness.client.post(
        f"{ADMIN}/room/{room_id}/media/quarantine", json={}, headers=a_admin.auth
    )
    assert await response.json() == {"num_quarantined": 2}
    for thumbnail in (False, True):
        assert await status_of(a, alice, fresh, thumbnail) == 404
        assert await status_of(b, bob, fresh, thumbnail) == 404  # a refuses b too
    # b's copy is b's business: served until b's admin quarantines the room there
    assert await status_of(b, bob, cached, thumbnail=False) == 200
    b_admin = await make_admin(b)
    response = await b.harness.client.get(f"{ADMIN}/room/{room_id}/media", headers=b_admin.auth)
    assert await response.json() == {"local": [], "remote": [fresh, cached]}
    response = await b.harness.client.post(
        f"{ADMIN}/room/{room_id}/media/quarantine", json={}, headers=b_admin.auth
    )
    assert await response.json() == {"num_quarantined": 2}
    assert await status_of(b, bob, cached, thumbnail=False) == 404
    assert await status_of(b, bob, cached, thumbnail=True) == 404
