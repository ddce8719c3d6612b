-- Accounts, channel metadata, categories, chat, likes and schedules.
-- Portable between SQLite and Postgres: BIGINT ids made by the application,
-- unix seconds (or milliseconds where named *_ms) as BIGINT, no booleans.

CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    email TEXT,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);

-- Only a SHA-256 of each session token is kept: a leaked table opens no session.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

ALTER TABLE channels ADD COLUMN owner_id BIGINT;
ALTER TABLE channels ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE channels ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE channels ADD COLUMN category TEXT;
-- A JSON array of strings.
ALTER TABLE channels ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE channels ADD COLUMN likes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN slow_mode_secs BIGINT NOT NULL DEFAULT 0;

CREATE TABLE categories (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
INSERT INTO categories (slug, name) VALUES ('just-chatting', 'Just Chatting');
INSERT INTO categories (slug, name) VALUES ('games', 'Games');
INSERT INTO categories (slug, name) VALUES ('music', 'Music');
INSERT INTO categories (slug, name) VALUES ('creative', 'Creative');

-- ids are microseconds since the epoch, strictly increasing per process:
-- they order the history without a second column.
CREATE TABLE chat_messages (
    id BIGINT PRIMARY KEY,
    channel TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    username TEXT NOT NULL,
    text TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX chat_messages_channel ON chat_messages (channel, id);

-- until NULL: banned; otherwise timed out until that unix second.
CREATE TABLE chat_bans (
    channel TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    until_at BIGINT,
    PRIMARY KEY (channel, user_id)
);

CREATE TABLE schedules (
    id BIGINT PRIMARY KEY,
    channel TEXT NOT NULL,
    title TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL
);
CREATE INDEX schedules_channel ON schedules (channel, starts_at);
