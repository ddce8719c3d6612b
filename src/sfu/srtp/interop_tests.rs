//! Against an independent implementation: rtc-srtp 0.21 (webrtc-rs, through
//! `rtc`), set up the way `rtc` sets up a DTLS client's SRTP. It opens what
//! we seal and we open what it seals, for both profiles, RTP and RTCP,
//! across a rollover (sequence 65535 -> 0) and delivered out of order.

use super::tests::{hex, PROFILES};
use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtc::srtp::config::Config as RtcConfig;
use rtc::srtp::context::Context as RtcContext;
use rtc::srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc::srtp::protection_profile::ProtectionProfile;

fn rtc_profile(profile: Profile) -> ProtectionProfile {
    match profile {
        Profile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Profile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    }
}

/// rtc-srtp's two contexts for the DTLS client (the browser's side), keyed
/// from the same exporter output, with the replay windows `rtc` uses for a
/// remote context.
fn rtc_client(profile: Profile, material: &[u8]) -> (RtcContext, RtcContext, RtcConfig) {
    let mut config = RtcConfig {
        profile: rtc_profile(profile),
        ..Default::default()
    };
    config
        .set_session_keys_from_keying_material(material, true)
        .unwrap();
    let provider = rtc::crypto::default_provider().unwrap();
    let k = &config.keys;
    let sending = RtcContext::new(
        &k.local_master_key,
        &k.local_master_salt,
        config.profile,
        None,
        None,
        provider.crypto(),
    )
    .unwrap();
    let receiving = RtcContext::new(
        &k.remote_master_key,
        &k.remote_master_salt,
        config.profile,
        Some(srtp_replay_protection(64)),
        Some(srtcp_replay_protection(64)),
        provider.crypto(),
    )
    .unwrap();
    (sending, receiving, config)
}

/// Sequence numbers across a rollover, and the order they arrive in: the
/// first in order (a receiver's rollover counter starts from its first
/// packet), then every run of 8 reversed, so packets from both sides of
/// 65535 -> 0 arrive before older ones.
fn sequence_and_arrival() -> (Vec<u16>, Vec<usize>) {
    let seqs: Vec<u16> = (65500..=65535).chain(0..=43).collect();
    let mut order = vec![0];
    let rest: Vec<usize> = (1..seqs.len()).collect();
    for run in rest.chunks(8) {
        order.extend(run.iter().rev());
    }
    (seqs, order)
}

/// An RTP packet as a browser or our forwarding would send it: with a
/// CSRC and a one-byte-form header extension (RFC 8285) on some, and
/// payloads from empty to full size.
fn rtp(seq: u16, ssrc: u32, rng: &mut StdRng) -> Vec<u8> {
    let with_extension = seq % 3 == 0;
    let csrcs = usize::from(seq % 5 == 0);
    let mut p = vec![
        0x80 | (u8::from(with_extension) << 4) | csrcs as u8,
        96 | (0x80 * u8::from(seq % 7 == 0)),
    ];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for _ in 0..csrcs {
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    }
    if with_extension {
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, seq as u8, 0, 0]);
    }
    let payload = match seq % 4 {
        0 => 1200,
        1 => 1,
        2 => rng.gen_range(0..1300),
        _ => 160,
    };
    p.extend((0..payload).map(|_| rng.gen::<u8>()));
    p
}

/// A sender report with one report block: 52 bytes.
fn rtcp(ssrc: u32, n: u32) -> Vec<u8> {
    let mut p = hex("81c8000c");
    p.extend_from_slice(&ssrc.to_be_bytes());
    for word in 0..11u32 {
        p.extend_from_slice(&(n * 100 + word).to_be_bytes());
    }
    p
}

