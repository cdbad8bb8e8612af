-- Push (client-server API: Push Notifications): users' push rules and their changes
-- to server-default rules, the actions push rules gave events for each user (unread
-- counts, /notifications), read positions, pushers with their delivery position,
-- and how far push evaluation has got in the room-events stream.

-- User-defined rules; position orders the rules of one kind (0 = most important).
CREATE TABLE push_rules (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    conditions TEXT,
    pattern TEXT,
    actions TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (user_id, kind, rule_id)
);

-- A user's changes to server-default rules (NULL: unchanged).
CREATE TABLE push_rule_defaults (
    user_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    enabled BOOLEAN,
    actions TEXT,
    PRIMARY KEY (user_id, rule_id)
);

-- Events that notify a user (actions containing "notify"). thread_id is the
-- thread root's event ID, or 'main' for the main timeline.
CREATE TABLE event_push_actions (
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    actions TEXT NOT NULL,
    highlight BOOLEAN NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX event_push_actions_user_stream ON event_push_actions (user_id, stream_ordering);
CREATE INDEX event_push_actions_user_room ON event_push_actions (user_id, room_id, stream_ordering);

-- How far a user has read in a room: thread_id '' for an unthreaded receipt (all
-- threads), 'main' or a thread root for a threaded one.
CREATE TABLE push_read_positions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);

-- Every room event up to this position has had push rules evaluated.
CREATE TABLE push_evaluation_position (
    singleton INTEGER NOT NULL PRIMARY KEY,
    stream_ordering BIGINT NOT NULL
);
INSERT INTO push_evaluation_position (singleton, stream_ordering)
    SELECT 1, COALESCE(MAX(stream_ordering), 0) FROM events;

-- HTTP pushers. last_stream_ordering is the delivery queue's position: every
-- notification of the user up to it was sent (or given up on).
CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    kind TEXT NOT NULL,
    device_id TEXT,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    pushkey_ts BIGINT NOT NULL,
    last_stream_ordering BIGINT NOT NULL,
    failing_since_ms BIGINT,
    PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey);
