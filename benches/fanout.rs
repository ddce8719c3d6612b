//! The fan-out hot path: one RTP packet to N connected WebRTC viewers, as
//! the driver does it, up to the datagrams queued in the send batch (the
//! `sendmmsg` that follows is not counted). Two engines:
//! - `lean`: our session; each viewer's copy is stamped and sealed in place
//!   in the batch;
//! - `rtc`: webrtc-rs's peer connection (`--webrtc-engine rtc`): a rewritten
//!   packet through its chain and SRTP, drained into the batch.
//!
//! Viewers are real `rtc` peers, connected over an in-memory wire (ICE, DTLS
//! and SCTP all run).

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use onair::media::MediaKind;
use onair::sfu::peer::{answer_lean, answer_viewer, Conn, Peer, SourceVideo};
use onair::sfu::session::{self, sdp::LocalCandidate};
use onair::sfu::transport::Wire;
use onair::sfu::udp::Batcher;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn client() -> RTCPeerConnection {
    let mut media = MediaEngine::default();
    let codec = |mime: &str, clock, channels, fmtp: &str| RTCRtpCodec {
        mime_type: mime.into(),
        clock_rate: clock,
        channels,
        sdp_fmtp_line: fmtp.into(),
        rtcp_feedback: vec![],
    };
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codec(
                    MIME_TYPE_H264,
                    90_000,
                    0,
                    "packetization-mode=1;profile-level-id=42e01f",
                ),
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .unwrap();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10"),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .unwrap();
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .unwrap();
    }
    pc
}

fn tag(local: SocketAddr, peer: SocketAddr, message: BytesMut) -> TaggedBytesMut {
    TaggedBytesMut {
        now: Instant::now(),
        transport: TransportContext {
            local_addr: local,
            peer_addr: peer,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        },
        message,
    }
}

