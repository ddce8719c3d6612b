-- One row per broadcast (publish -> unpublish), and the recording's state.
-- Times are unix milliseconds. ended_at is NULL while the broadcast is live,
-- or after a crash until the next start finalizes it.
CREATE TABLE broadcasts (
    id BIGINT PRIMARY KEY,
    channel TEXT NOT NULL,
    title TEXT,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    recorded BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX broadcasts_by_channel ON broadcasts (channel, id);

-- Per-channel switch: 0 = never record this channel.
ALTER TABLE channels ADD COLUMN recording BIGINT NOT NULL DEFAULT 1;
