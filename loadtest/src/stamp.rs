//! Send-time stamps carried inside the video: an SEI `user_data_unregistered`
//! NAL unit with a fixed UUID and the wall-clock send time, so any viewer
//! (WebRTC or HLS, in this process or another on the same host) can work
//! out glass-to-glass latency from the bytes it receives.
//!
//! The time is written as 16 ASCII hex digits: ASCII never holds two zero
//! bytes in a row, so no emulation-prevention byte is ever inserted and the
//! stamp can be found by a plain byte search in RTP payloads and fMP4 parts
//! alike.

use std::time::{SystemTime, UNIX_EPOCH};

/// The SEI's UUID: 16 ASCII bytes, so it is free of start-code patterns.
pub const UUID: [u8; 16] = *b"onair-loadtest-1";

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The SEI NAL unit (no start code, no length prefix) stamping `us`.
pub fn sei_nal(us: u64) -> Vec<u8> {
    let mut n = Vec::with_capacity(36);
    // nal_unit_type 6 (SEI), payloadType 5 (user data unregistered),
    // payloadSize 32 (UUID + 16 digits).
    n.extend_from_slice(&[0x06, 0x05, 32]);
    n.extend_from_slice(&UUID);
    n.extend_from_slice(format!("{us:016x}").as_bytes());
    // rbsp_trailing_bits
    n.push(0x80);
    n
}

/// Every stamp in `bytes`, in order.
pub fn find_all(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at + 32 <= bytes.len() {
            let rest = &bytes[at..];
            // Find the UUID's first byte fast, then compare the rest.
            let i = rest.iter().position(|&b| b == UUID[0])?;
            at += i;
            if at + 32 > bytes.len() {
                return None;
            }
            if bytes[at..at + 16] == UUID {
                let digits = &bytes[at + 16..at + 32];
                at += 32;
                if let Some(us) = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                {
                    return Some(us);
                }
            } else {
                at += 1;
            }
        }
        None
    })
}

/// Inserts a stamp NAL before the first slice of an Annex B access unit.
pub fn stamp_annexb(au: &[u8], us: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(au.len() + 40);
    let nals = split_annexb(au);
    let mut stamped = false;
    for nal in nals {
        let t = nal.first().map_or(0, |b| b & 0x1f);
        if !stamped && (t == 1 || t == 5) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&sei_nal(us));
            stamped = true;
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

/// The NAL units of an Annex B stream, without their start codes.
pub fn split_annexb(b: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= b.len() {
        if b[i] == 0 && b[i + 1] == 0 && b[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map_or(b.len(), |n| n - 3);
        // A four-byte start code leaves a zero at the end of the previous NAL.
        while e > s && b[e - 1] == 0 && k + 1 < starts.len() {
            e -= 1;
        }
        if e > s {
            out.push(&b[s..e]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_annexb_and_search() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9,
        ];
        let s = stamp_annexb(&au, 0x0123_4567_89ab);
        let nals = split_annexb(&s);
        let types: Vec<u8> = nals.iter().map(|n| n[0] & 0x1f).collect();
        assert_eq!(types, [7, 8, 6, 5]);
        assert_eq!(find_all(&s).collect::<Vec<_>>(), [0x0123_4567_89ab]);
        // No zero pairs inside the SEI: nothing needs escaping.
        assert!(!sei_nal(u64::MAX).windows(2).any(|w| w == [0, 0]));
    }
}
