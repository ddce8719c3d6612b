-- Streaming now needs the broadcaster role. Every account made before this
-- could stream, and keeps that.
UPDATE users SET role = 'broadcaster' WHERE role = 'viewer';

-- Single-use invites (--registration invite); only the token's SHA-256 is
-- kept. A used invite stays, with who used it, for the admins' record.
CREATE TABLE invites (
    id BIGINT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_by BIGINT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_by BIGINT,
    used_at BIGINT
);
