-- Rooms a server admin blocked (Synapse admin API, PUT /_synapse/admin/v1/rooms/{roomId}/block,
-- and DELETE /rooms/{roomId} with "block"): no local user may join or be invited, and no
-- remote server may join or invite a local user. A room may be blocked before this server
-- knows it, and stays blocked after it is purged, so there is no reference to rooms.
CREATE TABLE blocked_rooms (
    room_id TEXT NOT NULL PRIMARY KEY,
    -- the admin who blocked it
    user_id TEXT NOT NULL
);
