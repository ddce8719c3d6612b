-- Accounts signed in through an OpenID Connect provider: one row per
-- provider identity (the issuer's stable subject), at most one per provider
-- per account. Accounts made this way have an empty password_hash: no
-- password signs in to them until the user sets one.
CREATE TABLE user_identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    -- The address the provider gave at linking, for the account page.
    email TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE UNIQUE INDEX user_identities_user ON user_identities (user_id, provider);
