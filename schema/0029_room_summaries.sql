-- Per-room summaries for sliding sync (MSC4186): what a room list sorts and filters
-- on, and the inputs of a room's name, kept up to date inside each event's own
-- transaction so a window of 20 rooms out of thousands reads 20 rows, not the
-- state of every room. One row per room this server holds current state for; rooms
-- held before this migration are filled at start-up (RoomSummaries.fill_missing).
CREATE TABLE room_summaries (
    room_id TEXT NOT NULL PRIMARY KEY,
    -- stream ordering of the latest accepted "bump" event in the live timeline
    -- (homeserver/sliding_sync/summaries.py BUMP_EVENT_TYPES); 0 if none
    bump_stamp BIGINT NOT NULL DEFAULT 0,
    -- from the current state: m.room.create content.type, m.room.encryption,
    -- m.room.name, m.room.avatar, m.room.canonical_alias, m.room.tombstone
    room_type TEXT,
    is_encrypted BOOLEAN NOT NULL DEFAULT FALSE,
    name TEXT,
    avatar TEXT,
    canonical_alias TEXT,
    tombstone_successor TEXT,
    -- current members with membership join / invite
    joined_count INTEGER NOT NULL DEFAULT 0,
    invited_count INTEGER NOT NULL DEFAULT 0
);
