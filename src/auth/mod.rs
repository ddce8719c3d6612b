//! Accounts: password hashing (argon2id), session tokens, username rules and
//! the login throttle. No HTTP types here; `http::auth` turns these into
//! cookies, headers and status codes.

mod mail;
mod throttle;
pub mod turn;

pub use mail::{MailArgs, MailConfig, MailError, Mailer};
pub use throttle::LoginThrottle;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Sessions last 30 days, then the user signs in again.
pub const SESSION_TTL_SECS: i64 = 30 * 24 * 3600;
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

pub fn check_password(password: &str) -> Result<(), AuthError> {
    let n = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(AuthError::BadPassword);
    }
    Ok(())
}

/// argon2id with the crate's defaults (19 MiB, 2 passes: OWASP's minimum),
/// as a PHC string that carries its own salt and parameters.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Hashing is CPU-bound for tens of milliseconds: off the async workers.
pub async fn hash_password_blocking(password: String) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))?
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

pub async fn verify_password_blocking(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false)
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
    fn password_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a phc string"));
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
