-- End-to-end encryption support (client-server "End-to-End Encryption"): device
-- identity keys, one-time and fallback keys, cross-signing keys and the signatures
-- made over keys, the device list stream, and server-side room key backups.

-- The signed device keys a device uploaded (the JSON exactly as uploaded).
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Unclaimed one-time keys; a claimed key is deleted (handed out exactly once).
CREATE TABLE e2e_one_time_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    -- upload time: keys are given out in upload order
    ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- At most one fallback key per device and algorithm; kept (marked used) once claimed.
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- The current master / self_signing / user_signing key of each user.
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    key_type TEXT NOT NULL,
    -- the unpadded base64 public key (also the key's "device ID" for signatures)
    public_key TEXT NOT NULL,
    key_json TEXT NOT NULL,
    -- device list stream position of the upload
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);
CREATE INDEX e2e_cross_signing_keys_public ON e2e_cross_signing_keys (public_key);

-- Signatures uploaded through /keys/signatures/upload: signer's key signed a target
-- (a device, or a master key named by its public key).
CREATE TABLE e2e_cross_signing_signatures (
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    target_user_id TEXT NOT NULL,
    target_device_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (user_id, key_id, target_user_id, target_device_id)
);
CREATE INDEX e2e_cross_signing_signatures_target
    ON e2e_cross_signing_signatures (target_user_id, target_device_id);

-- The device list stream: one row per change of a user's devices or cross-signing
-- keys (device_id is '' for a cross-signing change). only_for names the one user who
-- may see a change (a signature by their user-signing key); NULL: everyone sharing a
-- room with user_id.
CREATE TABLE device_lists_stream (
    stream_id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    only_for TEXT
);
CREATE INDEX device_lists_stream_id ON device_lists_stream (stream_id);
CREATE INDEX device_lists_stream_user ON device_lists_stream (user_id, stream_id);

-- Server-side key backups (versions are per user, never reused).
CREATE TABLE e2e_room_keys_versions (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    -- bumped on every change of the stored keys
    etag BIGINT NOT NULL DEFAULT 0,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE e2e_room_keys (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index BIGINT NOT NULL,
    forwarded_count BIGINT NOT NULL,
    is_verified BOOLEAN NOT NULL,
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);

-- Device list tracking reads a room's membership changes in a stream window.
CREATE INDEX room_memberships_room_stream ON room_memberships (room_id, stream_ordering);
