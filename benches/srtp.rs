//! SRTP per packet: `onair::sfu::srtp` sealing a 1 200-byte RTP packet in
//! place, for each profile, beside rtc-srtp's `encrypt_rtp` (what the
//! engine used through `rtc`) on the same packet. Each iteration patches the
//! sequence number, as the forwarding does, so every packet gets a new
//! index. Also the one-off cost of keying a viewer's two contexts.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use onair::sfu::srtp::{keys_from_exporter, Inbound, Outbound, Profile, Role, SendStream};
use rtc::srtp::context::Context as RtcContext;
use rtc::srtp::protection_profile::ProtectionProfile;

const PACKET: usize = 1200;
const SSRC: u32 = 0x1234_5678;

fn packet() -> Vec<u8> {
    let mut p = vec![0x80, 96, 0, 0, 0, 0, 0x30, 0x39];
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend((0..PACKET - 12).map(|i| i as u8));
    p
}

fn material(profile: Profile) -> Vec<u8> {
    (0..profile.exporter_len() as u8)
        .map(|b| b.wrapping_mul(29))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp_protect_rtp_1200");
    g.throughput(Throughput::Elements(1));
    for (name, profile, rtc_profile) in [
        (
            "aead_aes_128_gcm",
            Profile::AeadAes128Gcm,
            ProtectionProfile::AeadAes128Gcm,
        ),
        (
            "aes_cm_hmac_sha1_80",
            Profile::Aes128CmHmacSha1_80,
            ProtectionProfile::Aes128CmHmacSha1_80,
        ),
    ] {
        let material = material(profile);
        let (ours, _) = keys_from_exporter(profile, Role::Server, &material).unwrap();
        let out = Outbound::new(&ours);
        let mut stream = SendStream::new(SSRC);
        let mut buf = packet();
        buf.resize(PACKET + profile.rtp_overhead(), 0);
        let mut seq = 0u16;
        g.bench_function(BenchmarkId::new("onair", name), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                out.protect_rtp(&mut stream, &mut buf, PACKET).unwrap()
            })
        });

        // The same key: the server's half of the exporter output (RFC 5764 4.2).
        let salt = profile.master_salt_len();
        let provider = rtc::crypto::default_provider().unwrap();
        let mut rtc = RtcContext::new(
            &material[16..32],
            &material[32 + salt..],
            rtc_profile,
            None,
            None,
            provider.crypto(),
        )
        .unwrap();
        let mut plain = packet();
        let mut seq = 0u16;
        g.bench_function(BenchmarkId::new("rtc_srtp", name), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                plain[2..4].copy_from_slice(&seq.to_be_bytes());
                rtc.encrypt_rtp(&plain).unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("srtp_keying");
    for (name, profile) in [
        ("aead_aes_128_gcm", Profile::AeadAes128Gcm),
        ("aes_cm_hmac_sha1_80", Profile::Aes128CmHmacSha1_80),
    ] {
        let material = material(profile);
        g.bench_function(BenchmarkId::new("outbound_and_inbound", name), |b| {
            b.iter(|| {
                let (ours, theirs) = keys_from_exporter(profile, Role::Server, &material).unwrap();
                (Outbound::new(&ours), Inbound::new(&theirs))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
