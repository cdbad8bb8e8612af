"""The media repository: content-addressed storage on disk, metadata in the database,
thumbnails, URL previews, and the hook (`RemoteMediaFetcher`) for remote media."""
