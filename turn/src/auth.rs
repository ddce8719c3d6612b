//! TURN REST API credentials: the server derives the password from the
//! username and the shared secret, so it keeps no user table.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};
use turn::auth::{generate_auth_key, AuthHandler};

/// `base64(HMAC-SHA1(secret, username))`, as coturn computes it.
pub fn rest_password(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Accepts `EXPIRY` or `EXPIRY:USER` usernames (coturn's default
/// `rest-api-separator` is `:`) until EXPIRY, a Unix time in seconds.
///
/// It returns the long-term key (RFC 5389 15.4); the `turn` crate then checks
/// the request's MESSAGE-INTEGRITY with it, in constant time (stun's
/// `check_hmac` uses `subtle::ConstantTimeEq`). A forged password therefore
/// fails there, and an expired or malformed username fails here.
pub struct RestAuthHandler {
    secret: String,
}

impl RestAuthHandler {
    pub fn new(secret: String) -> Self {
        RestAuthHandler { secret }
    }

    /// The long-term key for `username`, or why it is refused at `now_unix`.
    pub fn key(&self, username: &str, realm: &str, now_unix: u64) -> Result<Vec<u8>, String> {
        let expiry = username.split(':').next().unwrap_or_default();
        let expiry: u64 = expiry
            .parse()
            .map_err(|_| format!("username {username:?} does not start with an expiry time"))?;
        if expiry < now_unix {
            return Err(format!("credentials expired at {expiry} (now {now_unix})"));
        }
        let password = rest_password(&self.secret, username);
        Ok(generate_auth_key(username, realm, &password))
    }
}

impl AuthHandler for RestAuthHandler {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.key(username, realm, now).map_err(|why| {
            tracing::debug!(%src_addr, "TURN credentials refused: {why}");
            turn::Error::Other(why)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_user() {
        let h = RestAuthHandler::new("s3cret".into());
        let user = "2000:viewer";
        let key = h.key(user, "onair", 1999).unwrap();
        assert_eq!(
            key,
            generate_auth_key(user, "onair", &rest_password("s3cret", user))
        );
        assert!(
            h.key("2000", "onair", 2000).is_ok(),
            "a bare expiry is valid"
        );
        assert!(h.key(user, "onair", 2001).unwrap_err().contains("expired"));
        assert!(h.key("viewer:2000", "onair", 0).is_err());
        assert!(h.key("", "onair", 0).is_err());
        // A different secret gives a different key, so MESSAGE-INTEGRITY fails.
        let other = RestAuthHandler::new("other".into());
        assert_ne!(other.key(user, "onair", 0).unwrap(), key);
    }

    #[test]
    fn hmac_sha1_vector() {
        // RFC 2202 test case 2.
        assert_eq!(
            rest_password("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }
}
