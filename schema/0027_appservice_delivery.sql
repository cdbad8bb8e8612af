-- Delivery to application services (Application Service API: pushing events).
--
-- Each service has a position per stream it is pushed from ('events', 'receipts',
-- 'to_device') and the ID of the last transaction it was given ('txn'): a
-- transaction takes the next ID, is stored with its body, and moves the positions,
-- in one database transaction; it is deleted once the service accepted it, so a
-- restart or an outage of the service loses nothing and repeats only that one.
CREATE TABLE appservice_positions (
    as_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (as_id, stream)
);

CREATE TABLE appservice_txns (
    as_id TEXT NOT NULL,
    txn_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (as_id, txn_id)
);

-- To-device messages for a service's users are read across inboxes by position.
CREATE INDEX device_inbox_stream ON device_inbox (stream_id);
