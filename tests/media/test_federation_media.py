"""This server's side of the federation media endpoints: multipart/mixed answers."""

from __future__ import annotations

import io
from typing import Any

from aiohttp import MultipartReader, web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from federation.media import get_federation_media_download, get_federation_media_thumbnail
from tests.conftest import HomeserverHarness
from tests.media.helpers import png_bytes, upload, user_token


async def federation_client(hs: HomeserverHarness) -> TestClient[Any, Any]:
    """A bare app routing the federation media handlers with an already-verified origin."""
    media = hs.server.media

    async def download(request: web.Request) -> web.StreamResponse:
        return await get_federation_media_download(media, "remote.example", request)

    async def thumbnail(request: web.Request) -> web.StreamResponse:
        return await get_federation_media_thumbnail(media, "remote.example", request)

    app = web.Application(middlewares=hs.server.make_app(set()).middlewares)
    app.router.add_get("/_matrix/federation/v1/media/download/{mediaId}", download)
    app.router.add_get("/_matrix/federation/v1/media/thumbnail/{mediaId}", thumbnail)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def read_parts(response: Any) -> list[tuple[dict[str, str], bytes]]:
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=")
    reader = MultipartReader(response.headers, response.content)
    parts = []
    while (part := await reader.next()) is not None:
        parts.append((dict(part.headers), await part.read()))  # type: ignore[union-attr]
    return parts


async def test_download_is_two_parts_json_then_bytes(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    data = png_bytes(30, 30)
    media_id = await upload(hs, token, data, "image/png", "pic.png")
    client = await federation_client(hs)
    try:
        response = await client.get(f"/_matrix/federation/v1/media/download/{media_id}")
        assert response.status == 200
        (meta_headers, meta), (file_headers, body) = await read_parts(response)
        assert meta_headers["Content-Type"] == "application/json"
        assert meta == b"{}"
        assert file_headers["Content-Type"] == "image/png"
        assert file_headers["Content-Disposition"] == 'inline; filename="pic.png"'
        assert body == data
    finally:
        await client.close()


async def test_thumbnail_is_two_parts(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, png_bytes(300, 300), "image/png")
    client = await federation_client(hs)
    try:
        response = await client.get(
            f"/_matrix/federation/v1/media/thumbnail/{media_id}?width=32&height=32&method=crop"
        )
        assert response.status == 200
        (_, meta), (file_headers, body) = await read_parts(response)
        assert meta == b"{}"
        assert file_headers["Content-Type"] == "image/png"
        assert file_headers["Content-Disposition"].startswith("inline")
        assert Image.open(io.BytesIO(body)).size == (32, 32)
    finally:
        await client.close()


async def test_unknown_or_quarantined_media_is_404(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, b"secret", "text/plain")
    await hs.server.media.set_quarantined("test.local", media_id, True)
    client = await federation_client(hs)
    try:
        for path in (f"download/{media_id}", "download/nope", "download/..%2F.."):
            response = await client.get(f"/_matrix/federation/v1/media/{path}")
            assert response.status == 404
            assert (await response.json())["errcode"] == "M_NOT_FOUND"
    finally:
        await client.close()
