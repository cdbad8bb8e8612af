"""Media repository metadata: local uploads, cached remote media and their thumbnails.

A row without content (``sha256`` NULL) is either an ID made by ``/create`` awaiting
its upload (local, with ``unused_expires_ts``) or the quarantine marker of remote
media that is not cached (``quarantined``).

The bytes are not here: rows name them by SHA-256 and the service keeps them on disk.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from storage.database import Database, Row, Transaction


@dataclass(frozen=True)
class MediaRecord:
    origin: str
    media_id: str
    user_id: str | None
    content_type: str | None
    upload_name: str | None
    size: int | None
    sha256: str | None
    created_ts: int
    unused_expires_ts: int | None
    quarantined: bool
    last_access_ts: int
    # never quarantined by the bulk (room, user) admin operations
    safe_from_quarantine: bool = False
    quarantined_by: str | None = None

    @property
    def uploaded(self) -> bool:
        """Whether the content is there (False for a created ID awaiting its upload)."""
        return self.sha256 is not None


@dataclass(frozen=True)
class ThumbnailRecord:
    origin: str
    media_id: str
    width: int
    height: int
    method: str
    animated: bool
    content_type: str
    size: int
    sha256: str


_MEDIA_COLUMNS = (
    "origin, media_id, user_id, content_type, upload_name, size, sha256, created_ts,"
    " unused_expires_ts, quarantined, last_access_ts, safe_from_quarantine, quarantined_by"
)
_THUMBNAIL_COLUMNS = "origin, media_id, width, height, method, animated, content_type, size, sha256"


def _media(row: Row) -> MediaRecord:
    values = list(row)
    values[9] = bool(values[9])
    values[11] = bool(values[11])
    return MediaRecord(*values)


def _thumbnail(row: Row) -> ThumbnailRecord:
    values = list(row)
    values[5] = bool(values[5])
    return ThumbnailRecord(*values)


class MediaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- media rows -------------------------------------------------------------------

    async def get_media(self, origin: str, media_id: str) -> MediaRecord | None:
        row = await self.db.fetchone(
            "get_media",
            f"SELECT {_MEDIA_COLUMNS} FROM media WHERE origin = $1 AND media_id = $2",
            origin,
            media_id,
        )
        return None if row is None else _media(row)

    async def insert_media(
        self,
        origin: str,
        media_id: str,
        *,
        user_id: str | None,
        content_type: str | None,
        upload_name: str | None,
        size: int,
        sha256: str,
        now_ms: int,
    ) -> bool:
        """Record media whose content is stored; False if the ID is already taken."""
        changed = await self.db.execute(
            "insert_media",
            "INSERT INTO media (origin, media_id, user_id, content_type, upload_name, size,"
            " sha256, created_ts, last_access_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
            " ON CONFLICT (origin, media_id) DO NOTHING",
            origin,
            media_id,
            user_id,
            content_type,
            upload_name,
            size,
            sha256,
            now_ms,
        )
        return changed > 0

    async def create_pending(
        self, origin: str, media_id: str, user_id: str, now_ms: int, expires_ts: int
    ) -> None:
        """Reserve an ID for a later upload (POST /create)."""
        await self.db.execute(
            "create_pending_media",
            "INSERT INTO media (origin, media_id, user_id, created_ts, unused_expires_ts,"
            " last_access_ts) VALUES ($1, $2, $3, $4, $5, $4)",
            origin,
            media_id,
            user_id,
            now_ms,
            expires_ts,
        )

    async def pending_uploads(self, user_id: str, now_ms: int) -> list[int]:
        """The expiry times of the user's reserved IDs that still await their upload."""
        rows = await self.db.fetchall(
            "get_pending_uploads",
            "SELECT unused_expires_ts FROM media WHERE user_id = $1 AND sha256 IS NULL"
            " AND unused_expires_ts > $2 ORDER BY unused_expires_ts",
            user_id,
            now_ms,
        )
        return [int(r[0]) for r in rows]

    async def complete_pending(
        self,
        origin: str,
        media_id: str,
        *,
        user_id: str,
        content_type: str | None,
        upload_name: str | None,
        size: int,
        sha256: str,
        now_ms: int,
    ) -> bool:
        """Attach content to a reserved ID; False if it has content already or expired."""
        changed = await self.db.execute(
            "complete_pending_media",
            "UPDATE media SET content_type = $4, upload_name = $5, size = $6, sha256 = $7,"
            " created_ts = $8, last_access_ts = $8, unused_expires_ts = NULL"
            " WHERE origin = $1 AND media_id = $2 AND user_id = $3 AND sha256 IS NULL"
            " AND unused_expires_ts > $8",
            origin,
            media_id,
            user_id,
            content_type,
            upload_name,
            size,
            sha256,
            now_ms,
        )
        return changed > 0

    async def delete_expired_pending(self, now_ms: int) -> int:
        return await self.db.execute(
            "delete_expired_pending_media",
            "DELETE FROM media WHERE sha256 IS NULL AND unused_expires_ts <= $1",
            now_ms,
        )

    async def touch(self, origin: str, media_id: str, now_ms: int) -> None:
        await self.db.execute(
            "touch_media",
            "UPDATE media SET last_access_ts = $3 WHERE origin = $1 AND media_id = $2",
            origin,
            media_id,
            now_ms,
        )

    async def set_quarantined(
        self, origin: str, media_id: str, quarantined: bool, quarantined_by: str | None = None
    ) -> bool:
        """Quarantine (or release) media that has a row; False if it has none, or if
        it is protected from quarantine (as in Synapse, even quarantine by ID spares it)."""
        protected = " AND safe_from_quarantine = $5" if quarantined else ""
        args: list[object] = [
            origin,
            media_id,
            quarantined,
            quarantined_by if quarantined else None,
        ]
        if quarantined:
            args.append(False)
        changed = await self.db.execute(
            "set_media_quarantined",
            "UPDATE media SET quarantined = $3, quarantined_by = $4"
            f" WHERE origin = $1 AND media_id = $2{protected}",
            *args,
        )
        return changed > 0

    async def set_protected(self, origin: str, media_id: str, protected: bool) -> bool:
        """Protect media from the bulk quarantines (or lift that); False if unknown."""
        changed = await self.db.execute(
            "set_media_protected",
            "UPDATE media SET safe_from_quarantine = $3 WHERE origin = $1 AND media_id = $2",
            origin,
            media_id,
            protected,
        )
        return changed > 0

    async def quarantine_unprotected(
        self, origin: str, media_ids: Collection[str], quarantined_by: str
    ) -> int:
        """Quarantine those of ``media_ids`` (of ``origin``) that have a row and are not
        protected; return how many rows that covers."""
        count = 0
        ids = sorted(set(media_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(f"${i + 5}" for i in range(len(chunk)))
            count += await self.db.execute(
                "quarantine_media_many",
                "UPDATE media SET quarantined = $2, quarantined_by = $3 WHERE origin = $1"
                f" AND safe_from_quarantine = $4 AND media_id IN ({marks})",
                origin,
                True,
                quarantined_by,
                False,
                *chunk,
            )
        return count

    async def quarantine_of_user(self, origin: str, user_id: str, quarantined_by: str) -> int:
        """Quarantine every unprotected media the user uploaded; return how many."""
        return await self.db.execute(
            "quarantine_media_of_user",
            "UPDATE media SET quarantined = $3, quarantined_by = $4 WHERE origin = $1"
            " AND user_id = $2 AND safe_from_quarantine = $5",
            origin,
            user_id,
            True,
            quarantined_by,
            False,
        )

    async def local_media_before(
        self, origin: str, before_ts: int, size_gt: int, *, keep_profiles: bool
    ) -> list[str]:
        """Uploaded media of ``origin`` last accessed before ``before_ts`` and larger than
        ``size_gt`` bytes, neither quarantined nor protected; with ``keep_profiles``,
        not the avatar of a user (profile, user directory) or of a room."""
        sql = (
            "SELECT media_id FROM media WHERE origin = $1 AND sha256 IS NOT NULL"
            " AND last_access_ts < $2 AND size > $3 AND quarantined = $4"
            " AND safe_from_quarantine = $4"
        )
        if keep_profiles:
            uri = "CAST($5 AS TEXT) || media.media_id"
            sql += (
                f" AND NOT EXISTS (SELECT 1 FROM profiles WHERE profiles.avatar_url = {uri})"
                " AND NOT EXISTS (SELECT 1 FROM user_directory"
                f" WHERE user_directory.avatar_url = {uri})"
                " AND NOT EXISTS (SELECT 1 FROM room_summaries"
                f" WHERE room_summaries.avatar = {uri})"
            )
        args: list[object] = [origin, before_ts, size_gt, False]
        if keep_profiles:
            args.append(f"mxc://{origin}/")
        rows = await self.db.fetchall("get_local_media_before", sql + " ORDER BY media_id", *args)
        return [r[0] for r in rows]

    async def quarantine_remote(
        self, origin: str, media_id: str, now_ms: int, quarantined_by: str | None = None
    ) -> None:
        """Quarantine remote media whether or not it is cached: an uncached one gets a
        marker row (no content), which also keeps a later fetch from caching it."""
        await self.db.execute(
            "quarantine_remote_media",
            "INSERT INTO media (origin, media_id, created_ts, last_access_ts, quarantined,"
            " quarantined_by) VALUES ($1, $2, $3, $3, $4, $5)"
            " ON CONFLICT (origin, media_id) DO UPDATE SET quarantined = $4, quarantined_by = $5",
            origin,
            media_id,
            now_ms,
            True,
            quarantined_by,
        )

    async def release_remote(self, origin: str, media_id: str) -> None:
        """Lift the quarantine of remote media: a marker row goes, a cached copy is
        released."""

        async def txn_func(txn: Transaction) -> None:
            await txn.execute(
                "DELETE FROM media WHERE origin = $1 AND media_id = $2 AND sha256 IS NULL",
                origin,
                media_id,
            )
            await txn.execute(
                "UPDATE media SET quarantined = $3, quarantined_by = NULL"
                " WHERE origin = $1 AND media_id = $2",
                origin,
                media_id,
                False,
            )

        await self.db.run_transaction("release_remote_media", txn_func)

    async def delete_media(self, origin: str, media_id: str) -> list[str] | None:
        """Delete the media and its thumbnails; the digests they used, or None if unknown."""

        async def txn_func(txn: Transaction) -> list[str] | None:
            return await self._delete_media_txn(txn, origin, media_id)

        return await self.db.run_transaction("delete_media", txn_func)

    async def _delete_media_txn(
        self, txn: Transaction, origin: str, media_id: str
    ) -> list[str] | None:
        row = await txn.fetchone(
            "SELECT sha256 FROM media WHERE origin = $1 AND media_id = $2", origin, media_id
        )
        if row is None:
            return None
        digests = {
            r[0]
            for r in await txn.fetchall(
                "SELECT sha256 FROM media_thumbnails WHERE origin = $1 AND media_id = $2",
                origin,
                media_id,
            )
        }
        if row[0] is not None:
            digests.add(row[0])
        await txn.execute(
            "DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2", origin, media_id
        )
        await txn.execute("DELETE FROM media WHERE origin = $1 AND media_id = $2", origin, media_id)
        return sorted(digests)

    async def remote_media_last_accessed_before(
        self, local_origin: str, before_ts: int
    ) -> list[tuple[str, str]]:
        """Cached remote media not accessed since ``before_ts``; quarantined media is
        left out (dropping its row would drop the quarantine with it)."""
        rows = await self.db.fetchall(
            "get_remote_media_before",
            "SELECT origin, media_id FROM media WHERE origin <> $1 AND last_access_ts < $2"
            " AND quarantined = $3",
            local_origin,
            before_ts,
            False,
        )
        return [(r[0], r[1]) for r in rows]

    async def is_blob_referenced(self, sha256: str) -> bool:
        row = await self.db.fetchone(
            "is_media_blob_referenced",
            "SELECT 1 FROM media WHERE sha256 = $1"
            " UNION ALL SELECT 1 FROM media_thumbnails WHERE sha256 = $1",
            sha256,
        )
        return row is not None

    # -- thumbnails -------------------------------------------------------------------

    async def get_thumbnail(
        self, origin: str, media_id: str, width: int, height: int, method: str, animated: bool
    ) -> ThumbnailRecord | None:
        row = await self.db.fetchone(
            "get_media_thumbnail",
            f"SELECT {_THUMBNAIL_COLUMNS} FROM media_thumbnails WHERE origin = $1"
            " AND media_id = $2 AND width = $3 AND height = $4 AND method = $5"
            " AND animated = $6",
            origin,
            media_id,
            width,
            height,
            method,
            animated,
        )
        return None if row is None else _thumbnail(row)

    async def insert_thumbnail(self, thumbnail: ThumbnailRecord, now_ms: int) -> bool:
        """Record a generated thumbnail; False if an equal one was recorded meanwhile
        or the media is gone."""

        async def txn_func(txn: Transaction) -> bool:
            exists = await txn.fetchval(
                "SELECT 1 FROM media WHERE origin = $1 AND media_id = $2",
                thumbnail.origin,
                thumbnail.media_id,
            )
            if not exists:
                return False
            changed = await txn.execute(
                f"INSERT INTO media_thumbnails ({_THUMBNAIL_COLUMNS}, created_ts)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT (origin, media_id, width, height, method, animated) DO NOTHING",
                thumbnail.origin,
                thumbnail.media_id,
                thumbnail.width,
                thumbnail.height,
                thumbnail.method,
                thumbnail.animated,
                thumbnail.content_type,
                thumbnail.size,
                thumbnail.sha256,
                now_ms,
            )
            return changed > 0

        return await self.db.run_transaction("insert_media_thumbnail", txn_func)

    # -- media of a user (the admin API) -----------------------------------------------

    async def list_user_media(
        self, origin: str, user_id: str, order_column: str, backwards: bool, limit: int, offset: int
    ) -> tuple[list[MediaRecord], int]:
        """A page of the uploaded local media of ``user_id`` ordered by
        ``order_column`` (a column of ``media``; ties by ascending media ID), and how
        many there are in all."""
        if order_column not in USER_MEDIA_ORDER_COLUMNS:
            raise ValueError(f"not a media order column: {order_column}")
        direction = "DESC" if backwards else "ASC"
        nulls = "NULLS LAST" if backwards else "NULLS FIRST"
        total = await self.db.fetchval(
            "count_user_media",
            "SELECT COUNT(*) FROM media WHERE origin = $1 AND user_id = $2 AND sha256 IS NOT NULL",
            origin,
            user_id,
        )
        rows = await self.db.fetchall(
            "list_user_media",
            f"SELECT {_MEDIA_COLUMNS} FROM media"
            " WHERE origin = $1 AND user_id = $2 AND sha256 IS NOT NULL"
            f" ORDER BY {order_column} {direction} {nulls}, media_id ASC LIMIT $3 OFFSET $4",
            origin,
            user_id,
            limit,
            offset,
        )
        return [_media(r) for r in rows], int(total or 0)


USER_MEDIA_ORDER_COLUMNS = frozenset(
    {
        "media_id",
        "upload_name",
        "created_ts",
        "last_access_ts",
        "size",
        "content_type",
        "quarantined",
    }
)
