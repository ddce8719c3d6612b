//! Known answers (the RFCs' own vectors, and libsrtp's self-test packets)
//! and the properties the index contract promises. The interoperability
//! tests against rtc-srtp are in `interop_tests.rs`.

use super::index::{estimate, ReplayWindow};
use super::kdf;
use super::transform::{cm_iv, sizes};
use super::*;
use aes::cipher::KeyInit;

pub(super) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex: {s}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

pub(super) const PROFILES: [Profile; 2] = [Profile::Aes128CmHmacSha1_80, Profile::AeadAes128Gcm];

/// RFC 3711 Appendix B.3: master key and salt, and each label's output.
/// The RFC lists the cipher key, the salt and 94 octets of the
/// authentication key; the HMAC-SHA1 key is their first 20.
#[test]
fn key_derivation_rfc3711_b3() {
    let master = kdf::master_cipher(&arr("E1F97A0D3E018BE0D64FA32C06DE4139"));
    let mut salt = [0u8; 14];
    salt.copy_from_slice(&hex("0EC675AD498AFEEBB6960B3AABE6"));
    let cases: &[(&str, u8, &str)] = &[
        (
            "cipher key",
            kdf::RTP_ENCRYPTION,
            "C61E7A93744F39EE10734AFE3FF7A087",
        ),
        ("cipher salt", kdf::RTP_SALT, "30CBBC08863D8C85D49DB34A9AE1"),
        (
            "auth key",
            kdf::RTP_AUTH,
            "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2",
        ),
    ];
    for (name, label, want) in cases {
        let want = hex(want);
        let mut got = vec![0u8; want.len()];
        kdf::derive(&master, &salt, *label, &mut got);
        assert_eq!(got, want, "{name}");
    }
}

