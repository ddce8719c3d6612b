//! Entry points for the fuzz targets `srtp_unprotect` and `srtp_index`
//! (through `crate::fuzzing`). Each must never panic on any input, and
//! asserts what this module promises.

use super::index::{estimate, RecvStream, SendStream, NONE};
use super::{keys_from_exporter, Inbound, Outbound, Profile, Role, SrtpError};
use std::collections::HashSet;

/// Contexts under a key of their own for each input. A key that outlived
/// one input would let the fuzzer forge: libFuzzer's comparison tracing
/// sees the tag a check expected and offers it back in a later input, an
/// oracle no remote sender has. With a fresh key, a tag learned that way is
/// already stale, so "only what we sealed authenticates" holds as a remote
/// attacker meets it.
fn contexts(profile: Profile) -> (Outbound, Inbound) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static INPUTS: AtomicU64 = AtomicU64::new(0);
    let n = INPUTS.fetch_add(1, Ordering::Relaxed);
    let seed = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(n.to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        h.finalize()
    };
    let material: Vec<u8> = (0..profile.exporter_len())
        .map(|i| seed[i % seed.len()] ^ (i / seed.len()) as u8)
        .collect();
    let (ours, _) = keys_from_exporter(profile, Role::Server, &material).unwrap();
    (Outbound::new(&ours), Inbound::new(&ours))
}

