-- The node that made each broadcast (`--node-id`): recovery after a crash
-- and retention touch only their own node's rows when several nodes share
-- one database. '' marks rows from before; the first node to start claims
-- them (a single server's own).
ALTER TABLE broadcasts ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
