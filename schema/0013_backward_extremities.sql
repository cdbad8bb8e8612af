-- Backward extremities: events a room's timeline cites as prev_events that this
-- server does not hold in its timeline (never received, or held only as outliers).
-- They are where history may be missing: /messages backfills from them over
-- federation (server-server "Backfilling and retrieving missing events").
-- depth is the greatest depth of a timeline event citing the missing one.
CREATE TABLE backward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    depth BIGINT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);
CREATE INDEX backward_extremities_depth ON backward_extremities (room_id, depth);

INSERT INTO backward_extremities (room_id, event_id, depth)
SELECT e.room_id, ed.prev_event_id, MAX(e.depth)
FROM events e JOIN event_edges ed ON ed.event_id = e.event_id
WHERE NOT e.outlier
  AND NOT EXISTS (
      SELECT 1 FROM events p WHERE p.event_id = ed.prev_event_id AND NOT p.outlier
  )
GROUP BY e.room_id, ed.prev_event_id;