/// RFC 3711 Appendix B.2: the AES-CM keystream for session key 2B7E..3C,
/// salt F0F1..FCFD, SSRC 0 and index 0, block by block, including the last
/// blocks of the table (counter FEFF, FF00, FF01).
#[test]
fn aes_cm_keystream_rfc3711_b2() {
    let aes = Aes128Enc::new(&arr::<16>("2B7E151628AED2A6ABF7158809CF4F3C").into());
    let salt: [u8; 14] = arr("F0F1F2F3F4F5F6F7F8F9FAFBFCFD");
    let iv = cm_iv(&salt, 0, 0);
    assert_eq!(iv.to_vec(), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
    let mut stream = vec![0u8; 0xFF02 * 16];
    kdf::aes_ctr(&aes, &iv, &mut stream);
    let cases: &[(usize, &str)] = &[
        (0x0000, "E03EAD0935C95E80E166B16DD92B4EB4"),
        (0x0001, "D23513162B02D0F72A43A2FE4A5F97AB"),
        (0x0002, "41E95B3BB0A2E8DD477901E4FCA894C0"),
        (0xFEFF, "EC8CDF7398607CB0F2D21675EA9EA1E4"),
        (0xFF00, "362B7C3C6773516318A077D7FC5073AE"),
        (0xFF01, "6A2CC3787889374FBEB4C81B17BA6C44"),
    ];
    for (block, want) in cases {
        assert_eq!(
            stream[block * 16..block * 16 + 16],
            hex(want),
            "block {block:04X}"
        );
    }
}

use aes::Aes128Enc;

/// RFC 7714 section 16: the RTP packet (SSRC 0x5501a0b2, sequence 0xf17b,
/// ROC 0) and section 17: the RTCP packet ("Mars", SRTCP index 0x5d4), both
/// under session key 000102..0f and salt "Quid pro quo", which the vectors
/// give directly (no key derivation).
const RFC7714_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const RFC7714_SALT: &str = "517569642070726f2071756f";
const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
                           20646976 69736120 696e2070 61727465 73207472 6573";
const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930
                            4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";

fn rfc7714() -> (Outbound, Inbound) {
    let key = arr(RFC7714_KEY);
    let salt = hex(RFC7714_SALT);
    (
        Outbound::from_session_keys(Profile::AeadAes128Gcm, &key, &salt),
        Inbound::from_session_keys(Profile::AeadAes128Gcm, &key, &salt),
    )
}

/// RFC 7714 16.1.1 (encryption) and 16.1.2 (decryption), AEAD_AES_128_GCM.
#[test]
fn gcm_rtp_rfc7714_16_1() {
    let plain = hex(RFC7714_RTP);
    let want = hex(
        "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
         0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
    );
    let (out, inb) = rfc7714();
    let mut buf = plain.clone();
    buf.resize(plain.len() + 16, 0);
    let mut tx = SendStream::new(0x5501a0b2);
    let n = out.protect_rtp(&mut tx, &mut buf, plain.len()).unwrap();
    assert_eq!(buf[..n], want);

    let mut rx = RecvStream::new(0x5501a0b2);
    let mut wire = want.clone();
    let n = inb.unprotect_rtp(&mut rx, &mut wire).unwrap();
    assert_eq!(wire[..n], plain);
}

/// RFC 7714 17.1 (encrypted SRTCP) and 17.3 (authenticated only, E flag
/// clear), AEAD_AES_128_GCM, SRTCP index 0x5d4.
#[test]
fn gcm_rtcp_rfc7714_17() {
    let plain = hex(RFC7714_RTCP);
    let encrypted = hex(
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
         c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
         45d9eade 800005d4",
    );
    let tagged = hex(
        "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
         deadbeef deadbeef deadbeef deadbeef deadbeef 841dd968 3dd78ec9 2ae58790
         125f62b3 000005d4",
    );
    let (out, inb) = rfc7714();
    let mut tx = SendStream::new(0x4d617273);
    tx.next_rtcp = 0x5d4;
    let mut buf = plain.clone();
    buf.resize(plain.len() + 20, 0);
    let n = out.protect_rtcp(&mut tx, &mut buf, plain.len()).unwrap();
    assert_eq!(buf[..n], encrypted, "17.1 encryption");

    for (name, wire) in [("17.1", encrypted), ("17.3", tagged)] {
        let mut rx = RecvStream::new(0x4d617273);
        let mut wire = wire;
        let n = inb.unprotect_rtcp(&mut rx, &mut wire).unwrap();
        assert_eq!(wire[..n], plain, "{name} decryption");
    }
}

/// libsrtp's self-test packets (test/srtp_driver.c, `srtp_validate` and
/// `srtp_validate_gcm`): RTP and RTCP for SSRC 0xcafebabe through the whole
/// key derivation. The AES-CM one uses RFC 3711 B.3's master key; the GCM
/// one a 12-byte master salt, which pins how it is padded for the key
/// derivation. libsrtp numbers its first SRTCP packet 1.
#[test]
fn libsrtp_known_answers() {
    struct Case {
        profile: Profile,
        key: &'static str,
        salt: &'static str,
        srtp: &'static str,
        srtcp: &'static str,
    }
    let rtp = "800f1234 decafbad cafebabe abababab abababab abababab abababab";
    let rtcp = "81c8000b cafebabe abababab abababab abababab abababab";
    let cases = [
        Case {
            profile: Profile::Aes128CmHmacSha1_80,
            key: "e1f97a0d3e018be0d64fa32c06de4139",
            salt: "0ec675ad498afeebb6960b3aabe6",
            srtp: "800f1234 decafbad cafebabe 4e55dc4c e79978d8 8ca4d215 949d2402 b78d6acc
                   99ea179b 8dbb",
            srtcp: "81c8000b cafebabe 7128035b e487b9bd bef89041 f977a5a8 80000001 993e08cd
                    54d6c123 0798",
        },
        Case {
            profile: Profile::AeadAes128Gcm,
            key: "000102030405060708090a0b0c0d0e0f",
            salt: "a0a1a2a3a4a5a6a7a8a9aaab",
            srtp: "800f1234 decafbad cafebabe c5002ede 04cfdd2e b91159e0 880aa06e d2976826
                   f796b201 df3131a1 27e8a392",
            srtcp: "81c8000b cafebabe c98b8b5d f0392a55 852b6c21 ac8e7025 c52c6fbe a2b3b446
                    ea31123b a88ce61e 80000001",
        },
    ];
    for c in cases {
        let name = format!("{:?}", c.profile);
        let master = MasterKey::new(c.profile, &hex(c.key), &hex(c.salt)).unwrap();
        let (out, inb) = (Outbound::new(&master), Inbound::new(&master));
        for (kind, plain, want) in [
            ("srtp", hex(rtp), hex(c.srtp)),
            ("srtcp", hex(rtcp), hex(c.srtcp)),
        ] {
            let mut tx = SendStream::new(0xcafebabe);
            tx.next_rtcp = 1;
            let mut buf = plain.clone();
            buf.resize(plain.len() + 20, 0);
            let n = if kind == "srtp" {
                out.protect_rtp(&mut tx, &mut buf, plain.len())
            } else {
                out.protect_rtcp(&mut tx, &mut buf, plain.len())
            }
            .unwrap();
            assert_eq!(buf[..n], want, "{name} {kind} protect");

            let mut rx = RecvStream::new(0xcafebabe);
            let mut wire = want.clone();
            let n = if kind == "srtp" {
                inb.unprotect_rtp(&mut rx, &mut wire)
            } else {
                inb.unprotect_rtcp(&mut rx, &mut wire)
            }
            .unwrap();
            assert_eq!(wire[..n], plain, "{name} {kind} unprotect");
        }
    }
}

/// RFC 5764 4.2: client key | server key | client salt | server salt, and
/// the server sends with the server's.
#[test]
fn exporter_split_by_role() {
    for profile in PROFILES {
        let len = profile.exporter_len();
        assert_eq!(
            len,
            if profile == Profile::AeadAes128Gcm {
                56
            } else {
                60
            }
        );
        let material: Vec<u8> = (0..len as u8).collect();
        let salt = profile.master_salt_len();
        let client_salt = 32..32 + salt;
        let server_salt = 32 + salt..len;
        let (ours, theirs) = keys_from_exporter(profile, Role::Server, &material).unwrap();
        assert_eq!(ours.key[..], material[16..32]);
        assert_eq!(ours.salt[..salt], material[server_salt.clone()]);
        assert_eq!(theirs.key[..], material[..16]);
        assert_eq!(theirs.salt[..salt], material[client_salt.clone()]);
        let (ours, theirs) = keys_from_exporter(profile, Role::Client, &material).unwrap();
        assert_eq!(ours.key[..], material[..16]);
        assert_eq!(ours.salt[..salt], material[client_salt]);
        assert_eq!(theirs.salt[..salt], material[server_salt]);
        for bad in [len - 1, len + 1, 0] {
            assert_eq!(
                keys_from_exporter(profile, Role::Server, &vec![0; bad]).unwrap_err(),
                SrtpError::KeyLength
            );
        }
        assert_eq!(Profile::from_dtls_id(profile.dtls_id()), Some(profile));
    }
    assert_eq!(
        Profile::from_dtls_id(0x0002),
        None,
        "SHA1_32 is not offered"
    );
}

/// RFC 3711 Appendix A, around each boundary: (highest, seq, index).
#[test]
fn index_estimate() {
    const R: u64 = 1 << 16;
    let cases: &[(u64, u16, Result<u64, SrtpError>)] = &[
        (10, 11, Ok(11)),
        (10, 9, Ok(9)),
        (10, 10 + 0x8000, Ok(10 + 0x8000)),
        // More than 2^15 ahead of a low s_l is behind, in the previous
        // rollover: none exists at counter 0.
        (10, 10 + 0x8001, Err(SrtpError::Replay)),
        (R + 10, 10 + 0x8001, Ok(10 + 0x8001)),
        (R + 10, 0xffff, Ok(0xffff)),
        // Wrap forward: s_l high, seq low.
        (0xffff, 0, Ok(R)),
        (0xfffe, 3, Ok(R + 3)),
        (0x8000, 0, Ok(0)),
        (0x8001, 0, Ok(R)),
        (5 * R + 0xfff0, 0x10, Ok(6 * R + 0x10)),
        (6 * R + 0x10, 0xfff0, Ok(5 * R + 0xfff0)),
        // The top of the index space.
        (MAX_INDEX_FOR_TEST, 0, Err(SrtpError::Exhausted)),
        (MAX_INDEX_FOR_TEST - 1, 0xffff, Ok(MAX_INDEX_FOR_TEST)),
    ];
    for &(highest, seq, want) in cases {
        assert_eq!(
            estimate(highest, seq),
            want,
            "highest {highest:#x}, seq {seq:#x}"
        );
    }
}

const MAX_INDEX_FOR_TEST: u64 = (1 << 48) - 1;

/// RFC 3711 3.3.2: steps of (index, expected check, then accepted?).
#[test]
fn replay_window() {
    let w = REPLAY_WINDOW;
    let steps: &[(u64, Result<(), SrtpError>)] = &[
        (1000, Ok(())),
        (1000, Err(SrtpError::Replay)),
        (999, Ok(())),
        (999, Err(SrtpError::Replay)),
        (1000 - w + 1, Ok(())),
        (1000 - w, Err(SrtpError::Replay)),
        (1005, Ok(())),
        (1001, Ok(())),
        (1001, Err(SrtpError::Replay)),
        (999, Err(SrtpError::Replay)),
        // A jump past the window forgets everything before it.
        (1005 + 10 * w, Ok(())),
        (1005 + 9 * w, Err(SrtpError::Replay)),
        (1005 + 10 * w - 1, Ok(())),
    ];
    let mut win = ReplayWindow::new();
    for (i, &(index, want)) in steps.iter().enumerate() {
        assert_eq!(win.check(index), want, "step {i}: index {index}");
        if want.is_ok() {
            win.accept(index);
        }
    }
}

fn rtp_packet(seq: u16, ssrc: u32, payload: &[u8], room: usize) -> (Vec<u8>, usize) {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    let len = p.len();
    p.resize(len + room, 0);
    (p, len)
}

fn keys(profile: Profile) -> (Outbound, Inbound) {
    let material: Vec<u8> = (0..profile.exporter_len() as u8)
        .map(|b| b.wrapping_mul(37))
        .collect();
    let (ours, _) = keys_from_exporter(profile, Role::Server, &material).unwrap();
    (Outbound::new(&ours), Inbound::new(&ours))
}

/// The index contract: re-sealing an index already sent, with the same
/// packet, gives the same bytes (before and after a rollover); the
/// receiver refuses the second copy as a replay; a tampered packet is
/// refused and leaves the stream as it was.
#[test]
fn resend_replay_and_tamper() {
    for profile in PROFILES {
        let (out, inb) = keys(profile);
        let mut tx = SendStream::new(7);
        let mut rx = RecvStream::new(7);
        let mut sent = Vec::new();
        for seq in (0xfff0..=0xffff).chain(0..0x10u16) {
            let (mut buf, len) = rtp_packet(seq, 7, &[seq as u8; 300], 16);
            let n = out.protect_rtp(&mut tx, &mut buf, len).unwrap();
            buf.truncate(n);
            sent.push((seq, buf));
        }
        assert_eq!(tx.roc(), 1);
        for (seq, first) in &sent {
            let (mut again, len) = rtp_packet(*seq, 7, &[*seq as u8; 300], 16);
            let n = out.protect_rtp(&mut tx, &mut again, len).unwrap();
            assert_eq!(&again[..n], &first[..], "{profile:?} resend of {seq}");
        }
        assert_eq!(tx.roc(), 1, "resends do not move the counter");

        for (seq, wire) in &sent {
            // Flipped: the version, the marker bit, the sequence number
            // (another index: it must not authenticate, or it is one
            // already received), the SSRC's last byte (another stream),
            // the payload and the tag.
            let tampered: [(usize, &[SrtpError]); 6] = [
                (0, &[SrtpError::Malformed]),
                (1, &[SrtpError::Auth]),
                (3, &[SrtpError::Auth, SrtpError::Replay]),
                (11, &[SrtpError::WrongSsrc]),
                (12, &[SrtpError::Auth]),
                (wire.len() - 1, &[SrtpError::Auth]),
            ];
            for (at, refusals) in tampered {
                let mut bad = wire.clone();
                bad[at] ^= 0x40;
                let got = inb.unprotect_rtp(&mut rx, &mut bad).unwrap_err();
                assert!(
                    refusals.contains(&got),
                    "{profile:?} seq {seq} byte {at} flipped: {got:?}"
                );
            }
            let mut ok = wire.clone();
            let n = inb.unprotect_rtp(&mut rx, &mut ok).unwrap();
            assert_eq!(&ok[12..n], &[*seq as u8; 300][..]);
            let mut again = wire.clone();
            assert_eq!(
                inb.unprotect_rtp(&mut rx, &mut again),
                Err(SrtpError::Replay)
            );
        }
        assert_eq!(rx.roc(), 1);

        // RTCP: replay and tamper.
        let mut buf = hex(RFC7714_RTCP);
        let len = buf.len();
        buf[4..8].copy_from_slice(&7u32.to_be_bytes());
        buf.resize(len + 20, 0);
        let n = out.protect_rtcp(&mut tx, &mut buf, len).unwrap();
        buf.truncate(n);
        let mut bad = buf.clone();
        bad[n - 1] ^= 1;
        assert_eq!(inb.unprotect_rtcp(&mut rx, &mut bad), Err(SrtpError::Auth));
        let mut ok = buf.clone();
        assert_eq!(inb.unprotect_rtcp(&mut rx, &mut ok), Ok(len));
        let mut again = buf.clone();
        assert_eq!(
            inb.unprotect_rtcp(&mut rx, &mut again),
            Err(SrtpError::Replay)
        );
    }
}

/// What the caller can get wrong is refused before anything changes.
#[test]
fn caller_errors() {
    for profile in PROFILES {
        let (out, inb) = keys(profile);
        let mut tx = SendStream::new(7);
        let (mut buf, len) = rtp_packet(1, 7, &[0; 10], profile.rtp_overhead() - 1);
        assert_eq!(
            out.protect_rtp(&mut tx, &mut buf, len),
            Err(SrtpError::NoRoom)
        );
        let (mut buf, len) = rtp_packet(1, 8, &[0; 10], 16);
        assert_eq!(
            out.protect_rtp(&mut tx, &mut buf, len),
            Err(SrtpError::WrongSsrc)
        );
        let (mut buf, len) = rtp_packet(1, 7, &[0; 10], 16);
        buf[0] = 0x40;
        assert_eq!(
            out.protect_rtp(&mut tx, &mut buf, len),
            Err(SrtpError::Malformed)
        );
        // A header extension longer than the packet.
        let (mut buf, len) = rtp_packet(1, 7, &[0xbe, 0xde, 0, 9], 16);
        buf[0] |= 0x10;
        assert_eq!(
            out.protect_rtp(&mut tx, &mut buf, len),
            Err(SrtpError::Malformed)
        );
        assert_eq!(tx.roc(), 0);
        assert_eq!(tx.highest, super::index::NONE, "nothing was recorded");

        let mut short = vec![0x80; 8 + profile.rtcp_overhead() - 1];
        let mut rx = RecvStream::new(0x80808080);
        assert_eq!(
            inb.unprotect_rtcp(&mut rx, &mut short),
            Err(SrtpError::Malformed)
        );
        let mut short = vec![0x80; 12 + profile.rtp_overhead() - 1];
        assert_eq!(
            inb.unprotect_rtp(&mut rx, &mut short),
            Err(SrtpError::Malformed)
        );
    }
}

/// Per-viewer memory: what a viewer's SRTP costs, against the engine's
/// 64 KiB per viewer in all. Printed for docs/BENCHMARKS.md.
#[test]
fn context_sizes() {
    let mut all = sizes().to_vec();
    all.push(("SendStream", std::mem::size_of::<SendStream>()));
    all.push(("RecvStream", std::mem::size_of::<RecvStream>()));
    for (name, bytes) in &all {
        eprintln!("{name}: {bytes} bytes");
    }
    assert_eq!(std::mem::size_of::<SendStream>(), 16);
    assert!(std::mem::size_of::<RecvStream>() <= 80);
    for (name, bytes) in &sizes()[..2] {
        assert!(*bytes <= 2048, "{name} is {bytes} bytes");
    }
}

/// The fuzz targets' seeds (fuzz/corpus/srtp_*) run through the fuzz entry
/// points, so their assertions hold on the cases they start from: ours
/// sealed across a rollover, resent, flipped, and the RFC 7714 packets as a
/// stranger's.
#[test]
fn fuzz_seeds() {
    for (target, run) in [
        ("srtp_unprotect", super::fuzz::unprotect as fn(&[u8])),
        ("srtp_index", super::fuzz::index),
    ] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            run(&std::fs::read(entry.unwrap().path()).unwrap());
            seeds += 1;
        }
        assert!(seeds >= 2, "{target}: {seeds} seeds");
    }
}
