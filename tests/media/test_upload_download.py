"""Upload and download through the HTTP API (client-server API: Content repository)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.media.helpers import (
    auth,
    download_path,
    error_of,
    jpeg_bytes,
    png_bytes,
    stored_blobs,
    upload,
    user_token,
)

CSP = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf;"
    " style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)


async def test_png_round_trip_is_byte_exact_with_headers(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    data = png_bytes(64, 48)
    media_id = await upload(hs, token, data, "image/png", "cat.png")
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert response.status == 200
    assert await response.read() == data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == 'inline; filename="cat.png"'
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "immutable" in response.headers["Cache-Control"]
    assert response.headers["ETag"]


async def test_jpeg_round_trip_is_byte_exact(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    data = jpeg_bytes(300, 200)
    media_id = await upload(hs, token, data, "image/jpeg")
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert response.status == 200
    assert await response.read() == data
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Content-Disposition"] == "inline"


async def test_20mb_binary_round_trip(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    data = os.urandom(20 * 1024 * 1024)
    media_id = await upload(hs, token, data, "application/x-binary", "blob.bin")
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert response.status == 200
    body = await response.read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert response.headers["Content-Disposition"] == 'attachment; filename="blob.bin"'
    (blob,) = stored_blobs(hs)
    assert blob.name == hashlib.sha256(data).hexdigest()[4:]
    assert blob.parent.name == hashlib.sha256(data).hexdigest()[2:4]


async def test_html_is_served_as_attachment(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, b"<script>alert(1)</script>", "text/html", "x.html")
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html"
    assert response.headers["Content-Disposition"] == 'attachment; filename="x.html"'
    assert response.headers["Content-Security-Policy"] == CSP


async def test_svg_is_served_as_attachment(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, b"<svg/>", "image/svg+xml")
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert response.headers["Content-Disposition"] == "attachment"


async def test_non_ascii_filename_is_rfc6266_encoded(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, b"hi", "text/plain", 'résumé "final".txt')
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert (
        response.headers["Content-Disposition"]
        == "inline; filename*=utf-8''r%C3%A9sum%C3%A9%20%22final%22.txt"
    )


async def test_download_with_file_name_override(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, b"data", "text/plain", "original.txt")
    response = await hs.client.get(
        download_path(media_id) + "/other%20name.txt", headers=auth(token)
    )
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'inline; filename="other name.txt"'


async def test_upload_without_filename_has_no_filename_in_disposition(
    hs: HomeserverHarness,
) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, b"{}", "application/json")
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert response.headers["Content-Disposition"] == "inline"


async def test_identical_uploads_share_one_file(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    data = png_bytes(10, 10)
    first = await upload(hs, token, data, "image/png", "a.png")
    second = await upload(hs, token, data, "image/png", "b.png")
    assert first != second
    assert len(stored_blobs(hs)) == 1
    for media_id, name in ((first, "a.png"), (second, "b.png")):
        response = await hs.client.get(download_path(media_id), headers=auth(token))
        assert await response.read() == data
        assert name in response.headers["Content-Disposition"]


async def test_upload_over_the_limit_by_content_length_is_413(
    make_homeserver: HarnessFactory,
) -> None:
    hs: HomeserverHarness = await make_homeserver(max_upload_size=1000)
    token = await user_token(hs)
    response = await hs.client.post(
        "/_matrix/media/v3/upload", data=b"x" * 1001, headers=auth(token)
    )
    assert await error_of(response) == (413, "M_TOO_LARGE")
    assert stored_blobs(hs) == []


async def test_streamed_upload_over_the_limit_is_413(make_homeserver: HarnessFactory) -> None:
    hs: HomeserverHarness = await make_homeserver(max_upload_size=100_000)
    token = await user_token(hs)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 10_000

    response = await hs.client.post("/_matrix/media/v3/upload", data=body(), headers=auth(token))
    assert await error_of(response) == (413, "M_TOO_LARGE")
    assert stored_blobs(hs) == []
    tmp = hs.server.media._files.root / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


async def test_upload_at_the_limit_is_accepted(make_homeserver: HarnessFactory) -> None:
    hs: HomeserverHarness = await make_homeserver(max_upload_size=1000)
    token = await user_token(hs)
    await upload(hs, token, b"z" * 1000)


async def test_missing_media_is_404(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    response = await hs.client.get(download_path("doesNotExist"), headers=auth(token))
    assert await error_of(response) == (404, "M_NOT_FOUND")


async def test_path_characters_cannot_escape_the_store(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    await upload(hs, token, b"inside", "text/plain")
    secret = hs.server.media._files.root.parent / "secret.txt"
    secret.write_text("outside")
    attempts = [
        "/_matrix/client/v1/media/download/test.local/..%2F..%2Fsecret.txt",
        "/_matrix/client/v1/media/download/test.local/%2e%2e",
        "/_matrix/client/v1/media/download/test.local/..",
        "/_matrix/client/v1/media/download/test.local/a.b",
        "/_matrix/client/v1/media/download/..%2F..%2F/secret.txt",
        "/_matrix/client/v1/media/download/test.local/%00abc",
        "/_matrix/client/v1/media/thumbnail/test.local/..%2Fsecret.txt?width=1&height=1",
    ]
    for path in attempts:
        response = await hs.client.get(path, headers=auth(token))
        assert response.status in (400, 404), path
        assert b"outside" not in await response.read()


async def test_authenticated_endpoints_refuse_anonymous_requests(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, png_bytes(8, 8), "image/png")
    for method, path in [
        ("GET", download_path(media_id)),
        ("GET", f"/_matrix/client/v1/media/thumbnail/test.local/{media_id}?width=4&height=4"),
        ("GET", "/_matrix/client/v1/media/config"),
        ("GET", "/_matrix/client/v1/media/preview_url?url=https://example.org"),
        ("POST", "/_matrix/media/v3/upload"),
        ("POST", "/_matrix/media/v1/create"),
        ("PUT", f"/_matrix/media/v3/upload/test.local/{media_id}"),
    ]:
        response = await hs.client.request(method, path, data=b"x")
        assert await error_of(response) == (401, "M_MISSING_TOKEN"), path
    response = await hs.client.get(download_path(media_id), headers=auth("bogus"))
    assert await error_of(response) == (401, "M_UNKNOWN_TOKEN")


async def test_media_config(make_homeserver: HarnessFactory) -> None:
    hs: HomeserverHarness = await make_homeserver(max_upload_size=12345)
    token = await user_token(hs)
    for path in ("/_matrix/client/v1/media/config", "/_matrix/media/v3/config"):
        response = await hs.client.get(path, headers=auth(token))
        assert await response.json() == {"m.upload.size": 12345}


async def test_range_requests(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    data = bytes(range(256)) * 40
    media_id = await upload(hs, token, data)
    response = await hs.client.get(
        download_path(media_id), headers={**auth(token), "Range": "bytes=100-199"}
    )
    assert response.status == 206
    assert await response.read() == data[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    response = await hs.client.get(
        download_path(media_id), headers={**auth(token), "Range": "bytes=-10"}
    )
    assert response.status == 206
    assert await response.read() == data[-10:]
    response = await hs.client.get(
        download_path(media_id), headers={**auth(token), "Range": f"bytes={len(data)}-"}
    )
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"


async def test_head_and_conditional_requests(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    data = b"conditional content"
    media_id = await upload(hs, token, data, "text/plain")
    head = await hs.client.head(download_path(media_id), headers=auth(token))
    assert head.status == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert await head.read() == b""
    etag = head.headers["ETag"]
    response = await hs.client.get(
        download_path(media_id), headers={**auth(token), "If-None-Match": etag}
    )
    assert response.status == 304
    assert await response.read() == b""


async def test_legacy_download_is_frozen_by_default(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, png_bytes(8, 8), "image/png")
    for path in (
        f"/_matrix/media/v3/download/test.local/{media_id}",
        f"/_matrix/media/v3/download/test.local/{media_id}/name.png",
        f"/_matrix/media/v3/thumbnail/test.local/{media_id}?width=4&height=4",
        f"/_matrix/media/r0/download/test.local/{media_id}",
    ):
        response = await hs.client.get(path)
        assert await error_of(response) == (404, "M_NOT_FOUND"), path


async def test_legacy_download_serves_media_from_before_the_freeze(
    make_homeserver: HarnessFactory,
) -> None:
    freeze = 1_700_000_100_000  # the FakeClock starts 100 s before this
    hs: HomeserverHarness = await make_homeserver(unauthenticated_media_allowed_before=freeze)
    token = await user_token(hs)
    data = png_bytes(8, 8)
    old = await upload(hs, token, data, "image/png")
    hs.clock.advance(200)
    new = await upload(hs, token, data, "image/png")
    response = await hs.client.get(f"/_matrix/media/v3/download/test.local/{old}")
    assert response.status == 200
    assert await response.read() == data
    assert response.headers["Cache-Control"].startswith("public")
    response = await hs.client.get(f"/_matrix/media/v3/download/test.local/{new}")
    assert await error_of(response) == (404, "M_NOT_FOUND")
    response = await hs.client.get(download_path(new), headers=auth(token))
    assert response.status == 200


async def test_uncached_remote_media_from_a_server_we_may_not_reach_is_403(
    make_homeserver: HarnessFactory,
) -> None:
    # No federation with anyone: refused before any lookup or connection, 403
    # M_FORBIDDEN as Synapse answers (a server that could not be reached is 502).
    hs: HomeserverHarness = await make_homeserver(federation_domain_whitelist=[])
    token = await user_token(hs)
    response = await hs.client.get(download_path("abc", "remote.example"), headers=auth(token))
    assert await error_of(response) == (403, "M_FORBIDDEN")


async def test_media_repo_disabled_serves_no_media_routes(make_homeserver: HarnessFactory) -> None:
    hs: HomeserverHarness = await make_homeserver(enable_media_repo=False)
    token = await user_token(hs)
    response = await hs.client.get("/_matrix/client/v1/media/config", headers=auth(token))
    assert await error_of(response) == (404, "M_UNRECOGNIZED")
