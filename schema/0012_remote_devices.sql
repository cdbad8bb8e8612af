-- Remote users' device lists and cross-signing keys, cached for end-to-end
-- encryption over federation (server-server "Device Management", "End-to-End
-- Encryption"), and the to-device messages already received over federation
-- ("Send-to-device messaging").

-- One row per remote user whose device list we hold. stream_id is the position of
-- the origin's device list sequence our copy is at (from /user/devices or the last
-- m.device_list_update applied); stale: our copy may have missed updates (a failed
-- resync, or we stopped sharing a room with the user) and must be fetched again.
CREATE TABLE remote_device_lists (
    user_id TEXT NOT NULL PRIMARY KEY,
    stream_id BIGINT NOT NULL,
    stale BOOLEAN NOT NULL DEFAULT FALSE,
    updated_ts BIGINT NOT NULL
);

-- The devices of those users; keys_json is NULL for a device without identity keys.
CREATE TABLE remote_devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    keys_json TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Their master and self-signing keys (key_type 'master' / 'self_signing').
CREATE TABLE remote_cross_signing_keys (
    user_id TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- m.direct_to_device EDUs already delivered, by (origin, message_id): an EDU sent
-- again in another transaction is delivered once.
CREATE TABLE federation_inbound_to_device (
    origin TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, message_id)
);
CREATE INDEX federation_inbound_to_device_ts ON federation_inbound_to_device (received_ts);