#[test]
fn rtc_srtp_opens_what_we_seal() {
    let mut rng = StdRng::seed_from_u64(11);
    for profile in PROFILES {
        let material: Vec<u8> = (0..profile.exporter_len()).map(|_| rng.gen()).collect();
        let (ours, _) = keys_from_exporter(profile, Role::Server, &material).unwrap();
        let (_, mut browser_rx, config) = rtc_client(profile, &material);
        assert_eq!(config.keys.remote_master_key, ours.key);
        assert_eq!(
            config.keys.remote_master_salt,
            ours.salt[..profile.master_salt_len()]
        );
        let out = Outbound::new(&ours);

        let ssrc = 0x1122_3344;
        let mut tx = SendStream::new(ssrc);
        let (seqs, arrival) = sequence_and_arrival();
        let mut plain = Vec::new();
        let mut sealed = Vec::new();
        for &seq in &seqs {
            let p = rtp(seq, ssrc, &mut rng);
            let mut buf = p.clone();
            buf.resize(p.len() + profile.rtp_overhead(), 0);
            let n = out.protect_rtp(&mut tx, &mut buf, p.len()).unwrap();
            assert_eq!(n, buf.len());
            plain.push(p);
            sealed.push(buf);
        }
        assert_eq!(tx.roc(), 1);
        for &i in &arrival {
            let opened = browser_rx
                .decrypt_rtp(&sealed[i])
                .unwrap_or_else(|e| panic!("{profile:?} seq {}: {e}", seqs[i]));
            assert_eq!(opened[..], plain[i][..], "{profile:?} seq {}", seqs[i]);
        }
        // A resend after the rollover of a packet from before it: the same
        // bytes, which rtc-srtp, having seen them, refuses as a replay.
        let i = seqs.iter().position(|&s| s == 65534).unwrap();
        let mut again = plain[i].clone();
        let len = again.len();
        again.resize(sealed[i].len(), 0);
        out.protect_rtp(&mut tx, &mut again, len).unwrap();
        assert_eq!(again, sealed[i]);
        assert!(browser_rx.decrypt_rtp(&again).is_err());

        let mut reports = Vec::new();
        for n in 0..20 {
            let p = rtcp(ssrc, n);
            let mut buf = p.clone();
            buf.resize(p.len() + profile.rtcp_overhead(), 0);
            out.protect_rtcp(&mut tx, &mut buf, p.len()).unwrap();
            reports.push((p, buf));
        }
        for i in [
            0, 3, 2, 1, 7, 6, 5, 4, 8, 19, 10, 9, 11, 12, 18, 13, 14, 15, 17, 16,
        ] {
            let (p, wire) = &reports[i];
            let opened = browser_rx
                .decrypt_rtcp(wire)
                .unwrap_or_else(|e| panic!("{profile:?} RTCP {i}: {e}"));
            assert_eq!(opened[..], p[..], "{profile:?} RTCP {i}");
        }
    }
}

#[test]
fn we_open_what_rtc_srtp_seals() {
    let mut rng = StdRng::seed_from_u64(12);
    for profile in PROFILES {
        let material: Vec<u8> = (0..profile.exporter_len()).map(|_| rng.gen()).collect();
        let (_, theirs) = keys_from_exporter(profile, Role::Server, &material).unwrap();
        let (mut browser_tx, _, _) = rtc_client(profile, &material);
        let inb = Inbound::new(&theirs);

        let ssrc = 0x5566_7788;
        let mut rx = RecvStream::new(ssrc);
        let (seqs, arrival) = sequence_and_arrival();
        let mut plain = Vec::new();
        let mut sealed = Vec::new();
        for &seq in &seqs {
            let p = rtp(seq, ssrc, &mut rng);
            sealed.push(browser_tx.encrypt_rtp(&p).unwrap().to_vec());
            plain.push(p);
        }
        for &i in &arrival {
            let mut wire = sealed[i].clone();
            let n = inb
                .unprotect_rtp(&mut rx, &mut wire)
                .unwrap_or_else(|e| panic!("{profile:?} seq {}: {e}", seqs[i]));
            assert_eq!(wire[..n], plain[i][..], "{profile:?} seq {}", seqs[i]);
        }
        assert_eq!(rx.roc(), 1);
        for &i in &arrival {
            let mut wire = sealed[i].clone();
            assert_eq!(
                inb.unprotect_rtp(&mut rx, &mut wire),
                Err(SrtpError::Replay),
                "{profile:?} replay of seq {}",
                seqs[i]
            );
        }

        let mut reports = Vec::new();
        for n in 0..20 {
            let p = rtcp(ssrc, n);
            let wire = browser_tx.encrypt_rtcp(&p).unwrap().to_vec();
            reports.push((p, wire));
        }
        for i in [
            1, 0, 2, 5, 4, 3, 6, 19, 7, 8, 9, 18, 10, 11, 12, 13, 17, 14, 15, 16,
        ] {
            let (p, wire) = &reports[i];
            let mut buf = wire.clone();
            let n = inb
                .unprotect_rtcp(&mut rx, &mut buf)
                .unwrap_or_else(|e| panic!("{profile:?} RTCP {i}: {e}"));
            assert_eq!(buf[..n], p[..], "{profile:?} RTCP {i}");
            let mut again = wire.clone();
            assert_eq!(
                inb.unprotect_rtcp(&mut rx, &mut again),
                Err(SrtpError::Replay)
            );
        }
    }
}
