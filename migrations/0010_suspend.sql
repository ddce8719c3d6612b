-- An admin may suspend an account: it cannot sign in, chat or stream until
-- lifted; unlike deletion, nothing else changes.
ALTER TABLE users ADD COLUMN suspended_at BIGINT;
