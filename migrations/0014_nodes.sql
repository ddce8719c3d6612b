-- Servers sharing this database, each with a small number of its own
-- (`tag`, 0-1023) that makes the ids it mints (chat messages) distinct
-- from every other node's without asking anyone per id.
CREATE TABLE nodes (
    tag BIGINT PRIMARY KEY,
    node_id TEXT NOT NULL UNIQUE,
    started_at BIGINT NOT NULL
);
