-- Where each writer process of a stream has got to (homeserver/replication/positions.py).
-- SQLite serves one process only, so the table stays empty there and no sequence is
-- made; it exists so that both engines have the same tables.
CREATE TABLE stream_positions (
    stream_name TEXT NOT NULL,
    instance_name TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (stream_name, instance_name)
);
