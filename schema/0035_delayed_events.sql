-- MSC4140 delayed events: events a user scheduled to be sent after a delay, until
-- they are sent (or cancelled: the row goes).
CREATE TABLE delayed_events (
    delay_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT,
    delay BIGINT NOT NULL,
    send_ts BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state_key TEXT,
    origin_server_ts BIGINT,
    content TEXT NOT NULL
);
CREATE INDEX delayed_events_send_ts ON delayed_events (send_ts);
CREATE INDEX delayed_events_user ON delayed_events (user_id, send_ts);
CREATE INDEX delayed_events_state ON delayed_events (room_id, event_type, state_key)
    WHERE state_key IS NOT NULL;
