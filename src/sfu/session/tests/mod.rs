//! A session against webrtc-rs's own peer connection as the viewer, wired
//! together in memory: the offer and answer, ICE-lite, DTLS, SRTP media and
//! RTCP, and the chat data channel both ways. `media`: what a viewer's
//! media sender does over a bad link, on a simulated clock.

mod media;

use super::*;
use bytes::BytesMut;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

const SERVER: &str = "192.0.2.1:8189";
const VIEWER: &str = "192.0.2.9:5000";

fn config() -> Config {
    let provider = rtc::crypto::default_provider().unwrap();
    let cert = rtc::peer_connection::certificate::RTCCertificate::generate(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        rtc::peer_connection::certificate::CertificateParams::new(vec!["onair".into()]).unwrap(),
    )
    .unwrap();
    Config::new(
        &cert,
        provider,
        vec![LocalCandidate {
            addr: SERVER.parse().unwrap(),
            tcp: false,
        }],
    )
    .unwrap()
}

/// rtc's peer connection as a browser-like viewer, and its offer.
fn viewer() -> (RTCPeerConnection, String) {
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let mut pc = onair_loadtest::whep::peer_connection("42e01f", settings).unwrap();
    let recv = || {
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        })
    };
    pc.add_transceiver_from_kind(RtpCodecKind::Video, recv())
        .unwrap();
    pc.add_transceiver_from_kind(RtpCodecKind::Audio, recv())
        .unwrap();
    pc.create_data_channel("chat", None).unwrap();
    let offer =
        onair_loadtest::whep::offer_with_host_candidate(&mut pc, VIEWER.parse().unwrap()).unwrap();
    (pc, offer)
}

/// Moves datagrams both ways until nothing moves; returns what the viewer
/// read (RTP, data channel) and its events along the way.
struct Wire {
    pc: RTCPeerConnection,
    s: Session,
    now: Instant,
    rtp: Vec<rtc::rtp::packet::Packet>,
    texts: Vec<String>,
    events: Vec<Event>,
    connected: bool,
    dc_open: Option<rtc::data_channel::RTCDataChannelId>,
    /// DTLS application data records of ours to lose on the way (SCTP).
    lose_app_data: usize,
    /// A connectivity check's USERNAME and our password, from the offer
    /// and answer: to prove another path as the viewer.
    username: String,
    pwd: String,
}

impl Wire {
    fn run(&mut self) {
        let server: SocketAddr = SERVER.parse().unwrap();
        let viewer: SocketAddr = VIEWER.parse().unwrap();
        // The viewer's ICE and DTLS run on timers: a fixed stretch of
        // simulated time, 5 ms a turn, is enough for everything to settle.
        for _ in 0..400 {
            while let Some(w) = self.pc.poll_write() {
                let mut d = w.message.to_vec();
                self.s.handle(self.now, viewer, &mut d);
            }
            while let Some((to, d)) = self.s.poll_transmit() {
                assert_eq!(to, viewer);
                if d.first() == Some(&23) && self.lose_app_data > 0 {
                    self.lose_app_data -= 1;
                    continue;
                }
                self.feed(&d, server, viewer);
            }
            while let Some(e) = self.s.poll_event() {
                self.events.push(e);
            }
            while let Some(ev) = self.pc.poll_event() {
                match ev {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                        RTCPeerConnectionState::Connected,
                    ) => self.connected = true,
                    RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                        self.dc_open = Some(id)
                    }
                    _ => {}
                }
            }
            while let Some(m) = self.pc.poll_read() {
                match m.message {
                    RTCMessage::RtpPacket(_, p) => self.rtp.push(p),
                    RTCMessage::DataChannelMessage(_, msg) => self
                        .texts
                        .push(String::from_utf8_lossy(&msg.data).into_owned()),
                    _ => {}
                }
            }
            self.now += std::time::Duration::from_millis(5);
            let _ = self.pc.handle_timeout(self.now);
            self.s.handle_timeout(self.now);
        }
    }

    fn feed(&mut self, d: &[u8], from: SocketAddr, to: SocketAddr) {
        let _ = self.pc.handle_read(TaggedBytesMut {
            now: self.now,
            transport: TransportContext {
                local_addr: to,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(d),
        });
    }
}

fn connect() -> Wire {
    connect_losing(0)
}

fn connect_losing(lose_app_data: usize) -> Wire {
    let (mut pc, offer) = viewer();
    let (s, answer) = Session::answer(&offer, Source::default(), &config(), "demo").unwrap();
    let attr = |sdp: &str, name: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix(name))
            .expect("an ICE credential")
            .to_owned()
    };
    let username = format!("{}:{}", s.ufrag(), attr(&offer, "a=ice-ufrag:"));
    let pwd = attr(&answer, "a=ice-pwd:");
    let now = Instant::now();
    pc.set_remote_description(now, RTCSessionDescription::answer(answer).unwrap())
        .unwrap();
    let mut w = Wire {
        pc,
        s,
        now,
        rtp: Vec::new(),
        texts: Vec::new(),
        events: Vec::new(),
        connected: false,
        dc_open: None,
        lose_app_data,
        username,
        pwd,
    };
    w.run();
    w
}

