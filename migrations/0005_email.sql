-- Email verification and password reset (only with --smtp-url).
ALTER TABLE users ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0;

-- Single-use tokens sent by mail; only their SHA-256 is kept.
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    purpose TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
