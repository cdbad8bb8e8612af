"""Media admin API (Synapse's shape): quarantine, delete, purge of the remote cache."""

from __future__ import annotations

from tests.conftest import HomeserverHarness
from tests.media.helpers import auth, download_path, error_of, png_bytes, stored_blobs, upload

ADMIN = "/_synapse/admin/v1"


async def admin_and_user(hs: HomeserverHarness) -> tuple[str, str]:
    admin = (await hs.register("admin"))["access_token"]
    await hs.server.stores.accounts.set_admin("@admin:test.local", True)
    user = (await hs.register("user"))["access_token"]
    return str(admin), str(user)


async def test_quarantined_media_is_404_until_released(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    data = png_bytes(40, 40)
    media_id = await upload(hs, user, data, "image/png")
    response = await hs.client.post(
        f"{ADMIN}/media/quarantine/test.local/{media_id}", headers=auth(admin)
    )
    assert response.status == 200
    assert await response.json() == {}
    response = await hs.client.get(download_path(media_id), headers=auth(user))
    assert await error_of(response) == (404, "M_NOT_FOUND")
    thumb = f"/_matrix/client/v1/media/thumbnail/test.local/{media_id}?width=32&height=32"
    assert (await hs.client.get(thumb, headers=auth(user))).status == 404
    response = await hs.client.post(
        f"{ADMIN}/media/unquarantine/test.local/{media_id}", headers=auth(admin)
    )
    assert response.status == 200
    response = await hs.client.get(download_path(media_id), headers=auth(user))
    assert await response.read() == data


async def test_delete_removes_media_thumbnails_and_unshared_files(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    shared = png_bytes(200, 200)
    first = await upload(hs, user, shared, "image/png")
    second = await upload(hs, user, shared, "image/png")
    thumb = f"/_matrix/client/v1/media/thumbnail/test.local/{first}?width=32&height=32&method=crop"
    assert (await hs.client.get(thumb, headers=auth(user))).status == 200
    assert len(stored_blobs(hs)) == 2  # the shared original and one thumbnail
    response = await hs.client.delete(f"{ADMIN}/media/test.local/{first}", headers=auth(admin))
    assert response.status == 200
    assert await response.json() == {"deleted_media": [first], "total": 1}
    assert await error_of(await hs.client.get(download_path(first), headers=auth(user))) == (
        404,
        "M_NOT_FOUND",
    )
    assert len(stored_blobs(hs)) == 1  # the thumbnail went; the original is still used
    response = await hs.client.get(download_path(second), headers=auth(user))
    assert await response.read() == shared
    response = await hs.client.delete(f"{ADMIN}/media/test.local/{second}", headers=auth(admin))
    assert response.status == 200
    assert stored_blobs(hs) == []
    response = await hs.client.delete(f"{ADMIN}/media/test.local/{second}", headers=auth(admin))
    assert await error_of(response) == (404, "M_NOT_FOUND")


async def test_delete_of_remote_media_is_refused(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    response = await hs.client.delete(f"{ADMIN}/media/other.example/abc", headers=auth(admin))
    assert await error_of(response) == (400, "M_INVALID_PARAM")


async def test_media_admin_needs_an_admin(hs: HomeserverHarness) -> None:
    _, user = await admin_and_user(hs)
    media_id = await upload(hs, user, b"keep me", "text/plain")
    for method, path in (
        ("POST", f"{ADMIN}/media/quarantine/test.local/{media_id}"),
        ("POST", f"{ADMIN}/media/unquarantine/test.local/{media_id}"),
        ("DELETE", f"{ADMIN}/media/test.local/{media_id}"),
        ("POST", f"{ADMIN}/purge_media_cache?before_ts=9999999999999"),
    ):
        response = await hs.client.request(method, path, headers=auth(user))
        assert await error_of(response) == (403, "M_FORBIDDEN"), path
        response = await hs.client.request(method, path)
        assert response.status == 401, path
    response = await hs.client.get(download_path(media_id), headers=auth(user))
    assert await response.read() == b"keep me"


async def test_purge_media_cache_needs_before_ts(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    response = await hs.client.post(f"{ADMIN}/purge_media_cache", headers=auth(admin))
    assert await error_of(response) == (400, "M_MISSING_PARAM")
    response = await hs.client.post(
        f"{ADMIN}/purge_media_cache?before_ts=soon", headers=auth(admin)
    )
    assert await error_of(response) == (400, "M_INVALID_PARAM")
    response = await hs.client.post(
        f"{ADMIN}/purge_media_cache?before_ts=9999999999999", headers=auth(admin)
    )
    assert await response.json() == {"deleted": 0}
