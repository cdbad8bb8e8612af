-- The high-water marks of streams whose rows get deleted (to-device), which 0008 called
-- stream_positions, make way for Synapse's table of that name.
ALTER TABLE stream_positions RENAME TO stream_high_water_marks;
ALTER TABLE stream_high_water_marks RENAME CONSTRAINT stream_positions_pkey
    TO stream_high_water_marks_pkey;
-- Where each writer process of a stream has got to (homeserver/replication/positions.py):
-- ``instance_name`` has persisted every position of ``stream_name`` it allocated up to
-- ``stream_id``, and will never again allocate one at or below it. Read by every
-- process at start-up and whenever Redis comes back (Synapse's table of this name).
CREATE TABLE stream_positions (
    stream_name TEXT NOT NULL,
    instance_name TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (stream_name, instance_name)
);
-- The positions of the streams with several writers come from one sequence each, so
-- the writers never take the same one. Each starts after the largest stored position.
CREATE SEQUENCE events_stream_seq;
SELECT setval('events_stream_seq', COALESCE((SELECT MAX(stream_ordering) FROM events), 0) + 1, false);
-- backfilled history counts down from -1: the sequence gives the magnitude
CREATE SEQUENCE events_backfill_stream_seq;
SELECT setval('events_backfill_stream_seq',
    COALESCE((SELECT -MIN(stream_ordering) FROM events WHERE stream_ordering < 0), 0) + 1, false);
