"""``media_retention``: local and cached remote media nobody downloaded for their
lifetime are deleted (rows, thumbnails, files) by the hourly job; downloads keep
media alive; quarantined and protected media and avatars stay. Driven by the
FakeClock: the test runs the job's tick itself."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.config import MediaRetentionConfig, parse_config
from tests.admin.moderation.helpers import ADMIN, CLIENT, admin_and_user, auth
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.media.helpers import download_path, png_bytes, stored_blobs, upload
from tests.media.test_remote_media import FakeFetcher

DAY_S = 86_400
DAY_MS = DAY_S * 1000


async def _exists(hs: HomeserverHarness, origin: str, media_id: str) -> bool:
    row = await hs.server.db.fetchone(
        "t", "SELECT 1 FROM media WHERE origin = $1 AND media_id = $2", origin, media_id
    )
    return row is not None


async def _get(hs: HomeserverHarness, token: str, path: str) -> int:
    response = await hs.client.get(path, headers=auth(token))
    await response.read()
    return response.status


async def test_local_media_not_accessed_for_its_lifetime_goes(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(media_retention={"local_media_lifetime": "30d"})
    retention = hs.server.media_retention
    assert retention is not None
    admin, user = await admin_and_user(hs)
    forgotten = await upload(hs, user, png_bytes(40, 40), "image/png")
    thumb = f"/_matrix/client/v1/media/thumbnail/test.local/{forgotten}?width=32&height=32"
    assert await _get(hs, user, thumb) == 200
    popular = await upload(hs, user, b"downloaded often", "text/plain")
    empty = await upload(hs, user, b"", "text/plain")
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

    hs.clock.advance(20 * DAY_S)
    assert await _get(hs, user, download_path(popular)) == 200
    run = await retention.tick()
    assert run.local == 0
    hs.clock.advance(11 * DAY_S)
    run = await retention.tick()
    assert run.local == 2 and run.remote == 0
    assert not await _exists(hs, "test.local", forgotten)
    assert not await _exists(hs, "test.local", empty)
    assert await _get(hs, user, download_path(forgotten)) == 404
    for kept in (popular, avatar, quarantined, protected):
        assert await _exists(hs, "test.local", kept)
    # the forgotten image's file and its thumbnail's file are gone from disk
    assert len(stored_blobs(hs)) == 4
    # a month later the popular one goes too, unless it is downloaded again
    hs.clock.advance(30 * DAY_S)
    assert (await retention.tick()).local == 1
    assert not await _exists(hs, "test.local", popular)


async def test_remote_cache_is_dropped_and_fetched_again(
    make_homeserver: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hs = await make_homeserver(media_retention={"remote_media_lifetime": "14d"})
    retention = hs.server.media_retention
    assert retention is not None
    _, user = await admin_and_user(hs)
    fetcher = FakeFetcher({("remote.example", "pic"): (png_bytes(50, 50), "image/png")})
    monkeypatch.setattr(hs.server.media, "_remote", fetcher)
    local = await upload(hs, user, b"local media has no lifetime here", "text/plain")
    path = download_path("pic", "remote.example")
    assert await _get(hs, user, path) == 200
    hs.clock.advance(15 * DAY_S)
    run = await retention.tick()
    assert (run.local, run.remote) == (0, 1)
    assert not await _exists(hs, "remote.example", "pic")
    assert await _exists(hs, "test.local", local)
    assert len(stored_blobs(hs)) == 1
    # asked for again, it is fetched again
    assert await _get(hs, user, path) == 200
    assert await _exists(hs, "remote.example", "pic")


async def test_off_by_default(hs: HomeserverHarness) -> None:
    assert hs.server.media_retention is None


def _config(**section: Any) -> dict[str, Any]:
    return {"server_name": "test.local", "media_retention": section}


def test_config() -> None:
    config = parse_config(_config(local_media_lifetime="90d", remote_media_lifetime=1000), {})
    assert config.media_retention == MediaRetentionConfig(90 * DAY_MS, 1000)
    assert not parse_config({"server_name": "test.local"}, {}).media_retention.enabled


@pytest.mark.parametrize(
    "section",
    [
        {"local_media_lifetime": "soon"},
        {"remote_media_lifetime": 0},
        {"remote_media_lifetime": -5},
        {"local_media_lifetyme": "1d"},
    ],
)
def test_bad_config_is_refused(section: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="media_retention"):
        parse_config(_config(**section), {})
