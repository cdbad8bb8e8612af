"""Media of one server downloaded (and thumbnailed) through another over federation."""

from __future__ import annotations

import io

from PIL import Image

from tests.federation.servers import ServerFactory, stop_listening
from tests.rooms.helpers import make_user


def png_bytes(width: int = 300, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(out, "PNG")
    return out.getvalue()


async def test_remote_media_download_is_byte_exact_and_cached(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    data = png_bytes()
    upload = await a.harness.client.post(
        "/_matrix/media/v3/upload?filename=cat.png",
        data=data,
        headers={**alice.auth, "Content-Type": "image/png"},
    )
    assert upload.status == 200, await upload.text()
    mxc = (await upload.json())["content_uri"]
    server_name, media_id = mxc.removeprefix("mxc://").split("/")
    url = f"/_matrix/client/v1/media/download/{server_name}/{media_id}"
    first = await b.harness.client.get(url, headers=bob.auth)
    assert first.status == 200, await first.text()
    assert await first.read() == data
    assert first.headers["Content-Type"] == "image/png"
    # Served from b's cache afterwards, even with a down.
    await stop_listening(a)
    again = await b.harness.client.get(url, headers=bob.auth)
    assert again.status == 200 and await again.read() == data
    thumb = await b.harness.client.get(
        f"/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}?width=96&height=96&method=crop",
        headers=bob.auth,
    )
    assert thumb.status == 200
    assert Image.open(io.BytesIO(await thumb.read())).size == (96, 96)


async def test_unknown_remote_media_is_404(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    bob = await make_user(b.harness, "bob")
    resp = await b.harness.client.get(
        f"/_matrix/client/v1/media/download/{a.server_name}/doesnotexist", headers=bob.auth
    )
    assert resp.status == 404
    assert (await resp.json())["errcode"] == "M_NOT_FOUND"


async def test_remote_media_quarantined_before_it_is_cached_is_never_served(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    admin = await make_user(b.harness, "admin")
    await b.server.stores.accounts.set_admin(admin.user_id, True)
    data = png_bytes()
    upload = await a.harness.client.post(
        "/_matrix/media/v3/upload",
        data=data,
        headers={**alice.auth, "Content-Type": "image/png"},
    )
    media_id = (await upload.json())["content_uri"].rsplit("/", 1)[1]
    quarantine = f"/_synapse/admin/v1/media/quarantine/{a.server_name}/{media_id}"
    response = await b.harness.client.post(quarantine, headers=admin.auth)
    assert response.status == 200
    url = f"/_matrix/client/v1/media/download/{a.server_name}/{media_id}"
    thumb = f"/_matrix/client/v1/media/thumbnail/{a.server_name}/{media_id}?width=32&height=32"
    for path in (url, thumb):
        response = await b.harness.client.get(path, headers=bob.auth)
        assert response.status == 404
        assert (await response.json())["errcode"] == "M_NOT_FOUND"
    record = await b.server.stores.media.get_media(a.server_name, media_id)
    assert record is not None and record.quarantined and not record.uploaded  # never fetched
    # a's own users are not affected; released on b, it is fetched and served.
    response = await a.harness.client.get(url, headers=alice.auth)
    assert await response.read() == data
    release = f"/_synapse/admin/v1/media/unquarantine/{a.server_name}/{media_id}"
    assert (await b.harness.client.post(release, headers=admin.auth)).status == 200
    response = await b.harness.client.get(url, headers=bob.auth)
    assert response.status == 200 and await response.read() == data
