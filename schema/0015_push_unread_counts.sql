-- Unread notification counts per (room, user, thread), kept in step with the push
-- actions: a notification adds one (in the event's transaction), a read position
-- that moves recounts only the actions after it. Counting from event_push_actions
-- at each /sync read every push action the user ever had, read or not, so its cost
-- grew with the user's history. Keyed by room first so the counts one message
-- raises for a room's members sit together; the user index serves /sync.
CREATE TABLE push_unread_counts (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    notifications BIGINT NOT NULL,
    highlights BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, thread_id)
);
CREATE INDEX push_unread_counts_user ON push_unread_counts (user_id);
INSERT INTO push_unread_counts (room_id, user_id, thread_id, notifications, highlights)
    SELECT a.room_id, a.user_id, a.thread_id, COUNT(*),
        SUM(CASE WHEN a.highlight THEN 1 ELSE 0 END)
    FROM event_push_actions a
    LEFT JOIN push_read_positions u ON u.user_id = a.user_id AND u.room_id = a.room_id
        AND u.thread_id = ''
    LEFT JOIN push_read_positions t ON t.user_id = a.user_id AND t.room_id = a.room_id
        AND t.thread_id = a.thread_id
    WHERE a.stream_ordering > COALESCE(u.stream_ordering, 0)
        AND a.stream_ordering > COALESCE(t.stream_ordering, 0)
    GROUP BY a.room_id, a.user_id, a.thread_id;
