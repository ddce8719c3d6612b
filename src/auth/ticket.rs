//! A signed-in viewer sent to another server of the site (a WHEP `307`)
//! keeps who they are there: the redirect's URL carries a ticket,
//! `SESSION.EXPIRES.MAC`, where SESSION is the hash of their session token
//! (what the shared database keys sessions by, never the token), EXPIRES
//! unix seconds [`TICKET_TTL`] on, and MAC HMAC-SHA256 under the site's
//! node token of both. The server it reaches looks the session up: a
//! ticket outlives neither its minute nor the session (sign-out ends it).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Long enough for a browser to follow the redirect; a ticket copied out
/// of a log is stale by the time anyone reads it.
pub const TICKET_TTL_SECS: u64 = 30;
/// A session hash is 64 hex digits; anything longer is not a ticket.
const MAX_TICKET: usize = 160;

fn mac(key: &[u8], session: &str, expires: u64) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    m.update(b"whep-ticket.");
    m.update(session.as_bytes());
    m.update(b".");
    m.update(expires.to_string().as_bytes());
    m
}

/// A ticket for the session `session` (a token hash), made at `now`.
pub fn issue(key: &[u8], session: &str, now: u64) -> String {
    let expires = now + TICKET_TTL_SECS;
    let tag = mac(key, session, expires).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("{session}.{expires}.{hex}")
}

/// The session a ticket names, if it is well-formed, unexpired at `now`
/// and signed under `key` (compared in constant time).
pub fn redeem(key: &[u8], ticket: &str, now: u64) -> Option<String> {
    if ticket.len() > MAX_TICKET {
        return None;
    }
    let mut parts = ticket.split('.');
    let (session, expires, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !session.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let expires: u64 = expires.parse().ok()?;
    if now > expires || expires > now + TICKET_TTL_SECS {
        return None;
    }
    let tag = crate::hooks::sign::decode_hex(tag)?;
    mac(key, session, expires).verify_slice(&tag).ok()?;
    Some(session.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_ticket_names_its_session_until_it_expires() {
        let t = issue(b"site", SESSION, 1_000);
        assert_eq!(redeem(b"site", &t, 1_000).as_deref(), Some(SESSION));
        assert_eq!(
            redeem(b"site", &t, 1_000 + TICKET_TTL_SECS).as_deref(),
            Some(SESSION)
        );
        assert_eq!(redeem(b"site", &t, 1_001 + TICKET_TTL_SECS), None);
    }

    #[test]
    fn forged_or_mangled_tickets_name_nobody() {
        let t = issue(b"site", SESSION, 1_000);
        assert_eq!(redeem(b"another site", &t, 1_000), None);
        let other = "0".repeat(64);
        assert_eq!(
            redeem(b"site", &t.replacen(SESSION, &other, 1), 1_000),
            None
        );
        // A later expiry than any ticket gets.
        let (head, tag) = t.rsplit_once('.').unwrap();
        let later = head.replace(".1030", ".9999");
        assert_eq!(redeem(b"site", &format!("{later}.{tag}"), 1_000), None);
        for junk in ["", "a.b.c", "..", &format!("{t}.x"), &"a".repeat(400)] {
            assert_eq!(redeem(b"site", junk, 1_000), None, "{junk}");
        }
    }
}
