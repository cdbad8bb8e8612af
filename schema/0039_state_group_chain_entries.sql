-- State groups as deltas whose chains are bounded by what they hold, not by a count
-- of groups (storage/state.py): each group records how many delta rows a read of it
-- goes through above its snapshot, and a new group is a snapshot only when that
-- would exceed the size of its state. Groups written before keep their rows and read
-- as before (snapshots every 50 groups); their counts are filled in here so new
-- deltas can be chained onto them.
ALTER TABLE state_groups ADD COLUMN chain_entries BIGINT NOT NULL DEFAULT 0;

-- Walk up from every delta group to its snapshot, adding the rows of each delta on
-- the way (old chains are at most 50 groups long).
CREATE TABLE state_group_chain_totals (id BIGINT NOT NULL PRIMARY KEY, total BIGINT NOT NULL);
INSERT INTO state_group_chain_totals (id, total)
WITH RECURSIVE walk(start_id, cur, total) AS (
    SELECT id, id, CAST(0 AS BIGINT) FROM state_groups WHERE prev_group IS NOT NULL
    UNION ALL
    SELECT w.start_id, g.prev_group,
        w.total + (SELECT COUNT(*) FROM state_group_entries e WHERE e.state_group = w.cur)
    FROM walk w JOIN state_groups g ON g.id = w.cur
    WHERE g.prev_group IS NOT NULL
)
SELECT start_id, MAX(total) FROM walk GROUP BY start_id;
UPDATE state_groups SET chain_entries = (
    SELECT t.total FROM state_group_chain_totals t WHERE t.id = state_groups.id
) WHERE prev_group IS NOT NULL;
DROP TABLE state_group_chain_totals;