/// The viewer's first SCTP INIT is answered, and the answer lost (a
/// fast-start burst filling a thin link, say): its INIT sent again starts
/// the association anew, and the chat channel opens.
#[test]
fn chat_opens_when_the_first_init_ack_is_lost() {
    let mut w = connect_losing(1);
    assert!(w.connected, "media does not wait for SCTP");
    for _ in 0..10 {
        if w.dc_open.is_some() {
            break;
        }
        w.run();
    }
    assert!(w.dc_open.is_some(), "the viewer's data channel opened");
    assert!(w.events.iter().any(|e| matches!(e, Event::ChatOpen)));
    assert!(w.s.send_text(w.now, "{\"type\":\"live\"}"));
    w.run();
    assert_eq!(w.texts, vec!["{\"type\":\"live\"}".to_string()]);
}

#[test]
fn rtcs_own_peer_connects_and_gets_sealed_media_and_chat() {
    let mut w = connect();
    assert!(w.connected, "the viewer's peer connection is connected");
    assert!(w.s.is_connected());
    let profile = w.events.iter().find_map(|e| match e {
        Event::Connected { profile } => Some(*profile),
        _ => None,
    });
    assert!(profile.is_some(), "our side saw the handshake complete");

    // One H.264 packet, written and sealed as the fan-out does.
    let video =
        w.s.video
            .as_ref()
            .map(|t| (t.ssrc, t.payload_type))
            .unwrap();
    let mut buf = vec![0u8; 1500];
    let payload = [0x65u8, 1, 2, 3, 4, 5];
    buf[0] = 0x80;
    buf[1] = 0x80 | video.1;
    buf[2..4].copy_from_slice(&1000u16.to_be_bytes());
    buf[4..8].copy_from_slice(&90_000u32.to_be_bytes());
    buf[8..12].copy_from_slice(&video.0.to_be_bytes());
    buf[12..12 + payload.len()].copy_from_slice(&payload);
    let sealed =
        w.s.seal_rtp(MediaKind::Video, &mut buf, 12 + payload.len())
            .unwrap();
    let (server, viewer) = (SERVER.parse().unwrap(), VIEWER.parse().unwrap());
    w.feed(&buf[..sealed], server, viewer);
    w.run();
    assert_eq!(w.rtp.len(), 1, "the viewer decrypted our packet");
    assert_eq!(&w.rtp[0].payload[..], &payload[..]);
    assert_eq!(w.rtp[0].header.sequence_number, 1000);

    // Chat: the viewer's channel opened with us, and lines go both ways.
    assert!(w.events.iter().any(|e| matches!(e, Event::ChatOpen)));
    let id = w.dc_open.expect("the viewer's data channel opened");
    w.pc.data_channel(id)
        .unwrap()
        .send_text(w.now, "{\"type\":\"chat\",\"text\":\"hi\"}".to_string())
        .unwrap();
    w.run();
    assert!(w
        .events
        .iter()
        .any(|e| matches!(e, Event::ChatText(t) if t.contains("hi"))));
    assert!(w.s.send_text(w.now, "{\"type\":\"live\"}"));
    w.run();
    assert_eq!(w.texts, vec!["{\"type\":\"live\"}".to_string()]);
}

#[test]
fn the_viewers_rtcp_reaches_us_authenticated() {
    let mut w = connect();
    // A receiver report and a PLI from the viewer, sealed by its own SRTP.
    let media_ssrc = w.s.video.as_ref().unwrap().ssrc;
    let id = w.pc.get_receivers().next().expect("a receiver");
    let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
        sender_ssrc: 1,
        media_ssrc,
    };
    let now = w.now;
    let mut r = w.pc.rtp_receiver(id).expect("the receiver");
    r.write_rtcp(now, vec![Box::new(pli)]).unwrap();
    w.run();
    let got_pli = w.events.iter().any(|e| match e {
        Event::Rtcp(ps) => ps.iter().any(|p| {
            p.as_any()
                .downcast_ref::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                .is_some_and(|p| p.media_ssrc == media_ssrc)
        }),
        _ => false,
    });
    assert!(got_pli, "the viewer's PLI came through SRTCP");
}

#[test]
fn nothing_but_a_proven_path_reaches_dtls_or_srtcp() {
    let mut w = connect();
    let stranger: SocketAddr = "203.0.113.5:9999".parse().unwrap();
    let mut junk = vec![0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0];
    assert!(!w.s.handle(w.now, stranger, &mut junk));
    let mut dtls = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 1, 0];
    assert!(!w.s.handle(w.now, stranger, &mut dtls));
    assert!(w.s.is_connected());
}

/// A connected viewer with its chat open and nothing to say costs the
/// driver no timer wake-ups: no ICE agent ticking (ICE-lite only answers),
/// no DTLS retransmission, and the SCTP association asks for nothing sooner
/// than its heartbeat. The driver sleeps until media or a datagram comes.
#[test]
fn an_idle_connected_viewer_asks_for_no_timer() {
    let mut w = connect();
    assert!(w.connected && w.dc_open.is_some());
    // The viewer settles (its SACKs, the DCEP ack) in simulated time.
    w.run();
    let deadline = w.s.poll_timeout();
    let soonest = deadline.map(|d| d.saturating_duration_since(w.now));
    assert!(
        soonest.is_none_or(|d| d >= std::time::Duration::from_secs(10)),
        "an idle session's next deadline: {soonest:?}"
    );
}
