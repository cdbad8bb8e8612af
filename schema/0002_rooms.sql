-- Rooms as persisted event DAGs: events with their edges, state at each event
-- (state groups stored as deltas), current state, forward extremities, and the
-- room-events stream.

CREATE TABLE rooms (
    room_id TEXT NOT NULL PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT,
    -- published in this server's room directory
    is_public BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts BIGINT NOT NULL
);

-- Every event this server holds. stream_ordering is the position in the
-- room-events stream: positive for events in the live timeline, negative for
-- backfilled history, NULL for outliers (events known only as auth or state).
CREATE TABLE events (
    event_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT UNIQUE,
    depth BIGINT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    received_ts BIGINT NOT NULL,
    json TEXT NOT NULL,
    outlier BOOLEAN NOT NULL DEFAULT FALSE,
    rejected_reason TEXT,
    soft_failed BOOLEAN NOT NULL DEFAULT FALSE,
    -- the state group of the state *after* this event
    state_group BIGINT,
    -- the ID of the redaction that redacted this event (applied when served)
    redacted_by TEXT,
    -- for a redaction: the event it redacts
    redacts TEXT,
    -- for a state event: the event it replaced in the state (for prev_content)
    replaces_state TEXT,
    -- m.relates_to of the content, for relations, threads and aggregations
    relates_to_id TEXT,
    rel_type TEXT,
    -- the transaction the sender's device used, for idempotent sends
    txn_device_id TEXT,
    txn_id TEXT
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_topo ON events (room_id, depth, stream_ordering);
CREATE INDEX events_relates ON events (relates_to_id, rel_type);
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);
CREATE INDEX events_redacts ON events (redacts);
CREATE UNIQUE INDEX events_txn ON events (sender, txn_device_id, txn_id);

CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_id)
);

CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- State groups: a full snapshot (prev_group NULL) or a delta over prev_group.
CREATE TABLE state_groups (
    id BIGINT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group BIGINT,
    -- length of the delta chain down to a full snapshot
    chain_length INTEGER NOT NULL
);

CREATE TABLE state_group_entries (
    state_group BIGINT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    -- NULL in a delta removes the key (state resolution can drop keys)
    event_id TEXT,
    PRIMARY KEY (state_group, type, state_key)
);

CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    -- for m.room.member: the membership, so "rooms of a user" needs no JSON
    membership TEXT,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_member ON current_state (state_key, type);

-- Every membership event, for member lists "at" a point and membership history.
CREATE TABLE room_memberships (
    event_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    membership TEXT NOT NULL,
    stream_ordering BIGINT
);
CREATE INDEX room_memberships_user ON room_memberships (user_id, room_id);

-- Rooms a user asked to forget (after leaving).
CREATE TABLE forgotten_rooms (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

CREATE TABLE room_aliases (
    alias TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL,
    servers TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- Stripped state given to invitees and knockers, by membership event.
CREATE TABLE invite_state (
    event_id TEXT NOT NULL PRIMARY KEY,
    stripped_state TEXT NOT NULL
);

CREATE TABLE user_filters (
    user_id TEXT NOT NULL,
    filter_id BIGINT NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
