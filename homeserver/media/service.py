"""The media repository (client-server API: Content repository).

Uploads (direct, and asynchronous with ``/create`` then ``PUT``), downloads of local
media and of remote media through an optional `RemoteMediaFetcher`, thumbnails, the
freeze of the deprecated unauthenticated endpoints, and the admin operations
(quarantine, delete, purge of the remote cache).

Blobs are shared between media with equal content, so committing a blob together
with the row that refers to it, and removing a blob nothing refers to any more, both
happen under one lock: a blob is never deleted between another upload finding it on
disk and recording its row. (The lock is per process; several media-writing
processes would need a database lock instead.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.errors import Forbidden, LimitExceeded, MatrixError, NotFound, TooLarge
from homeserver.media.filestore import MediaFileStore, StagedBlob
from homeserver.media.headers import base_content_type
from homeserver.media.ids import check_media_location, mxc_uri, new_media_id
from homeserver.media.remote import RemoteMediaFetcher, remote_too_large
from homeserver.media.thumbnailer import (
    THUMBNAILABLE_TYPES,
    CannotThumbnail,
    Method,
    TargetSize,
    Thumbnailer,
    generated_size,
    select_size,
)
from storage.media import MediaRecord, MediaStore, ThumbnailRecord

DEFAULT_TIMEOUT_MS = 20_000
# Inline-servable image types a thumbnail may have; small originals of these are
# served as their own thumbnail.
THUMBNAIL_CONTENT_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/apng", "image/gif", "image/webp"}
)
_THUMBNAIL_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/apng": "png",
    "image/gif": "gif",
    "image/webp": "webp",
}
ACCESS_RECORD_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class MediaLimits:
    max_upload_size: int
    # Pending (created, not yet uploaded, unexpired) IDs a user may hold at once.
    max_pending_uploads: int = 5
    # How long an ID made by /create waits for its upload (the spec recommends 24h).
    unused_expiry_ms: int = 24 * 3600 * 1000
    # Longest a download waits for content that is not uploaded yet (timeout_ms cap).
    max_wait_ms: int = 60_000


@dataclass(frozen=True)
class ServedMedia:
    """A file to send: where it is and how to describe it."""

    path: Path
    content_type: str | None
    filename: str | None
    size: int


class NotYetUploaded(MatrixError):
    def __init__(self) -> None:
        super().__init__(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")


class CannotOverwrite(MatrixError):
    def __init__(self) -> None:
        super().__init__(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")


class MediaService:
    def __init__(
        self,
        server_name: str,
        store: MediaStore,
        files: MediaFileStore,
        thumbnailer: Thumbnailer,
        clock: Clock,
        limits: MediaLimits,
        *,
        thumbnail_sizes: Sequence[TargetSize],
        dynamic_thumbnails: bool = False,
        unauthenticated_media_allowed_before: int | None = None,
        remote: RemoteMediaFetcher | None = None,
    ) -> None:
        self.server_name = server_name
        self.limits = limits
        self._store = store
        self._files = files
        self._thumbnailer = thumbnailer
        self._clock = clock
        self._thumbnail_sizes = tuple(thumbnail_sizes)
        self._dynamic_thumbnails = dynamic_thumbnails
        self._legacy_before = unauthenticated_media_allowed_before
        self._remote = remote
        self._blob_lock = asyncio.Lock()
        self._uploaded: dict[str, asyncio.Event] = {}
        self._thumbnailing: dict[
            tuple[str, str, int, int, str, bool], asyncio.Task[ServedMedia]
        ] = {}

    # -- uploads ------------------------------------------------------------------------

    def check_declared_length(self, content_length: int | None) -> None:
        """Refuse an upload by its Content-Length before reading any of it."""
        if content_length is not None and content_length > self.limits.max_upload_size:
            raise TooLarge(f"Upload is larger than {self.limits.max_upload_size} bytes")

    async def upload(
        self,
        user_id: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None,
        filename: str | None,
        content_length: int | None = None,
    ) -> str:
        """Store new content (POST /_matrix/media/v3/upload); return its mxc:// URI.

        A declared ``content_length`` over the limit is refused before anything is read.
        """
        self.check_declared_length(content_length)
        media_id = new_media_id()
        now = self._clock.time_ms()

        async def record(staged: StagedBlob) -> bool:
            return await self._store.insert_media(
                self.server_name,
                media_id,
                user_id=user_id,
                content_type=content_type,
                upload_name=filename,
                size=staged.size,
                sha256=staged.sha256,
                now_ms=now,
            )

        staged = await self._files.stage(chunks, self.limits.max_upload_size, self._too_large())
        if not await self._commit(staged, record):
            raise MatrixError(500, "M_UNKNOWN", "Media ID collision")
        return mxc_uri(self.server_name, media_id)

    async def create(self, user_id: str) -> tuple[str, int]:
        """Reserve an mxc:// URI for a later upload (POST /_matrix/media/v1/create)."""
        now = self._clock.time_ms()
        await self._store.delete_expired_pending(now)
        pending = await self._store.pending_uploads(user_id, now)
        if len(pending) >= self.limits.max_pending_uploads:
            raise LimitExceeded(max(1, pending[0] - now))
        media_id = new_media_id()
        expires = now + self.limits.unused_expiry_ms
        await self._store.create_pending(self.server_name, media_id, user_id, now, expires)
        return mxc_uri(self.server_name, media_id), expires

    async def check_can_upload_to(self, user_id: str, server_name: str, media_id: str) -> None:
        """The checks of PUT /_matrix/media/v3/upload/{serverName}/{mediaId}, made before
        its body is read: 404 unknown or expired, 403 not the creator, 409 already there."""
        check_media_location(server_name, media_id)
        if server_name != self.server_name:
            raise NotFound("Unknown media ID")
        record = await self._store.get_media(server_name, media_id)
        if record is None or (not record.uploaded and self._expired(record)):
            raise NotFound("Unknown media ID")
        if record.user_id != user_id:
            raise Forbidden("You did not create this media ID")
        if record.uploaded:
            raise CannotOverwrite()

    async def upload_to(
        self,
        user_id: str,
        server_name: str,
        media_id: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None,
        filename: str | None,
        content_length: int | None = None,
    ) -> None:
        """Upload content to a reserved ID (PUT /_matrix/media/v3/upload/{serverName}/{mediaId}).

        Refuses (404, 403, 409, then 413 for a declared length) before reading anything.
        """
        await self.check_can_upload_to(user_id, server_name, media_id)
        self.check_declared_length(content_length)
        staged = await self._files.stage(chunks, self.limits.max_upload_size, self._too_large())

        async def record(staged: StagedBlob) -> bool:
            return await self._store.complete_pending(
                server_name,
                media_id,
                user_id=user_id,
                content_type=content_type,
                upload_name=filename,
                size=staged.size,
                sha256=staged.sha256,
                now_ms=self._clock.time_ms(),
            )

        if not await self._commit(staged, record):
            # Someone else's upload won the race, or the ID expired meanwhile.
            await self.check_can_upload_to(user_id, server_name, media_id)
            raise NotFound("Unknown media ID")
        event = self._uploaded.pop(media_id, None)
        if event is not None:
            event.set()

    # -- downloads ----------------------------------------------------------------------

    async def get_download(
        self,
        server_name: str,
        media_id: str,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        allow_remote: bool = True,
        legacy: bool = False,
    ) -> ServedMedia:
        """The content behind an mxc:// URI, fetching remote media if need be.

        ``legacy`` marks the deprecated unauthenticated endpoints, which serve only
        media from before ``unauthenticated_media_allowed_before`` (the freeze).
        """
        record = await self._servable(server_name, media_id, timeout_ms, allow_remote, legacy)
        assert record.sha256 is not None and record.size is not None
        return ServedMedia(
            self._files.path_for(record.sha256),
            record.content_type,
            record.upload_name,
            record.size,
        )

    async def _servable(
        self, server_name: str, media_id: str, timeout_ms: int, allow_remote: bool, legacy: bool
    ) -> MediaRecord:
        check_media_location(server_name, media_id)
        if server_name == self.server_name:
            record = await self._wait_for_local(media_id, timeout_ms)
        else:
            record = await self._remote_record(server_name, media_id, timeout_ms, allow_remote)
        if record.quarantined:
            raise NotFound("Unknown media")
        if legacy and (self._legacy_before is None or record.created_ts >= self._legacy_before):
            raise NotFound("Unknown media")
        now = self._clock.time_ms()
        if now - record.last_access_ts >= ACCESS_RECORD_INTERVAL_MS:
            await self._store.touch(record.origin, record.media_id, now)
        return record

    async def _wait_for_local(self, media_id: str, timeout_ms: int) -> MediaRecord:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout_ms, 0), self.limits.max_wait_ms) / 1000
        while True:
            record = await self._store.get_media(self.server_name, media_id)
            if record is None or (not record.uploaded and self._expired(record)):
                raise NotFound("Unknown media")
            if record.uploaded:
                return record
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NotYetUploaded()
            event = self._uploaded.setdefault(media_id, asyncio.Event())
            # Wake on a local upload at once; poll for one made by another process.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 1.0))

    async def _remote_record(
        self, server_name: str, media_id: str, timeout_ms: int, allow_remote: bool
    ) -> MediaRecord:
        record = await self._store.get_media(server_name, media_id)
        if record is not None and (record.uploaded or record.quarantined):
            return record  # cached, or quarantined before it was (a marker row)
        if not allow_remote or self._remote is None:
            raise NotFound("Unknown media")
        remote = await self._remote.fetch_media(
            server_name,
            media_id,
            max_size=self.limits.max_upload_size,
            timeout_ms=min(max(timeout_ms, 0), self.limits.max_wait_ms),
        )
        staged = await self._files.stage(
            remote.chunks,
            self.limits.max_upload_size,
            remote_too_large(),
        )

        async def record_remote(staged: StagedBlob) -> bool:
            # False when a concurrent fetch cached it first (either copy will do) or it
            # was quarantined meanwhile; the blob goes if nothing else uses it.
            return await self._store.insert_media(
                server_name,
                media_id,
                user_id=None,
                content_type=remote.content_type,
                upload_name=remote.filename,
                size=staged.size,
                sha256=staged.sha256,
                now_ms=self._clock.time_ms(),
            )

        await self._commit(staged, record_remote)
        record = await self._store.get_media(server_name, media_id)
        if record is None or not (record.uploaded or record.quarantined):
            raise NotFound("Unknown media")
        return record

    # -- thumbnails ---------------------------------------------------------------------

    async def get_thumbnail(
        self,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: Method,
        *,
        animated: bool = False,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        allow_remote: bool = True,
        legacy: bool = False,
    ) -> ServedMedia:
        """A thumbnail per the spec's Thumbnails rules, made once and stored.

        Never smaller than requested unless the original is: a request larger than
        every configured size gets a size made for it (`generated_size`), and an
        original no larger than the request is served as it is when it can be.
        """
        record = await self._servable(server_name, media_id, timeout_ms, allow_remote, legacy)
        if base_content_type(record.content_type) not in THUMBNAILABLE_TYPES:
            raise CannotThumbnail()
        target: TargetSize | None
        if self._dynamic_thumbnails or not self._thumbnail_sizes:
            target = TargetSize(width, height, method)
        else:
            target = select_size(self._thumbnail_sizes, width, height, method)
        if target is not None:
            stored = await self._stored_thumbnail(record, target, animated)
            if stored is not None:
                return stored
        assert record.sha256 is not None and record.size is not None
        source = self._files.path_for(record.sha256)
        info = await self._thumbnailer.inspect(source)
        animated = animated and info.animated
        original_type = base_content_type(record.content_type)
        original = ServedMedia(source, original_type, _thumbnail_name(original_type), record.size)
        servable_as_is = original_type in THUMBNAIL_CONTENT_TYPES and (
            animated or not info.animated
        )
        if servable_as_is and info.width <= width and info.height <= height:
            # Smaller than asked for: the spec wants the original, not a thumbnail.
            return original
        if target is None:
            target = generated_size((info.width, info.height), width, height, method)
            if servable_as_is and (target.width, target.height) == (info.width, info.height):
                return original  # the request needs the original's full size
        stored = await self._stored_thumbnail(record, target, animated)
        if stored is not None:
            return stored
        key = (record.origin, record.media_id, target.width, target.height, target.method, animated)
        task = self._thumbnailing.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make_thumbnail(record, source, target, animated))
            self._thumbnailing[key] = task
            task.add_done_callback(lambda _: self._thumbnailing.pop(key, None))
        return await asyncio.shield(task)

    async def _stored_thumbnail(
        self, record: MediaRecord, target: TargetSize, animated: bool
    ) -> ServedMedia | None:
        thumb = await self._store.get_thumbnail(
            record.origin, record.media_id, target.width, target.height, target.method, animated
        )
        if thumb is None:
            return None
        return _served_thumbnail(self._files.path_for(thumb.sha256), thumb.content_type, thumb.size)

    async def _make_thumbnail(
        self, record: MediaRecord, source: Path, target: TargetSize, animated: bool
    ) -> ServedMedia:
        thumb = await self._thumbnailer.make(source, target, animated=animated)
        staged = await self._files.stage_bytes(thumb.data)

        async def record_thumbnail(staged: StagedBlob) -> bool:
            await self._store.insert_thumbnail(
                ThumbnailRecord(
                    origin=record.origin,
                    media_id=record.media_id,
                    width=target.width,
                    height=target.height,
                    method=target.method,
                    animated=animated,
                    content_type=thumb.content_type,
                    size=staged.size,
                    sha256=staged.sha256,
                ),
                self._clock.time_ms(),
            )
            return True

        await self._commit(staged, record_thumbnail)
        return _served_thumbnail(
            self._files.path_for(staged.sha256), thumb.content_type, staged.size
        )

    # -- admin --------------------------------------------------------------------------

    async def set_quarantined(
        self,
        server_name: str,
        media_id: str,
        quarantined: bool,
        quarantined_by: str | None = None,
    ) -> bool:
        """Quarantine (or release) media: quarantined media is answered with 404.

        Remote media is quarantined whether or not it is cached yet: later fetches
        are refused too, until it is released. False for unknown local media.
        """
        check_media_location(server_name, media_id)
        if server_name == self.server_name:
            return await self._store.set_quarantined(
                server_name, media_id, quarantined, quarantined_by
            )
        if quarantined:
            await self._store.quarantine_remote(
                server_name, media_id, self._clock.time_ms(), quarantined_by
            )
        else:
            await self._store.release_remote(server_name, media_id)
        return True

    async def quarantine_many(self, uris: Sequence[tuple[str, str]], quarantined_by: str) -> int:
        """Quarantine media by (server name, media ID), as a bulk operation: local media
        protected from quarantine is left alone, unknown local media is skipped,
        remote media is quarantined cached or not. Return how many were quarantined."""
        local = [media_id for origin, media_id in uris if origin == self.server_name]
        count = await self._store.quarantine_unprotected(self.server_name, local, quarantined_by)
        now = self._clock.time_ms()
        for origin, media_id in sorted(set(uris)):
            if origin != self.server_name:
                await self._store.quarantine_remote(origin, media_id, now, quarantined_by)
                count += 1
        return count

    async def quarantine_of_user(self, user_id: str, quarantined_by: str) -> int:
        """Quarantine every unprotected local media the user uploaded; return how many."""
        return await self._store.quarantine_of_user(self.server_name, user_id, quarantined_by)

    async def set_protected(self, media_id: str, protected: bool) -> None:
        """Protect local media from the bulk quarantines (or lift that)."""
        check_media_location(self.server_name, media_id)
        if not await self._store.set_protected(self.server_name, media_id, protected):
            raise NotFound("Unknown media")

    async def info(self, server_name: str, media_id: str) -> MediaRecord:
        """The row of local or cached remote media (M_NOT_FOUND if there is none, or
        only the quarantine marker of uncached remote media)."""
        check_media_location(server_name, media_id)
        record = await self._store.get_media(server_name, media_id)
        if record is None or (server_name != self.server_name and not record.uploaded):
            raise NotFound("Unknown media")
        return record

    async def delete_local(self, server_name: str, media_id: str) -> None:
        """Delete local media, its thumbnails, and the files nothing else uses."""
        check_media_location(server_name, media_id)
        if server_name != self.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Can only delete local media")
        digests = await self._store.delete_media(server_name, media_id)
        if digests is None:
            raise NotFound("Unknown media")
        await self._release(digests)

    async def delete_local_older(
        self, before_ts: int, size_gt: int, *, keep_profiles: bool
    ) -> list[str]:
        """Delete local media last accessed before ``before_ts`` and larger than
        ``size_gt`` bytes (not quarantined or protected media; with ``keep_profiles``,
        not avatars), with their thumbnails and files; return the deleted IDs."""
        deleted: list[str] = []
        candidates = await self._store.local_media_before(
            self.server_name, before_ts, size_gt, keep_profiles=keep_profiles
        )
        for media_id in candidates:
            digests = await self._store.delete_media(self.server_name, media_id)
            if digests is not None:
                deleted.append(media_id)
                await self._release(digests)
        return deleted

    async def list_user_media(
        self, user_id: str, order_column: str, backwards: bool, limit: int, offset: int
    ) -> tuple[list[MediaRecord], int]:
        """A page of the local media ``user_id`` uploaded, and how many in all."""
        return await self._store.list_user_media(
            self.server_name, user_id, order_column, backwards, limit, offset
        )

    async def purge_remote_cache(self, before_ts: int) -> int:
        """Drop cached remote media not accessed since ``before_ts``; return how many."""
        deleted = 0
        stale = await self._store.remote_media_last_accessed_before(self.server_name, before_ts)
        for origin, media_id in stale:
            digests = await self._store.delete_media(origin, media_id)
            if digests is not None:
                deleted += 1
                await self._release(digests)
        return deleted

    # -- blobs --------------------------------------------------------------------------

    async def _commit(
        self, staged: StagedBlob, record: Callable[[StagedBlob], Awaitable[bool]]
    ) -> bool:
        """Commit a staged blob and record the row naming it, atomically with respect
        to deletions; a blob that ends up unreferenced is removed again."""
        try:
            async with self._blob_lock:
                await self._files.commit(staged)
                recorded = await record(staged)
                if not recorded and not await self._store.is_blob_referenced(staged.sha256):
                    await self._files.delete(staged.sha256)
                return recorded
        finally:
            await self._files.discard(staged)

    async def _release(self, digests: Sequence[str]) -> None:
        async with self._blob_lock:
            for digest in digests:
                if not await self._store.is_blob_referenced(digest):
                    await self._files.delete(digest)

    def _expired(self, record: MediaRecord) -> bool:
        expires = record.unused_expires_ts
        return expires is not None and expires <= self._clock.time_ms()

    def _too_large(self) -> TooLarge:
        return TooLarge(f"Upload is larger than {self.limits.max_upload_size} bytes")


def _thumbnail_name(content_type: str) -> str:
    return f"thumbnail.{_THUMBNAIL_EXTENSIONS.get(content_type, 'png')}"


def _served_thumbnail(path: Path, content_type: str, size: int) -> ServedMedia:
    return ServedMedia(path, content_type, _thumbnail_name(content_type), size)


def media_service_from_config(
    config: HomeserverConfig,
    store: MediaStore,
    clock: Clock,
    remote: RemoteMediaFetcher | None = None,
) -> MediaService:
    """The media service as the config describes it (federation passes ``remote``)."""
    return MediaService(
        config.server_name,
        store,
        MediaFileStore(Path(config.media_store_path)),
        Thumbnailer(config.max_image_pixels),
        clock,
        MediaLimits(max_upload_size=config.max_upload_size),
        thumbnail_sizes=[TargetSize(s.width, s.height, s.method) for s in config.thumbnail_sizes],
        dynamic_thumbnails=config.dynamic_thumbnails,
        unauthenticated_media_allowed_before=config.unauthenticated_media_allowed_before,
        remote=remote,
    )