/// A client with a host candidate at `addr`, and its offer.
fn client_offer(
    client_addr: SocketAddr,
) -> (
    RTCPeerConnection,
    rtc::peer_connection::sdp::RTCSessionDescription,
) {
    let mut c = client();
    let offer = c.create_offer(None).unwrap();
    c.set_local_description(Instant::now(), offer.clone())
        .unwrap();
    let host = rtc::peer_connection::transport::CandidateHostConfig {
        base_config: rtc::peer_connection::transport::CandidateConfig {
            network: "udp".into(),
            address: client_addr.ip().to_string(),
            port: client_addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .unwrap();
    c.add_local_candidate(
        rtc::peer_connection::transport::RTCIceCandidate::from(&host)
            .to_json()
            .unwrap(),
    )
    .unwrap();
    (c, offer)
}

/// A viewer connected to its server-side peer through memory.
fn connected_pair(
    i: usize,
    cert: &rtc::peer_connection::certificate::RTCCertificate,
) -> (Peer, RTCPeerConnection) {
    let server_addr: SocketAddr = "192.0.2.1:8189".parse().unwrap();
    let client_addr: SocketAddr = format!("198.51.100.1:{}", 10_000 + i).parse().unwrap();
    let (mut c, offer) = client_offer(client_addr);
    let answer = answer_viewer(
        i as u64,
        Arc::from("bench"),
        offer.sdp,
        &onair::sfu::peer::Candidates {
            udp: vec![server_addr],
            tcp: vec![],
        },
        cert,
        SourceVideo::default(),
        Instant::now(),
    )
    .unwrap();
    let mut s = answer.peer;
    c.set_remote_description(
        Instant::now(),
        RTCSessionDescription::answer(answer.sdp).unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    while !s.connected {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "in-memory pair did not connect"
        );
        let now = Instant::now();
        let _ = c.handle_timeout(now);
        let pc = s.pc().unwrap();
        let _ = pc.handle_timeout(now);
        while let Some(w) = c.poll_write() {
            let _ = pc.handle_read(tag(server_addr, client_addr, w.message));
        }
        while let Some(w) = pc.poll_write() {
            let _ = c.handle_read(tag(client_addr, server_addr, w.message));
        }
        let mut up = false;
        while let Some(ev) = pc.poll_event() {
            if let rtc::peer_connection::event::RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                rtc::peer_connection::state::RTCPeerConnectionState::Connected,
            ) = ev
            {
                up = true;
            }
        }
        while pc.poll_read().is_some() {}
        if up {
            s.connected = true;
            s.waiting_keyframe = false;
        }
        while c.poll_event().is_some() {}
        while c.poll_read().is_some() {}
        std::thread::sleep(Duration::from_millis(1));
    }
    (s, c)
}

/// A viewer on the lean session, connected to an rtc client through memory.
fn lean_pair(i: usize, config: &session::Config) -> (Peer, RTCPeerConnection) {
    let server_addr: SocketAddr = "192.0.2.1:8189".parse().unwrap();
    let client_addr: SocketAddr = format!("198.51.100.1:{}", 10_000 + i).parse().unwrap();
    let (mut c, offer) = client_offer(client_addr);
    let answer = answer_lean(
        i as u64,
        Arc::from("bench"),
        &offer.sdp,
        config,
        SourceVideo::default(),
        Instant::now(),
    )
    .unwrap();
    let mut s = answer.peer;
    c.set_remote_description(
        Instant::now(),
        RTCSessionDescription::answer(answer.sdp).unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    while !s.connected {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "in-memory lean pair did not connect"
        );
        let now = Instant::now();
        let _ = c.handle_timeout(now);
        let Conn::Lean(lean) = &mut s.conn else {
            unreachable!()
        };
        lean.session.handle_timeout(now);
        while let Some(w) = c.poll_write() {
            let mut d = w.message;
            if lean.session.handle(now, client_addr, &mut d) {
                lean.learn(client_addr, server_addr);
            }
        }
        while let Some((_, d)) = lean.session.poll_transmit() {
            let _ = c.handle_read(tag(client_addr, server_addr, BytesMut::from(&d[..])));
        }
        let mut up = false;
        while let Some(ev) = lean.session.poll_event() {
            up |= matches!(ev, session::Event::Connected { .. });
        }
        if up {
            s.connected = true;
            s.waiting_keyframe = false;
        }
        while c.poll_event().is_some() {}
        while c.poll_read().is_some() {}
        std::thread::sleep(Duration::from_millis(1));
    }
    (s, c)
}

fn packet(seq: u16, payload: &Bytes) -> Packet {
    Packet {
        header: Header {
            version: 2,
            sequence_number: seq,
            timestamp: seq as u32 * 3000,
            marker: true,
            ..Default::default()
        },
        payload: payload.clone(),
    }
}

fn fanout(cr: &mut Criterion) {
    let provider = rtc::crypto::default_provider().unwrap();
    let cert = rtc::peer_connection::certificate::RTCCertificate::generate(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        rtc::peer_connection::certificate::CertificateParams::new(vec!["bench".into()]).unwrap(),
    )
    .unwrap();
    let config = session::Config::new(
        &cert,
        provider.clone(),
        vec![LocalCandidate {
            addr: "192.0.2.1:8189".parse().unwrap(),
            tcp: false,
        }],
    )
    .unwrap();
    // A real socket behind the batch, which is never flushed.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let socket = Arc::new(socket);
    let local: SocketAddr = "192.0.2.1:8189".parse().unwrap();
    let mut out = Batcher::new(&[(local, socket)]).unwrap();
    let mut tcp = std::collections::HashMap::new();
    let mut scratch = Vec::new();
    let payload = Bytes::from(vec![0x5cu8; 1200]);
    let mut group = cr.benchmark_group("fanout_one_packet");
    for engine in ["lean", "rtc"] {
        // At most what the batch holds before it flushes by itself (1 MiB).
        for n in [1usize, 10, 100, 500] {
            if engine == "rtc" && n > 100 {
                continue;
            }
            let mut viewers: Vec<(Peer, RTCPeerConnection)> = (0..n)
                .map(|i| match engine {
                    "lean" => lean_pair(i, &config),
                    _ => connected_pair(i, &cert),
                })
                .collect();
            let mut wire = Wire {
                out: &mut out,
                tcp: &mut tcp,
                scratch: &mut scratch,
            };
            // The path must really produce SRTP for every viewer, or the
            // bench measures an early return.
            let probe = packet(0, &payload);
            for (s, _) in viewers.iter_mut() {
                let sent = s.send_media(
                    MediaKind::Video,
                    true,
                    std::slice::from_ref(&probe),
                    Instant::now(),
                    0,
                    &mut wire,
                );
                assert_eq!(sent.0, 1);
            }
            assert_eq!(wire.out.queued(), n, "one SRTP datagram per viewer");
            wire.out.discard();
            let mut seq = 0u16;
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(engine, n), &n, |b, _| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    let pkt = packet(seq, &payload);
                    let now = Instant::now();
                    for (s, _) in viewers.iter_mut() {
                        s.send_media(
                            MediaKind::Video,
                            true,
                            std::slice::from_ref(&pkt),
                            now,
                            0,
                            &mut wire,
                        );
                    }
                    let queued = wire.out.queued();
                    wire.out.discard();
                    queued
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = fanout
}
criterion_main!(benches);
