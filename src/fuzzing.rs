//! Entry points for the fuzz targets (`fuzz/`): every parser that sees a
//! stranger's bytes on the WebRTC side, reachable without making the
//! modules that hold them public. Each function must never panic, and
//! asserts what its parser promises (bounds, sizes).

use crate::codec::h264::MAX_NALUS_PER_AU;
use crate::codec::rtp::{check_opus, vp8_descriptor_len, H264Depacketizer, MAX_ACCESS_UNIT};
use crate::sfu::{peer, sdp, SfuError};
use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A publisher's RTP payloads, cut from `data`: each packet is a length
/// byte pair, a flags byte (bit 0 marker, bit 1 new timestamp, bit 2 a
/// loss before it) and the payload. They go through the H.264
/// depacketizer as one stream, and each payload through the Opus and VP8
/// checks and the keyframe tests.
pub fn rtp(data: &[u8]) {
    let mut d = H264Depacketizer::default();
    let mut rest = data;
    let mut ts = 0u32;
    while let [hi, lo, flags, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let payload = Bytes::copy_from_slice(&tail[..n]);
        rest = &tail[n..];
        if flags & 2 != 0 {
            ts = ts.wrapping_add(3000);
        }
        if flags & 4 != 0 {
            d.lost();
        }
        let out = d.push(&payload, ts, flags & 1 != 0);
        if let Some(unit) = out.unit {
            assert!(!unit.nalus.is_empty());
            assert!(unit.nalus.len() <= MAX_NALUS_PER_AU);
            assert!(unit.nalus.iter().map(Bytes::len).sum::<usize>() <= MAX_ACCESS_UNIT);
            assert!(unit.nalus.iter().all(|n| !n.is_empty()));
        }
        let _ = check_opus(&payload);
        if let Some(i) = vp8_descriptor_len(&payload) {
            assert!(i < payload.len());
        }
        let _ = crate::sfu::starts_keyframe(sdp::VideoCodec::H264, &payload);
        let _ = crate::sfu::starts_keyframe(sdp::VideoCodec::Vp8, &payload);
    }
}

fn certificate() -> &'static rtc::peer_connection::certificate::RTCCertificate {
    static CERT: OnceLock<rtc::peer_connection::certificate::RTCCertificate> = OnceLock::new();
    CERT.get_or_init(|| {
        let provider = rtc::crypto::default_provider().expect("a crypto provider");
        rtc::peer_connection::certificate::RTCCertificate::generate(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            rtc::peer_connection::certificate::CertificateParams::new(vec!["onair".into()])
                .expect("certificate parameters"),
        )
        .expect("a certificate")
    })
}

/// An offer, as WHEP and WHIP take it: our reading of it, then the whole
/// answer (rtc's SDP parser, its remote description, our codec choice).
/// Only our errors may come out, never a panic.
pub fn sdp_offer(text: &str) {
    let _ = sdp::read_offer(text);
    let candidates = peer::Candidates {
        udp: vec!["127.0.0.1:9".parse().expect("literal")],
        tcp: vec!["127.0.0.1:9".parse().expect("literal")],
    };
    let channel: Arc<str> = "fuzz".into();
    let now = Instant::now();
    let source = peer::SourceVideo::default();
    match peer::answer_viewer(
        1,
        channel.clone(),
        text.to_string(),
        &candidates,
        certificate(),
        source,
        now,
    ) {
        Ok(a) => assert!(a.sdp.starts_with("v=0")),
        Err(SfuError::BadOffer(_) | SfuError::NoCommonCodec(_) | SfuError::Internal(_)) => {}
        Err(e) => panic!("unexpected error for an offer: {e}"),
    }
    let _ = peer::answer_publisher(
        2,
        channel,
        text.to_string(),
        &candidates,
        certificate(),
        now,
    );
}

/// A trickle PATCH body (application/trickle-ice-sdpfrag).
pub fn trickle(text: &str) {
    for c in sdp::frag_candidates(text) {
        assert!(text.contains(&c));
    }
}

/// A datagram from an address the WebRTC driver does not know yet: only a
/// STUN request naming our ufrag is routed.
pub fn stun_route(data: &[u8]) {
    if let Some(ufrag) = crate::sfu::stun_local_ufrag(data) {
        assert!(ufrag.len() < data.len());
    }
}

/// A viewer's RTCP, as rtc's parser and our feedback reader see it.
pub fn rtcp(data: &[u8]) {
    let mut buf = Bytes::copy_from_slice(data);
    let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut buf) else {
        return;
    };
    let mut controller = crate::sfu::congestion::Controller::default();
    let now = Instant::now();
    // Send times for every transport-wide number, so TWCC feedback is
    // read through; windows close between the calls.
    let mut twcc = crate::sfu::twcc::TwccLog::new(now);
    (0..=u16::MAX).for_each(|seq| twcc.record(seq, now));
    for (i, bps) in [0.0, 600_000.0, f64::MAX].into_iter().enumerate() {
        let at = now + std::time::Duration::from_secs(2 * i as u64);
        let _ = crate::sfu::viewer_rtcp(
            &mut controller,
            &mut twcc,
            Some(0x1234_5678),
            &packets,
            bps,
            at,
        );
    }
}

/// A chat line from a WebSocket or data channel.
pub fn chat(text: &str) {
    if let Ok(Some(crate::chat::ClientMessage::Chat { text: t })) =
        crate::chat::ClientMessage::parse(text)
    {
        assert!(t.len() <= text.len());
    }
}

/// SRTP and SRTCP unprotect under a fixed key, both profiles, with
/// packets of our own sealed (and bit-flipped) among a stranger's: see
/// `sfu::srtp::fuzz::unprotect` for the input's layout and the assertions.
pub fn srtp_unprotect(data: &[u8]) {
    crate::sfu::srtp::fuzz::unprotect(data);
}

/// The SRTP index estimate, rollover counter and replay window on a sender
/// and a receiver: see `sfu::srtp::fuzz::index`.
pub fn srtp_index(data: &[u8]) {
    crate::sfu::srtp::fuzz::index(data);
}
