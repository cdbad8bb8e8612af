-- Server-side search (POST /search): one row per indexed event (the body of an
-- m.room.message, the name of an m.room.name, the topic of an m.room.topic) with
-- its text as a tsvector under a GIN index.
CREATE TABLE event_search (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    key TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    vector TSVECTOR NOT NULL
);
CREATE INDEX event_search_room_stream ON event_search (room_id, stream_ordering);
CREATE INDEX event_search_vector ON event_search USING GIN (vector);
-- the events held from before the index (an event whose JSON holds \u0000, which
-- jsonb refuses, is left out rather than failing the migration)
INSERT INTO event_search
    (event_id, room_id, sender, key, stream_ordering, origin_server_ts, vector)
SELECT event_id, room_id, sender, 'content.' || field, stream_ordering, origin_server_ts,
       to_tsvector('english', doc -> 'content' ->> field)
FROM (
    SELECT event_id, room_id, sender, stream_ordering, origin_server_ts, json::jsonb AS doc,
           CASE type WHEN 'm.room.message' THEN 'body'
                     WHEN 'm.room.name' THEN 'name' ELSE 'topic' END AS field
    FROM events
    WHERE stream_ordering IS NOT NULL AND NOT outlier AND NOT soft_failed
      AND rejected_reason IS NULL AND redacted_by IS NULL
      AND position('\u0000' in json) = 0
      AND ((type = 'm.room.message' AND state_key IS NULL)
        OR (type IN ('m.room.name', 'm.room.topic') AND state_key = ''))
) AS held
WHERE jsonb_typeof(doc -> 'content' -> field) = 'string'
  AND btrim(doc -> 'content' ->> field) <> '';
