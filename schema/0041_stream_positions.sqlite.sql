-- The high-water marks of streams whose rows get deleted (to-device), which 0008 called
-- stream_positions, make way for Synapse's table of that name.
ALTER TABLE stream_positions RENAME TO stream_high_water_marks;
-- Where each writer process of a stream has got to (homeserver/replication/positions.py).
-- SQLite serves one process only, so the new table stays empty there and no sequence is
-- made; it exists so that both engines have the same tables.
CREATE TABLE stream_positions (
    stream_name TEXT NOT NULL,
    instance_name TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (stream_name, instance_name)
);
