//! The `onair-signature` header: `t=UNIX_SECONDS,v1=HEX`, where HEX is
//! HMAC-SHA256 under the webhook secret of `UNIX_SECONDS` `.` body. Each
//! attempt is signed afresh, so `t` is when it was sent: a receiver takes a
//! request only when `t` is within [`REPLAY_WINDOW`] of its own clock and
//! the MAC matches, and drops repeats of an event id it has seen.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a receiver should let `t` stray from its clock.
pub const REPLAY_WINDOW_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: u64, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The header value for `body` sent at `t` (unix seconds).
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    let mut hex = String::with_capacity(tag.len() * 2);
    for b in tag {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("t={t},v1={hex}")
}

/// Why a signature was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("the header is not t=...,v1=...")]
    Malformed,
    #[error("the timestamp is outside the replay window")]
    Stale,
    #[error("the MAC does not match")]
    Mismatch,
}

/// What a receiver does (used by the tests, and the reference for
/// receivers in other languages): parse, check the window against `now`,
/// compare the MAC in constant time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64) -> Result<(), BadSignature> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(BadSignature::Malformed);
    };
    if t.abs_diff(now) > REPLAY_WINDOW_SECS {
        return Err(BadSignature::Stale);
    }
    let tag = decode_hex(v1).ok_or(BadSignature::Malformed)?;
    mac(secret, t, body)
        .verify_slice(&tag)
        .map_err(|_| BadSignature::Mismatch)
}

pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let h = signature(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(verify(b"s3cret", &h, b"{\"a\":1}", 1_700_000_100), Ok(()));
        assert_eq!(
            verify(b"s3cret", &h, b"{\"a\":2}", 1_700_000_000),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(
            verify(b"other", &h, b"{\"a\":1}", 1_700_000_000),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(
            verify(
                b"s3cret",
                &h,
                b"{\"a\":1}",
                1_700_000_000 + REPLAY_WINDOW_SECS + 1
            ),
            Err(BadSignature::Stale)
        );
        let moved = h.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(b"s3cret", &moved, b"{\"a\":1}", 1_700_000_000),
            Err(BadSignature::Mismatch),
            "the timestamp is covered by the MAC"
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1700000000,v1=zz"] {
            assert_eq!(
                verify(b"s3cret", bad, b"", 1_700_000_000),
                Err(BadSignature::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_mac_is_hmac_sha256_of_timestamp_dot_body() {
        // From `printf '1.body' | openssl dgst -sha256 -hmac key`.
        assert_eq!(
            signature(b"key", 1, b"body"),
            "t=1,v1=91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5"
        );
    }
}
