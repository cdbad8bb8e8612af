"""Media admin API beyond single media: quarantine by room and by user, protection,
the media of a room, media info, deletion by age and size, and the purge of cached
remote media; each checked in the database and the media store on disk."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.moderation.helpers import (
    ADMIN,
    CLIENT,
    admin_and_user,
    auth,
    check_admin_only,
    create_room,
    expect_error,
    send,
)
from tests.conftest import HomeserverHarness
from tests.media.helpers import download_path, png_bytes, stored_blobs, upload
from tests.media.test_remote_media import FakeFetcher


async def media_row(hs: HomeserverHarness, origin: str, media_id: str) -> Any:
    return await hs.server.db.fetchone(
        "test_media_row",
        "SELECT quarantined, quarantined_by, safe_from_quarantine, sha256 FROM media"
        " WHERE origin = $1 AND media_id = $2",
        origin,
        media_id,
    )


async def thumbnail_count(hs: HomeserverHarness, media_id: str) -> int:
    return int(
        await hs.server.db.fetchval(
            "test_thumbnails",
            "SELECT COUNT(*) FROM media_thumbnails WHERE media_id = $1",
            media_id,
        )
    )


async def downloadable(hs: HomeserverHarness, token: str, media_id: str) -> bool:
    response = await hs.client.get(download_path(media_id), headers=auth(token))
    await response.read()
    return response.status == 200


async def test_quarantine_of_a_room_spares_protected_media(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    room_id = await create_room(hs, user)
    image = await upload(hs, user, png_bytes(40, 40), "image/png")
    thumb = await upload(hs, user, png_bytes(20, 20, (0, 0, 200)), "image/png")
    sticker = await upload(hs, user, png_bytes(30, 30, (0, 200, 0)), "image/png")
    unrelated = await upload(hs, user, b"not in the room", "text/plain")
    await send(
        hs,
        user,
        room_id,
        {
            "msgtype": "m.image",
            "body": "a.png",
            "url": f"mxc://test.local/{image}",
            "info": {"thumbnail_url": f"mxc://test.local/{thumb}"},
        },
    )
    await send(
        hs, user, room_id, {"msgtype": "m.image", "body": "s", "url": f"mxc://test.local/{sticker}"}
    )
    await send(
        hs, user, room_id, {"msgtype": "m.file", "body": "r", "url": "mxc://remote.example/abc"}
    )
    await send(hs, user, room_id, {"msgtype": "m.text", "body": "mxc://nothing here"})

    response = await hs.client.get(f"{ADMIN}/room/{room_id}/media", headers=auth(admin))
    assert response.status == 200
    listed = await response.json()
    assert sorted(listed["local"]) == sorted(
        f"mxc://test.local/{m}" for m in (image, thumb, sticker)
    )
    assert listed["remote"] == ["mxc://remote.example/abc"]

    response = await hs.client.post(
        f"{ADMIN}/media/protect/{sticker}", json={}, headers=auth(admin)
    )
    assert (response.status, await response.json()) == (200, {})
    response = await hs.client.post(
        f"{ADMIN}/room/{room_id}/media/quarantine", json={}, headers=auth(admin)
    )
    assert response.status == 200
    assert await response.json() == {"num_quarantined": 3}  # image, thumb, the remote one

    assert not await downloadable(hs, user, image)
    assert not await downloadable(hs, user, thumb)
    assert await downloadable(hs, user, sticker)
    assert await downloadable(hs, user, unrelated)
    image_row = await media_row(hs, "test.local", image)
    assert (bool(image_row[0]), image_row[1]) == (True, "@admin:test.local")
    sticker_row = await media_row(hs, "test.local", sticker)
    assert (bool(sticker_row[0]), bool(sticker_row[2])) == (False, True)
    remote_row = await media_row(hs, "remote.example", "abc")
    assert bool(remote_row[0]) and remote_row[3] is None  # a marker: never fetched
    # the files stay (quarantine is not deletion)
    assert len(stored_blobs(hs)) == 4

    # unprotected, the sticker goes the next time; the legacy path does the same
    response = await hs.client.post(
        f"{ADMIN}/media/unprotect/{sticker}", json={}, headers=auth(admin)
    )
    assert response.status == 200
    response = await hs.client.post(
        f"{ADMIN}/quarantine_media/{room_id}", json={}, headers=auth(admin)
    )
    assert await response.json() == {"num_quarantined": 4}
    assert not await downloadable(hs, user, sticker)


async def test_protected_media_is_spared_by_quarantine_by_id(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    media_id = await upload(hs, user, b"sticker", "text/plain")
    await hs.client.post(f"{ADMIN}/media/protect/{media_id}", headers=auth(admin))
    response = await hs.client.post(
        f"{ADMIN}/media/quarantine/test.local/{media_id}", headers=auth(admin)
    )
    assert (response.status, await response.json()) == (200, {})
    assert await downloadable(hs, user, media_id)
    await hs.client.post(f"{ADMIN}/media/unprotect/{media_id}", headers=auth(admin))
    await hs.client.post(f"{ADMIN}/media/quarantine/test.local/{media_id}", headers=auth(admin))
    assert not await downloadable(hs, user, media_id)


async def test_quarantine_of_a_user_takes_only_their_unprotected_media(
    hs: HomeserverHarness,
) -> None:
    admin, user = await admin_and_user(hs)
    first = await upload(hs, user, b"one", "text/plain")
    second = await upload(hs, user, b"two", "text/plain")
    kept = await upload(hs, user, b"kept", "text/plain")
    admins_own = await upload(hs, admin, b"admin's", "text/plain")
    await hs.client.post(f"{ADMIN}/media/protect/{kept}", headers=auth(admin))
    response = await hs.client.post(
        f"{ADMIN}/user/@user:test.local/media/quarantine", json={}, headers=auth(admin)
    )
    assert response.status == 200
    assert await response.json() == {"num_quarantined": 2}
    assert not await downloadable(hs, user, first)
    assert not await downloadable(hs, user, second)
    assert await downloadable(hs, user, kept)
    assert await downloadable(hs, admin, admins_own)
    response = await hs.client.post(
        f"{ADMIN}/user/@nobody:test.local/media/quarantine", headers=auth(admin)
    )
    assert await response.json() == {"num_quarantined": 0}
    response = await hs.client.post(f"{ADMIN}/user/nobody/media/quarantine", headers=auth(admin))
    await expect_error(response, 400, "M_INVALID_PARAM")


async def test_protect_of_unknown_media_is_404(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    for action in ("protect", "unprotect"):
        response = await hs.client.post(f"{ADMIN}/media/{action}/nosuchmedia", headers=auth(admin))
        await expect_error(response, 404, "M_NOT_FOUND")


async def test_media_of_an_unknown_room_is_404(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    response = await hs.client.get(f"{ADMIN}/room/!nope:test.local/media", headers=auth(admin))
    await expect_error(response, 404, "M_NOT_FOUND")
    response = await hs.client.post(
        f"{ADMIN}/room/!nope:test.local/media/quarantine", headers=auth(admin)
    )
    assert await response.json() == {"num_quarantined": 0}


async def test_media_info(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    data = png_bytes(10, 10)
    media_id = await upload(hs, user, data, "image/png", filename="dot.png")
    response = await hs.client.get(f"{ADMIN}/media/test.local/{media_id}", headers=auth(admin))
    assert response.status == 200
    info = (await response.json())["media_info"]
    assert info["media_origin"] is None
    assert info["user_id"] == "@user:test.local"
    assert info["media_id"] == media_id
    assert info["media_type"] == "image/png"
    assert info["media_length"] == len(data)
    assert info["upload_name"] == "dot.png"
    assert info["created_ts"] == hs.clock.time_ms()
    assert info["quarantined_by"] is None
    assert info["safe_from_quarantine"] is False
    await hs.client.post(f"{ADMIN}/media/quarantine/test.local/{media_id}", headers=auth(admin))
    response = await hs.client.get(f"{ADMIN}/media/test.local/{media_id}", headers=auth(admin))
    assert (await response.json())["media_info"]["quarantined_by"] == "@admin:test.local"
    response = await hs.client.get(f"{ADMIN}/media/test.local/unknown", headers=auth(admin))
    await expect_error(response, 404, "M_NOT_FOUND")
    # quarantined before it was ever fetched: not cached, so nothing to show
    await hs.client.post(f"{ADMIN}/media/quarantine/remote.example/xyz", headers=auth(admin))
    response = await hs.client.get(f"{ADMIN}/media/remote.example/xyz", headers=auth(admin))
    await expect_error(response, 404, "M_NOT_FOUND")


async def test_delete_by_age_and_size(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    small = await upload(hs, user, b"x" * 10, "text/plain")
    large = await upload(hs, user, png_bytes(200, 200), "image/png")
    thumb = f"/_matrix/client/v1/media/thumbnail/test.local/{large}?width=32&height=32"
    assert (await hs.client.get(thumb, headers=auth(user))).status == 200
    assert await thumbnail_count(hs, large) == 1
    avatar = await upload(hs, user, png_bytes(64, 64, (1, 2, 3)), "image/png")
    response = await hs.client.put(
        f"{CLIENT}/profile/@user:test.local/avatar_url",
        json={"avatar_url": f"mxc://test.local/{avatar}"},
        headers=auth(user),
    )
    assert response.status == 200
    quarantined = await upload(hs, user, png_bytes(90, 90, (9, 9, 9)), "image/png")
    await hs.client.post(f"{ADMIN}/media/quarantine/test.local/{quarantined}", headers=auth(admin))
    protected = await upload(hs, user, png_bytes(80, 80, (8, 8, 8)), "image/png")
    await hs.client.post(f"{ADMIN}/media/protect/{protected}", headers=auth(admin))
    hs.clock.advance(3600)
    recent = await upload(hs, user, png_bytes(100, 100, (7, 7, 7)), "image/png")
    cutoff = hs.clock.time_ms() - 1
    blobs_before = len(stored_blobs(hs))

    response = await hs.client.post(
        f"{ADMIN}/media/delete?before_ts={cutoff}&size_gt=100", headers=auth(admin)
    )
    assert response.status == 200
    assert await response.json() == {"deleted_media": [large], "total": 1}
    assert await media_row(hs, "test.local", large) is None
    assert await thumbnail_count(hs, large) == 0
    assert len(stored_blobs(hs)) == blobs_before - 2  # the original and its thumbnail
    for kept in (small, avatar, quarantined, protected, recent):
        assert await media_row(hs, "test.local", kept) is not None

    # keep_profiles=false takes the avatar too; the deprecated path names the server
    response = await hs.client.post(
        f"{ADMIN}/media/test.local/delete?before_ts={cutoff}&keep_profiles=false",
        headers=auth(admin),
    )
    assert sorted((await response.json())["deleted_media"]) == sorted([small, avatar])
    assert await media_row(hs, "test.local", avatar) is None
    assert not await downloadable(hs, user, avatar)
    assert await downloadable(hs, user, recent)
    assert len(stored_blobs(hs)) == blobs_before - 4


@pytest.mark.parametrize(
    ("query", "status", "errcode"),
    [
        ("", 400, "M_MISSING_PARAM"),
        ("?before_ts=soon", 400, "M_INVALID_PARAM"),
        ("?before_ts=1000", 400, "M_INVALID_PARAM"),
        ("?before_ts=99999999999999&size_gt=-1", 400, "M_INVALID_PARAM"),
        ("?before_ts=99999999999999&keep_profiles=perhaps", 400, "M_INVALID_PARAM"),
    ],
)
async def test_delete_by_age_refuses_bad_input(
    hs: HomeserverHarness, query: str, status: int, errcode: str
) -> None:
    admin, user = await admin_and_user(hs)
    media_id = await upload(hs, user, b"still here", "text/plain")
    response = await hs.client.post(f"{ADMIN}/media/delete{query}", headers=auth(admin))
    await expect_error(response, status, errcode)
    response = await hs.client.post(
        f"{ADMIN}/media/other.example/delete?before_ts=99999999999999", headers=auth(admin)
    )
    await expect_error(response, 400, "M_INVALID_PARAM")
    assert await downloadable(hs, user, media_id)
    assert len(stored_blobs(hs)) == 1


async def test_purge_of_the_remote_cache_removes_rows_and_files(
    hs: HomeserverHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, user = await admin_and_user(hs)
    fetcher = FakeFetcher(
        {
            ("remote.example", "old"): (png_bytes(50, 50, (5, 5, 5)), "image/png"),
            ("remote.example", "new"): (png_bytes(60, 60, (6, 6, 6)), "image/png"),
        }
    )
    monkeypatch.setattr(hs.server.media, "_remote", fetcher)
    local = await upload(hs, user, b"local stays", "text/plain")
    old_path = "/_matrix/client/v1/media/download/remote.example/old"
    assert (await hs.client.get(old_path, headers=auth(user))).status == 200
    old_thumb = "/_matrix/client/v1/media/thumbnail/remote.example/old?width=32&height=32"
    assert (await hs.client.get(old_thumb, headers=auth(user))).status == 200
    hs.clock.advance(3600)
    new_path = "/_matrix/client/v1/media/download/remote.example/new"
    assert (await hs.client.get(new_path, headers=auth(user))).status == 200
    assert len(stored_blobs(hs)) == 4
    response = await hs.client.post(
        f"{ADMIN}/purge_media_cache?before_ts={hs.clock.time_ms() - 1}", headers=auth(admin)
    )
    assert await response.json() == {"deleted": 1}
    assert await media_row(hs, "remote.example", "old") is None
    assert await thumbnail_count(hs, "old") == 0
    assert await media_row(hs, "remote.example", "new") is not None
    assert len(stored_blobs(hs)) == 2  # the new remote one and the local one
    assert await downloadable(hs, user, local)


async def test_media_admin_endpoints_need_an_admin(hs: HomeserverHarness) -> None:
    _, user = await admin_and_user(hs)
    media_id = await upload(hs, user, b"keep me", "text/plain")
    room_id = await create_room(hs, user)
    for method, path in (
        ("POST", f"{ADMIN}/room/{room_id}/media/quarantine"),
        ("POST", f"{ADMIN}/quarantine_media/{room_id}"),
        ("POST", f"{ADMIN}/user/@user:test.local/media/quarantine"),
        ("POST", f"{ADMIN}/media/protect/{media_id}"),
        ("POST", f"{ADMIN}/media/unprotect/{media_id}"),
        ("GET", f"{ADMIN}/room/{room_id}/media"),
        ("GET", f"{ADMIN}/media/test.local/{media_id}"),
        ("POST", f"{ADMIN}/media/delete?before_ts=99999999999999"),
        ("POST", f"{ADMIN}/media/test.local/delete?before_ts=99999999999999"),
    ):
        await check_admin_only(hs, user, method, path)
    assert await downloadable(hs, user, media_id)
    row = await media_row(hs, "test.local", media_id)
    assert (bool(row[0]), bool(row[2])) == (False, False)


async def test_delete_by_id_removes_row_thumbnails_and_files(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    media_id = await upload(hs, user, png_bytes(120, 120, (4, 4, 4)), "image/png")
    for method in ("crop", "scale"):
        thumb = (
            f"/_matrix/client/v1/media/thumbnail/test.local/{media_id}"
            f"?width=32&height=32&method={method}"
        )
        assert (await hs.client.get(thumb, headers=auth(user))).status == 200
    assert await thumbnail_count(hs, media_id) == 2
    assert len(stored_blobs(hs)) == 3
    await check_admin_only(hs, user, "DELETE", f"{ADMIN}/media/test.local/{media_id}")
    assert len(stored_blobs(hs)) == 3
    response = await hs.client.delete(f"{ADMIN}/media/test.local/{media_id}", headers=auth(admin))
    assert await response.json() == {"deleted_media": [media_id], "total": 1}
    assert await media_row(hs, "test.local", media_id) is None
    assert await thumbnail_count(hs, media_id) == 0
    assert stored_blobs(hs) == []
