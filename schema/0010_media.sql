-- The media repository: metadata of local uploads and of cached remote media, and
-- of the thumbnails made of them. The bytes live on disk under media_store_path,
-- addressed by their SHA-256 (identical content is stored once); a file is removed
-- when no row of either table refers to its digest any more.

CREATE TABLE media (
    -- this server's name for local media, the remote server's for cached remote media
    origin TEXT NOT NULL,
    media_id TEXT NOT NULL,
    -- the uploader of local media; NULL for remote media
    user_id TEXT,
    content_type TEXT,
    upload_name TEXT,
    -- NULL until the content is there (an ID made by /create awaiting its upload)
    size BIGINT,
    sha256 TEXT,
    -- upload time of local media; the time the cache was populated for remote media
    created_ts BIGINT NOT NULL,
    -- for an ID made by /create: when it expires if nothing is uploaded to it
    unused_expires_ts BIGINT,
    quarantined BOOLEAN NOT NULL DEFAULT FALSE,
    last_access_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id)
);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_pending_by_user ON media (user_id, unused_expires_ts);
CREATE INDEX media_last_access ON media (origin, last_access_ts);

CREATE TABLE media_thumbnails (
    origin TEXT NOT NULL,
    media_id TEXT NOT NULL,
    -- the configured (or, with dynamic thumbnails, requested) size and method
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    method TEXT NOT NULL,
    animated BOOLEAN NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id, width, height, method, animated)
);
CREATE INDEX media_thumbnails_sha256 ON media_thumbnails (sha256);
