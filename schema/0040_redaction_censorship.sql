-- redaction_retention_period: redacted events whose original JSON is still stored,
-- with when the redaction took effect. Once the period has passed the JSON is
-- replaced by its pruned form and the row goes.
CREATE TABLE redactions_to_censor (
    event_id TEXT NOT NULL PRIMARY KEY,
    redacted_ts BIGINT NOT NULL
);
CREATE INDEX redactions_to_censor_ts ON redactions_to_censor (redacted_ts);

-- events redacted before this migration: due from when their redaction arrived
INSERT INTO redactions_to_censor (event_id, redacted_ts)
SELECT e.event_id, r.received_ts FROM events e JOIN events r ON r.event_id = e.redacted_by;
