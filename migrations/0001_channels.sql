CREATE TABLE channels (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    stream_key TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
