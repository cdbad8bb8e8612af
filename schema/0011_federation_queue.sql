-- Outbound federation (server-server API "Transactions"): per-destination queues of
-- PDUs and EDUs waiting to be sent, the health of each destination, and the results
-- of recently received transactions (for idempotent retries of PUT /send/{txnId}).

-- PDUs to send, in order of id per destination. Deleted only after the
-- transaction carrying them was answered with 200.
CREATE TABLE federation_outbound_pdus (
    id BIGINT NOT NULL PRIMARY KEY,
    destination TEXT NOT NULL,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    -- the event's position in the room-events stream (for the admin API)
    stream_ordering BIGINT,
    queued_ts BIGINT NOT NULL
);
CREATE INDEX federation_outbound_pdus_dest ON federation_outbound_pdus (destination, id);

-- EDUs to send. coalesce_key (when set) makes a newer EDU of the same type replace
-- the queued one (e.g. typing per room).
CREATE TABLE federation_outbound_edus (
    id BIGINT NOT NULL PRIMARY KEY,
    destination TEXT NOT NULL,
    edu_type TEXT NOT NULL,
    coalesce_key TEXT,
    content TEXT NOT NULL,
    queued_ts BIGINT NOT NULL
);
CREATE INDEX federation_outbound_edus_dest ON federation_outbound_edus (destination, id);
CREATE INDEX federation_outbound_edus_key ON federation_outbound_edus
    (destination, edu_type, coalesce_key);

-- Health of each destination (the Synapse admin API shape). retry_last_ts and
-- retry_interval are 0 while the destination is healthy.
CREATE TABLE federation_destinations (
    destination TEXT NOT NULL PRIMARY KEY,
    retry_last_ts BIGINT NOT NULL DEFAULT 0,
    retry_interval BIGINT NOT NULL DEFAULT 0,
    -- when the current run of failures started (NULL: not failing)
    failure_ts BIGINT,
    last_successful_stream_ordering BIGINT
);

-- Answers to transactions received from other servers, kept for a bounded time.
CREATE TABLE federation_received_transactions (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    response_json TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_received_transactions_ts ON federation_received_transactions (received_ts);
