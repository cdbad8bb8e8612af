-- Self-destructing messages (MSC2228, Synapse's enable_ephemeral_messages): when each
-- event whose content asks for it (org.matrix.self_destruct_after) is to be pruned.
CREATE TABLE event_expiry (
    event_id TEXT NOT NULL PRIMARY KEY,
    expiry_ts BIGINT NOT NULL
);
CREATE INDEX event_expiry_ts ON event_expiry (expiry_ts);