/// `data[0]` picks the profile (bit 0) and RTP or RTCP (bit 1). The rest is
/// a run of packets, each a big-endian length pair, a mode byte and the
/// bytes. Mode bit 0 clear: the bytes are a datagram from a stranger,
/// unprotected as they are. Set: they are a plaintext packet we seal, then
/// (mode bit 1) flip one bit of, chosen by the mode's upper bits, and
/// unprotect. All packets share one receiving stream, so replay windows
/// and index estimates carry over.
///
/// Asserts: a stranger's datagram is opened only if it is one we sealed
/// earlier in the run (nothing else authenticates); our own packet opens to
/// exactly its plaintext unless it is a replay or too old; any flipped bit
/// is refused.
pub(crate) fn unprotect(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let profile = if flags & 1 == 0 {
        Profile::Aes128CmHmacSha1_80
    } else {
        Profile::AeadAes128Gcm
    };
    let rtcp = flags & 2 != 0;
    let (out, inb) = &contexts(profile);
    let mut tx: Option<SendStream> = None;
    let mut rx: Option<RecvStream> = None;
    let mut sealed: HashSet<Vec<u8>> = HashSet::new();
    let mut buf = Vec::with_capacity(2048);
    while let [hi, lo, mode, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        let ssrc_at = if rtcp { 4..8 } else { 8..12 };
        let Some(ssrc) = bytes
            .get(ssrc_at)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        else {
            let mut b = bytes.to_vec();
            let mut fresh = RecvStream::new(0);
            let got = if rtcp {
                inb.unprotect_rtcp(&mut fresh, &mut b)
            } else {
                inb.unprotect_rtp(&mut fresh, &mut b)
            };
            assert_eq!(got, Err(SrtpError::Malformed));
            continue;
        };
        let stream = rx.get_or_insert(RecvStream::new(ssrc));
        buf.clear();
        buf.extend_from_slice(bytes);
        if mode & 1 == 0 {
            let got = if rtcp {
                inb.unprotect_rtcp(stream, &mut buf)
            } else {
                inb.unprotect_rtp(stream, &mut buf)
            };
            if let Ok(len) = got {
                assert!(sealed.contains(bytes), "a stranger's packet authenticated");
                assert!(len <= bytes.len());
            }
            continue;
        }
        let sender = tx.get_or_insert(SendStream::new(ssrc));
        // The index the sender will use, and whether the receiver, from
        // what it has accepted, will estimate the same: not after the
        // sender ran more than 2^15 ahead through packets that were lost
        // (flipped) on the way.
        let in_step = rtcp || bytes.len() < 4 || {
            let seq = u16::from_be_bytes([bytes[2], bytes[3]]);
            let index = match sender.highest {
                NONE => Ok(u64::from(seq)),
                h => estimate(h, seq),
            };
            match (index, stream.rtp.highest()) {
                (Ok(i), None) => i == u64::from(seq),
                (Ok(i), Some(h)) => estimate(h, seq) == Ok(i),
                (Err(_), _) => true,
            }
        };
        let len = buf.len();
        buf.resize(len + profile.rtcp_overhead(), 0);
        let protected = if rtcp {
            out.protect_rtcp(sender, &mut buf, len)
        } else {
            out.protect_rtp(sender, &mut buf, len)
        };
        let Ok(sealed_len) = protected else {
            continue;
        };
        buf.truncate(sealed_len);
        sealed.insert(buf.clone());
        let flip = mode & 2 != 0;
        if flip {
            let bit = usize::from(mode >> 2) * 7 % (sealed_len * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
        }
        let got = if rtcp {
            inb.unprotect_rtcp(stream, &mut buf)
        } else {
            inb.unprotect_rtp(stream, &mut buf)
        };
        match got {
            Ok(n) => {
                assert!(!flip, "a flipped bit authenticated");
                assert_eq!(&buf[..n], bytes);
            }
            Err(SrtpError::Replay | SrtpError::WrongSsrc) => {}
            Err(SrtpError::Auth) if !in_step => {}
            Err(e) => assert!(flip, "our own packet refused: {e}"),
        }
    }
}

/// Runs a sender and a receiver over steps from `data` (after an optional
/// start, see below), each three bytes: a flag byte (bit 0: the receiver
/// loses this packet) and a sequence number. Checks the index rules: the
/// index maps back to its sequence number and is within 2^15 of the
/// highest, the sender's counter never goes down, a resend within 2^15 gets
/// its first index, the receiver's estimate is the sender's index whenever
/// that is within 2^15 of what the receiver has seen, and a replay is
/// always refused while a new packet inside the window never is.
pub(crate) fn index(data: &[u8]) {
    // A first byte with the top bit set and six more: both sides start
    // from that highest index, so the fuzzer reaches the top of the index
    // space too.
    let (start, data) = match data.split_first() {
        Some((&b, rest)) if b & 0x80 != 0 && rest.len() >= 6 => {
            let mut h = [0u8; 8];
            h[2..].copy_from_slice(&rest[..6]);
            (Some(u64::from_be_bytes(h)), &rest[6..])
        }
        _ => (None, data),
    };
    let mut tx = SendStream::new(1);
    let mut rx = RecvStream::new(1);
    if let Some(h) = start {
        tx.highest = h;
        rx.rtp.accept(h);
    }
    let mut first_index = std::collections::HashMap::<u16, u64>::new();
    let mut received = HashSet::<u64>::from_iter(start);
    for step in data.chunks_exact(3) {
        let lost = step[0] & 1 != 0;
        let seq = u16::from_be_bytes([step[1], step[2]]);
        let before = tx.highest;
        let index = match tx.rtp_index(1, seq) {
            Ok(i) => i,
            Err(e) => {
                assert!(before != NONE);
                assert_eq!(Err(e), estimate(before, seq));
                assert_eq!(tx.highest, before, "a refused packet changes nothing");
                continue;
            }
        };
        assert_eq!(index as u16, seq);
        if before != NONE {
            assert!(index.abs_diff(before) <= 0x8000);
            assert_eq!(tx.highest, before.max(index));
            if let Some(&first) = first_index.get(&seq) {
                if before - first < 0x8000 {
                    assert_eq!(index, first, "a resend keeps its index");
                }
            }
        }
        first_index.insert(seq, index);
        if lost {
            continue;
        }
        let seen = rx.rtp.highest();
        let close = seen.filter(|h| index.abs_diff(*h) < 0x8000);
        match rx.rtp_index(1, seq) {
            Ok(got) => {
                if close.is_some() {
                    assert_eq!(got, index, "receiver's estimate");
                }
                rx.rtp.accept(got);
                assert!(received.insert(got), "accepted twice: {got}");
                assert_eq!(rx.rtp_index(1, seq), Err(SrtpError::Replay));
            }
            Err(SrtpError::Replay) => {
                if let Some(h) = close {
                    assert!(
                        received.contains(&index)
                            || h.saturating_sub(index) >= super::REPLAY_WINDOW,
                        "refused a new packet {index} (highest {h})"
                    );
                }
            }
            Err(e) => {
                assert_eq!(e, SrtpError::Exhausted);
                assert!(seen.is_some_and(|h| h >> 16 == 0xffff_ffff));
            }
        }
        if received.len() > 4096 {
            let h = rx.rtp.highest().unwrap_or(0);
            received.retain(|&i| i + super::REPLAY_WINDOW > h);
        }
    }
}
