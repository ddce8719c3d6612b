//! Accounts: password hashing (argon2id, bounded by [`Hasher`]), session
//! tokens, username rules, the login throttle and the rate limits on
//! account actions. No HTTP types here; `http::auth` turns these into
//! cookies, headers and status codes.

mod args;
pub mod hasher;
mod mail;
pub mod oidc;
pub mod oidc_provider;
pub mod publish;
pub mod rate;
pub mod throttle;
pub mod ticket;
pub mod turn;

pub use args::{AccountArgs, AccountLimits, Registration};
pub use hasher::{HashError, Hasher, HasherStats};
pub use mail::{MailArgs, MailBody, MailConfig, MailError, Mailer};
pub use publish::PublishRules;
pub use rate::{Rate, RateLimiter};
pub use throttle::LoginThrottle;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Sessions last 30 days, then the user signs in again.
pub const SESSION_TTL_SECS: i64 = 30 * 24 * 3600;
/// Sessions one user may hold; a login past it ends the oldest. Every
/// browser, phone and script a person uses is one, and 100 is far more than
/// anyone has; without a cap a script that logs in forever grows the
/// sessions table (and the revocation work of a password change) without
/// end.
pub const MAX_SESSIONS_PER_USER: usize = 100;
/// Long enough to resist guessing at the login throttle's pace; the upper
/// bound keeps a hash request from being a denial of service.
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 256;
/// 256 random bits per session token.
const TOKEN_BYTES: usize = 32;

/// Names that are paths of the site or the API: a user (and so a channel)
/// with one of them would shadow or be confused with it.
pub const RESERVED_NAMES: &[&str] = &[
    "api",
    "hls",
    "admin",
    "whep",
    "whip",
    "vod",
    "ws",
    "c",
    "login",
    "logout",
    "register",
    "dashboard",
    "settings",
    "static",
    "assets",
    "metrics",
    "healthz",
    "live",
    "root",
    "system",
    "onair",
    "moderator",
    "mod",
    "support",
    "help",
    "about",
    "me",
    "user",
    "users",
    "channel",
    "channels",
    "new",
    "null",
    "undefined",
];

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "username must be 1-32 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
    )]
    BadUsername,
    #[error("username {0:?} is reserved")]
    ReservedUsername(String),
    #[error("password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")]
    BadPassword,
    #[error("cannot hash password: {0}")]
    Hash(String),
}

/// Checks a username: the channel-name charset, and not reserved.
pub fn check_username(name: &str) -> Result<(), AuthError> {
    if !crate::db::valid_channel_name(name) {
        return Err(AuthError::BadUsername);
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(AuthError::ReservedUsername(name.to_string()));
    }
    Ok(())
}

/// A name as a key of an in-memory limit: cut to [`MAX_KEY_NAME`] bytes
/// (no valid username is longer), so typed garbage cannot grow a table by
/// more than that per entry.
pub fn key_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_KEY_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// See [`key_name`]: twice the longest valid username.
pub const MAX_KEY_NAME: usize = 64;

pub fn check_password(password: &str) -> Result<(), AuthError> {
    let n = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(AuthError::BadPassword);
    }
    Ok(())
}

/// argon2id with the crate's defaults (19 MiB, 2 passes: OWASP's minimum),
/// as a PHC string that carries its own salt and parameters. Unbounded: for
/// the admin CLI only; the server hashes through a [`Hasher`].
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut mem = vec![argon2::Block::new(); argon2::Params::DEFAULT.block_count()];
    hasher::hash_in(password.as_bytes(), &mut mem).map_err(|e| AuthError::Hash(e.to_string()))
}

/// A new session token (what the client holds) and its hash (what the
/// database keeps).
pub fn new_session_token() -> (String, String) {
    use base64::Engine;
    let mut raw = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

/// SHA-256 suffices: tokens are 256 random bits, not guessable passwords.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["alice", "a", "bob-2", "x_y", "0day"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "-a",
            "a b",
            "a/b",
            "é",
            &"a".repeat(33),
            "a'--",
        ] {
            assert!(
                matches!(check_username(bad), Err(AuthError::BadUsername)),
                "{bad}"
            );
        }
        for reserved in [
            "api", "hls", "admin", "whep", "whip", "vod", "ws", "c", "login",
        ] {
            assert!(
                matches!(
                    check_username(reserved),
                    Err(AuthError::ReservedUsername(_))
                ),
                "{reserved}"
            );
        }
    }

    #[test]
    fn cli_hashes_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        let mut mem = vec![argon2::Block::new(); argon2::Params::DEFAULT.block_count()];
        assert!(hasher::verify_in(b"correct horse", &h, &mut mem));
        assert!(!hasher::verify_in(b"wrong horse", &h, &mut mem));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_session_token();
        let (b, _) = new_session_token();
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), ha);
        assert_eq!(ha.len(), 64);
    }
}
