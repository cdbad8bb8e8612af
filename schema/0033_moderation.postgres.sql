-- Moderation: media protected from bulk quarantine and who quarantined what, the
-- reports users file against events, rooms and users, the per-user server notices
-- rooms, and the rooms each federation destination shares with us, and the
-- sequences that hand out the report IDs to every process sharing the database.

-- safe_from_quarantine: never quarantined by the bulk (room, user) admin operations.
ALTER TABLE media ADD COLUMN safe_from_quarantine BOOLEAN NOT NULL DEFAULT FALSE;
-- the admin who quarantined it (NULL: not quarantined, or quarantined before this)
ALTER TABLE media ADD COLUMN quarantined_by TEXT;
CREATE INDEX media_user ON media (user_id, created_ts);

-- POST /rooms/{roomId}/report/{eventId}: content is the request body as sent.
CREATE TABLE event_reports (
    id BIGINT NOT NULL PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT,
    content TEXT NOT NULL
);
CREATE INDEX event_reports_room ON event_reports (room_id);
CREATE INDEX event_reports_user ON event_reports (user_id);

-- POST /rooms/{roomId}/report
CREATE TABLE room_reports (
    id BIGINT NOT NULL PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL
);

-- POST /users/{userId}/report (reports against local users only)
CREATE TABLE user_reports (
    id BIGINT NOT NULL PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    target_user_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL
);

-- The room server notices reach each user in (created on the first notice).
CREATE TABLE server_notice_rooms (
    user_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL
);
CREATE INDEX server_notice_rooms_room ON server_notice_rooms (room_id);

-- Rooms whose events were queued for a destination, with the stream ordering of the
-- latest one (GET /_synapse/admin/v1/federation/destinations/{destination}/rooms).
CREATE TABLE federation_destination_rooms (
    destination TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (destination, room_id)
);

CREATE SEQUENCE event_report_id_seq;
CREATE SEQUENCE room_report_id_seq;
CREATE SEQUENCE user_report_id_seq;
