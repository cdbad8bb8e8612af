-- Thread listing per room (GET /rooms/{roomId}/threads) reads the children of a
-- room by relation type, latest first.
CREATE INDEX events_room_rel ON events (room_id, rel_type, stream_ordering);
