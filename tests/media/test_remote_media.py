"""Remote media through a `RemoteMediaFetcher` (a fake standing in for federation)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from homeserver.clock import FakeClock
from homeserver.errors import MatrixError, NotFound
from homeserver.media.filestore import MediaFileStore
from homeserver.media.remote import RemoteMedia
from homeserver.media.service import MediaLimits, MediaService
from homeserver.media.thumbnailer import TargetSize, Thumbnailer
from storage.database import Database
from storage.media import MediaStore
from storage.migrations import apply_migrations
from tests.media.helpers import png_bytes


class FakeFetcher:
    def __init__(self, media: dict[tuple[str, str], tuple[bytes, str]]) -> None:
        self.media = media
        self.calls: list[tuple[str, str]] = []

    async def fetch_media(
        self, server_name: str, media_id: str, *, max_size: int, timeout_ms: int
    ) -> RemoteMedia:
        self.calls.append((server_name, media_id))
        if (server_name, media_id) not in self.media:
            raise NotFound("Unknown media")
        data, content_type = self.media[(server_name, media_id)]

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 1000):
                yield data[start : start + 1000]

        return RemoteMedia(content_type, "remote.png", chunks())


async def make_service(
    database: Database, tmp_path: Path, fetcher: FakeFetcher, max_upload_size: int = 10**6
) -> tuple[MediaService, FakeClock]:
    await apply_migrations(database)
    clock = FakeClock()
    service = MediaService(
        "test.local",
        MediaStore(database),
        MediaFileStore(tmp_path / "media"),
        Thumbnailer(10**7),
        clock,
        MediaLimits(max_upload_size=max_upload_size),
        thumbnail_sizes=[TargetSize(32, 32, "crop")],
        remote=fetcher,
    )
    return service, clock


async def test_remote_media_is_fetched_once_then_served_from_cache(
    database: Database, tmp_path: Path
) -> None:
    data = png_bytes(100, 100)
    fetcher = FakeFetcher({("remote.example", "abc"): (data, "image/png")})
    service, _ = await make_service(database, tmp_path, fetcher)
    served = await service.get_download("remote.example", "abc")
    assert served.path.read_bytes() == data
    assert served.filename == "remote.png"
    await service.get_download("remote.example", "abc")
    thumb = await service.get_thumbnail("remote.example", "abc", 32, 32, "crop")
    assert thumb.content_type == "image/png"
    assert fetcher.calls == [("remote.example", "abc")]


async def test_remote_media_frozen_for_legacy_endpoints_by_cache_time(
    database: Database, tmp_path: Path
) -> None:
    fetcher = FakeFetcher({("remote.example", "abc"): (b"data", "text/plain")})
    service, _ = await make_service(database, tmp_path, fetcher)
    with pytest.raises(NotFound):
        await service.get_download("remote.example", "abc", legacy=True)


async def test_remote_media_not_fetched_when_remote_not_allowed(
    database: Database, tmp_path: Path
) -> None:
    fetcher = FakeFetcher({("remote.example", "abc"): (b"data", "text/plain")})
    service, _ = await make_service(database, tmp_path, fetcher)
    with pytest.raises(NotFound):
        await service.get_download("remote.example", "abc", allow_remote=False)
    assert fetcher.calls == []


async def test_too_large_remote_media_is_502(database: Database, tmp_path: Path) -> None:
    fetcher = FakeFetcher({("remote.example", "big"): (b"x" * 5000, "text/plain")})
    service, _ = await make_service(database, tmp_path, fetcher, max_upload_size=4000)
    with pytest.raises(MatrixError) as caught:
        await service.get_download("remote.example", "big")
    assert (caught.value.status, caught.value.errcode) == (502, "M_TOO_LARGE")
    content = tmp_path / "media" / "content"
    assert not [p for p in content.rglob("*") if p.is_file()]


async def test_purge_drops_only_stale_remote_media(database: Database, tmp_path: Path) -> None:
    fetcher = FakeFetcher(
        {
            ("remote.example", "old"): (b"old bytes", "text/plain"),
            ("remote.example", "new"): (b"new bytes", "text/plain"),
        }
    )
    service, clock = await make_service(database, tmp_path, fetcher)

    async def local_chunks() -> AsyncIterator[bytes]:
        yield b"local bytes"

    local = await service.upload("@u:test.local", local_chunks(), content_type=None, filename=None)
    old = await service.get_download("remote.example", "old")
    clock.advance(3600)
    cutoff = clock.time_ms()
    clock.advance(3600)
    await service.get_download("remote.example", "new")
    assert await service.purge_remote_cache(cutoff) == 1
    assert not old.path.exists()
    await service.get_download("remote.example", "new")
    await service.get_download("test.local", local.rsplit("/", 1)[1])
    await service.get_download("remote.example", "old")  # fetched again
    assert fetcher.calls.count(("remote.example", "old")) == 2


async def test_quarantine_of_uncached_remote_media_sticks(
    database: Database, tmp_path: Path
) -> None:
    data = png_bytes(100, 100)
    fetcher = FakeFetcher({("remote.example", "bad"): (data, "image/png")})
    service, _ = await make_service(database, tmp_path, fetcher)
    assert await service.set_quarantined("remote.example", "bad", True)
    with pytest.raises(NotFound):
        await service.get_download("remote.example", "bad")
    with pytest.raises(NotFound):
        await service.get_thumbnail("remote.example", "bad", 32, 32, "crop")
    assert fetcher.calls == []  # refused without fetching anything
    # Released: fetched and served as any remote media.
    assert await service.set_quarantined("remote.example", "bad", False)
    served = await service.get_download("remote.example", "bad")
    assert served.path.read_bytes() == data
    assert fetcher.calls == [("remote.example", "bad")]


async def test_quarantine_holds_against_a_fetch_in_flight(
    database: Database, tmp_path: Path
) -> None:
    fetcher = FakeFetcher({("remote.example", "bad"): (b"bad bytes", "text/plain")})
    service, _ = await make_service(database, tmp_path, fetcher)
    fetch_media = fetcher.fetch_media

    async def quarantined_while_fetching(
        server_name: str, media_id: str, *, max_size: int, timeout_ms: int
    ) -> RemoteMedia:
        await service.set_quarantined(server_name, media_id, True)
        return await fetch_media(server_name, media_id, max_size=max_size, timeout_ms=timeout_ms)

    fetcher.fetch_media = quarantined_while_fetching  # type: ignore[method-assign]
    with pytest.raises(NotFound):
        await service.get_download("remote.example", "bad")
    content = tmp_path / "media" / "content"
    assert not [p for p in content.rglob("*") if p.is_file()]  # the bytes were not kept


async def test_purge_keeps_quarantined_remote_media_quarantined(
    database: Database, tmp_path: Path
) -> None:
    fetcher = FakeFetcher({("remote.example", "bad"): (b"bad bytes", "text/plain")})
    service, clock = await make_service(database, tmp_path, fetcher)
    await service.get_download("remote.example", "bad")
    await service.set_quarantined("remote.example", "bad", True)
    await service.set_quarantined("remote.example", "never-fetched", True)
    clock.advance(3600)
    assert await service.purge_remote_cache(clock.time_ms()) == 0
    for media_id in ("bad", "never-fetched"):
        with pytest.raises(NotFound):
            await service.get_download("remote.example", media_id)
    assert fetcher.calls == [("remote.example", "bad")]
