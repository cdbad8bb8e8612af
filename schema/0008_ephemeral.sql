-- Presence, receipts, account data (incl. tags and the fully-read marker) and
-- to-device messages: the non-room streams a client syncs. Typing lives in memory.

-- The high-water mark of streams whose rows get deleted (to-device), so positions
-- are never handed out twice across restarts.
CREATE TABLE stream_positions (
    stream_name TEXT NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL
);

-- The presence of each local user, as last persisted.
CREATE TABLE presence (
    user_id TEXT NOT NULL PRIMARY KEY,
    state TEXT NOT NULL,
    status_msg TEXT,
    last_active_ts BIGINT NOT NULL,
    last_user_sync_ts BIGINT NOT NULL,
    currently_active BOOLEAN NOT NULL,
    stream_id BIGINT NOT NULL
);
CREATE INDEX presence_stream ON presence (stream_id);

-- One receipt per (room, type, user, thread); thread_id is '' when unthreaded.
-- event_stream_ordering keeps receipts moving forward only.
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_stream_ordering BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream ON receipts (stream_id);
CREATE INDEX receipts_room_stream ON receipts (room_id, stream_id);

-- Global (room_id '') and per-room account data of local users.
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX account_data_user_stream ON account_data (user_id, stream_id);
CREATE INDEX account_data_stream ON account_data (stream_id);

-- Pending to-device messages per recipient device, deleted once acknowledged.
CREATE TABLE device_inbox (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    sender TEXT NOT NULL,
    event_type TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_id)
);

-- sendToDevice transactions already handled, for idempotency.
CREATE TABLE to_device_txns (
    sender TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (sender, sender_device, txn_id)
);
