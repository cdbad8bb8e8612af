-- Server-side search (POST /search): one row per indexed event (the body of an
-- m.room.message, the name of an m.room.name, the topic of an m.room.topic), and
-- an FTS5 table of the text under the same rowid.
CREATE TABLE event_search (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    key TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL
);
CREATE INDEX event_search_room_stream ON event_search (room_id, stream_ordering);
CREATE VIRTUAL TABLE event_search_fts USING fts5 (value, tokenize = 'porter unicode61');
-- the events held from before the index
INSERT INTO event_search (event_id, room_id, sender, key, stream_ordering, origin_server_ts)
SELECT event_id, room_id, sender,
       CASE type WHEN 'm.room.message' THEN 'content.body'
                 WHEN 'm.room.name' THEN 'content.name' ELSE 'content.topic' END,
       stream_ordering, origin_server_ts
FROM events
WHERE stream_ordering IS NOT NULL AND NOT outlier AND NOT soft_failed
  AND rejected_reason IS NULL AND redacted_by IS NULL
  AND ((type = 'm.room.message' AND state_key IS NULL AND json_type(json, '$.content.body') = 'text'
        AND trim(json_extract(json, '$.content.body')) <> '')
    OR (type = 'm.room.name' AND state_key = '' AND json_type(json, '$.content.name') = 'text'
        AND trim(json_extract(json, '$.content.name')) <> '')
    OR (type = 'm.room.topic' AND state_key = '' AND json_type(json, '$.content.topic') = 'text'
        AND trim(json_extract(json, '$.content.topic')) <> ''));
INSERT INTO event_search_fts (rowid, value)
SELECT s.id, json_extract(e.json, '$.content.' || substr(s.key, 9))
FROM event_search s JOIN events e ON e.event_id = s.event_id;
