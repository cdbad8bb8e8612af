"""Asynchronous uploads: POST /_matrix/media/v1/create then PUT /_matrix/media/v3/upload."""

from __future__ import annotations

import asyncio

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.media.helpers import auth, download_path, error_of, png_bytes, user_token

DAY_MS = 24 * 3600 * 1000


async def create(hs: HomeserverHarness, token: str) -> tuple[str, dict[str, object]]:
    response = await hs.client.post("/_matrix/media/v1/create", headers=auth(token))
    assert response.status == 200, await response.text()
    body = await response.json()
    return str(body["content_uri"]).rsplit("/", 1)[1], body


def put_path(media_id: str, server_name: str = "test.local") -> str:
    return f"/_matrix/media/v3/upload/{server_name}/{media_id}"


async def test_create_then_put_then_download(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id, body = await create(hs, token)
    assert body["content_uri"] == f"mxc://test.local/{media_id}"
    assert body["unused_expires_at"] == hs.clock.time_ms() + DAY_MS
    data = png_bytes(16, 16)
    response = await hs.client.put(
        put_path(media_id),
        data=data,
        params={"filename": "late.png"},
        headers={**auth(token), "Content-Type": "image/png"},
    )
    assert response.status == 200
    assert await response.json() == {}
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert await response.read() == data
    assert response.headers["Content-Disposition"] == 'inline; filename="late.png"'


async def test_download_before_upload_is_504_not_yet_uploaded(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id, _ = await create(hs, token)
    response = await hs.client.get(
        download_path(media_id), params={"timeout_ms": "0"}, headers=auth(token)
    )
    assert await error_of(response) == (504, "M_NOT_YET_UPLOADED")


async def test_waiting_download_is_answered_when_the_upload_lands(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id, _ = await create(hs, token)
    waiting = asyncio.ensure_future(
        hs.client.get(download_path(media_id), params={"timeout_ms": "5000"}, headers=auth(token))
    )
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await hs.client.put(put_path(media_id), data=b"arrived", headers=auth(token))
    response = await asyncio.wait_for(waiting, 5)
    assert response.status == 200
    assert await response.read() == b"arrived"


async def test_put_cannot_overwrite(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id, _ = await create(hs, token)
    assert (
        await hs.client.put(put_path(media_id), data=b"first", headers=auth(token))
    ).status == 200
    response = await hs.client.put(put_path(media_id), data=b"second", headers=auth(token))
    assert await error_of(response) == (409, "M_CANNOT_OVERWRITE_MEDIA")
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert await response.read() == b"first"


async def test_put_by_another_user_is_403(hs: HomeserverHarness) -> None:
    alice = await user_token(hs, "alice")
    bob = await user_token(hs, "bob")
    media_id, _ = await create(hs, alice)
    response = await hs.client.put(put_path(media_id), data=b"bob's", headers=auth(bob))
    assert await error_of(response) == (403, "M_FORBIDDEN")
    assert (
        await hs.client.put(put_path(media_id), data=b"mine", headers=auth(alice))
    ).status == 200


async def test_put_to_unknown_or_foreign_ids_is_404(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    for path in (put_path("neverCreated"), put_path("abc", "other.example"), put_path("..")):
        response = await hs.client.put(path, data=b"x", headers=auth(token))
        assert response.status == 404, path


async def test_put_to_a_direct_upload_is_refused(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    response = await hs.client.post("/_matrix/media/v3/upload", data=b"x", headers=auth(token))
    media_id = (await response.json())["content_uri"].rsplit("/", 1)[1]
    response = await hs.client.put(put_path(media_id), data=b"y", headers=auth(token))
    assert await error_of(response) == (409, "M_CANNOT_OVERWRITE_MEDIA")


async def test_unused_ids_expire(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id, _ = await create(hs, token)
    hs.clock.advance(DAY_MS / 1000 + 1)
    response = await hs.client.put(put_path(media_id), data=b"late", headers=auth(token))
    assert await error_of(response) == (404, "M_NOT_FOUND")
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    assert await error_of(response) == (404, "M_NOT_FOUND")


async def test_pending_uploads_are_limited(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    limit = hs.server.media.limits.max_pending_uploads
    first, _ = await create(hs, token)
    for _ in range(limit - 1):
        await create(hs, token)
    response = await hs.client.post("/_matrix/media/v1/create", headers=auth(token))
    assert await error_of(response) == (429, "M_LIMIT_EXCEEDED")
    assert (await response.json())["retry_after_ms"] > 0
    # Uploading to one frees a slot.
    await hs.client.put(put_path(first), data=b"done", headers=auth(token))
    await create(hs, token)
    # Another user is not affected.
    await create(hs, await user_token(hs, "bob"))


async def test_put_over_the_limit_is_413_and_keeps_the_id_usable(
    make_homeserver: HarnessFactory,
) -> None:
    hs: HomeserverHarness = await make_homeserver(max_upload_size=100)
    token = await user_token(hs)
    media_id, _ = await create(hs, token)
    response = await hs.client.put(put_path(media_id), data=b"x" * 101, headers=auth(token))
    assert await error_of(response) == (413, "M_TOO_LARGE")
    assert (await hs.client.put(put_path(media_id), data=b"ok", headers=auth(token))).status == 200
