//! A lean WebRTC viewer session, built from webrtc-rs's component crates
//! rather than its generic peer connection: the offer and answer ([`sdp`]),
//! ICE-lite ([`ice`]), DTLS with SRTP keys exported for our own SRTP
//! ([`dtls`], `crate::sfu::srtp`), the chat data channel ([`channel`]) and
//! the RTCP a viewer sends. Sans-I/O: datagrams and `now` in, datagrams,
//! events and deadlines out.
//!
//! Forwarded media never goes through anything here but
//! [`Session::seal_rtp`]: the caller writes the RTP packet into its send
//! buffer and the session seals it in place.

pub mod channel;
pub mod dtls;
mod hello;
pub mod ice;
pub mod sdp;

use crate::media::MediaKind;
use crate::sfu::sdp::{choose_h264, VideoCodec};
use crate::sfu::srtp::{self, Inbound, Outbound, RecvStream, Role, SendStream};
use crate::sfu::SfuError;
use bytes::Bytes;
use rtc::crypto::RTCCryptoProvider;
use sdp::{Answered, Kind, LocalCandidate};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// SSRCs a viewer may send RTCP from: a browser uses one or two. Each
/// costs an SRTP receive state; others are dropped unread.
const MAX_RECV_STREAMS: usize = 4;
/// Control datagrams (STUN answers, DTLS and SCTP records) waiting to be
/// sent: a DTLS flight is a few, a burst of chat lines a few dozen.
const MAX_TRANSMITS: usize = 256;
/// Events waiting for the driver.
const MAX_EVENTS: usize = 256;
/// Chat lines sent by the data channel; larger ones are refused.
pub const MAX_CHAT_LINE: usize = 4096;

/// What every session shares: our certificate and how to reach us.
pub struct Config {
    pub certificate: rtc::dtls::crypto::Certificate,
    /// `sha-256 AA:BB:...` of the certificate, for answers.
    pub fingerprint: String,
    pub provider: Arc<dyn RTCCryptoProvider>,
    pub candidates: Vec<LocalCandidate>,
}

impl Config {
    pub fn new(
        certificate: &rtc::peer_connection::certificate::RTCCertificate,
        provider: Arc<dyn RTCCryptoProvider>,
        candidates: Vec<LocalCandidate>,
    ) -> Result<Config, SfuError> {
        let fp = certificate
            .get_fingerprints(provider.crypto())
            .map_err(|e| SfuError::Internal(format!("certificate fingerprint: {e}")))?
            .into_iter()
            .find(|f| f.algorithm == "sha-256")
            .ok_or_else(|| SfuError::Internal("no sha-256 fingerprint".into()))?;
        Ok(Config {
            certificate: certificate.dtls_certificate.clone(),
            fingerprint: format!("{} {}", fp.algorithm, fp.value),
            provider,
            candidates,
        })
    }
}

/// One track we send: its identity on the wire and its SRTP index state.
pub struct Track {
    pub ssrc: u32,
    pub payload_type: u8,
    /// The negotiated TWCC header extension id, if any.
    pub twcc: Option<u8>,
    srtp: SendStream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Connected,
    Closed,
}

pub enum Event {
    /// ICE and DTLS are done: media may flow.
    Connected {
        profile: srtp::Profile,
    },
    Closed(&'static str),
    ChatOpen,
    ChatText(String),
    /// RTCP from the viewer: receiver reports, NACK, PLI/FIR, REMB, TWCC.
    Rtcp(Vec<Box<dyn rtc::rtcp::Packet>>),
}

/// How much of the SRTP state [`Session::prefetch`] asks for: the sealing
/// keys lie in its first part.
const PREFETCH_KEYS: usize = 768;

pub struct Session {
    ice: IceLite,
    dtls: dtls::Dtls,
    srtp: Option<(Outbound, Inbound)>,
    pub video: Option<Track>,
    pub video_codec: Option<VideoCodec>,
    pub audio: Option<Track>,
    recv: Vec<RecvStream>,
    channel: Option<channel::DataChannel>,
    transmits: VecDeque<(SocketAddr, Bytes)>,
    events: VecDeque<Event>,
    pub state: State,
    provider: Arc<dyn RTCCryptoProvider>,
    /// TWCC transport-wide sequence number of the next packet (RFC draft
    /// holmer-rmcat-transport-wide-cc-extensions 2).
    twcc_seq: u16,
    scratch: Vec<u8>,
}

use ice::{IceLite, Verdict};

/// What the channel's source sends, which the answer follows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Source {
    pub codec: VideoCodec,
    /// H.264 profile_idc, once known.
    pub profile: Option<u8>,
}

/// `bytes` bytes from the OS RNG, in hex: ICE credentials, session ids.
pub(crate) fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_ssrc() -> u32 {
    // Zero is reserved by some stacks as "no SSRC".
    rand::random::<u32>().max(1)
}

impl Session {
    /// A session for a viewer's offer, and our answer.
    pub fn answer(
        offer: &str,
        source: Source,
        config: &Config,
        stream_label: &str,
    ) -> Result<(Session, String), SfuError> {
        let remote = sdp::read_remote(offer).map_err(|e| SfuError::BadOffer(e.to_string()))?;
        let mut answers = Vec::with_capacity(remote.media.len());
        let mut video = None;
        let mut video_codec = None;
        let mut audio = None;
        let mut sctp_port = None;
        for m in &remote.media {
            let a = match m.kind {
                _ if m.rejected || !m.receives && m.kind != Kind::Application => Answered::Rejected,
                Kind::Video if video.is_none() => {
                    // The source's codec when the viewer decodes it; else
                    // H.264, which every source but a VP8 browser sends.
                    let vp8 = m.vp8.iter().find(|f| f.clock_rate == 90_000);
                    let chosen = match (source.codec, vp8) {
                        (VideoCodec::Vp8, Some(f)) => Some((f.clone(), VideoCodec::Vp8, "VP8")),
                        _ => choose_h264(&m.h264, source.profile)
                            .map(|f| (f.clone(), VideoCodec::H264, "H264")),
                    };
                    match chosen {
                        Some((format, codec, name)) => {
                            let twcc = m.twcc_id();
                            let ssrc = random_ssrc();
                            video = Some(Track {
                                ssrc,
                                payload_type: format.payload_type,
                                twcc,
                                srtp: SendStream::new(ssrc),
                            });
                            video_codec = Some(codec);
                            let mut rtcp_fb = vec!["nack", "nack pli", "ccm fir", "goog-remb"];
                            if twcc.is_some() {
                                rtcp_fb.push("transport-cc");
                            }
                            Answered::Send {
                                format,
                                codec: name,
                                ssrc,
                                rtcp_fb,
                                twcc,
                            }
                        }
                        None => Answered::Rejected,
                    }
                }
                Kind::Audio if audio.is_none() => {
                    match m.opus.iter().find(|f| f.clock_rate == 48_000) {
                        Some(format) => {
                            let ssrc = random_ssrc();
                            audio = Some(Track {
                                ssrc,
                                payload_type: format.payload_type,
                                twcc: m.twcc_id(),
                                srtp: SendStream::new(ssrc),
                            });
                            Answered::Send {
                                format: format.clone(),
                                codec: "opus",
                                ssrc,
                                rtcp_fb: m
                                    .twcc_id()
                                    .map(|_| vec!["transport-cc"])
                                    .unwrap_or_default(),
                                twcc: m.twcc_id(),
                            }
                        }
                        None => Answered::Rejected,
                    }
                }
                Kind::Application if sctp_port.is_none() && m.sctp_port.is_some() => {
                    let port = m.sctp_port.unwrap_or(5000);
                    sctp_port = Some(port);
                    Answered::Data {
                        sctp_port: port,
                        max_message_size: channel::MAX_MESSAGE,
                    }
                }
                _ => Answered::Rejected,
            };
            answers.push(a);
        }
        if video.is_none() && audio.is_none() {
            return Err(SfuError::NoCommonCodec(
                "the offer has neither H.264 video nor Opus audio".into(),
            ));
        }
        let ufrag = random_token(8);
        let pwd = random_token(16);
        let local = sdp::Local {
            ice_ufrag: &ufrag,
            ice_pwd: &pwd,
            fingerprint: &config.fingerprint,
            candidates: &config.candidates,
            stream: stream_label,
        };
        let answer = sdp::write_answer(&remote, &local, &answers);
        let session = Session {
            ice: IceLite::new(ufrag, pwd, &remote.ice_ufrag),
            dtls: dtls::Dtls::new(
                config.certificate.clone(),
                config.provider.clone(),
                remote.fingerprint.clone(),
            ),
            srtp: None,
            video,
            video_codec,
            audio,
            recv: Vec::new(),
            channel: sctp_port.map(channel::DataChannel::new),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            state: State::Connecting,
            provider: config.provider.clone(),
            twcc_seq: rand::random(),
            scratch: Vec::with_capacity(256),
        };
        Ok((session, answer))
    }

    pub fn ufrag(&self) -> &str {
        self.ice.local_ufrag()
    }

    /// Where media goes, once ICE found a path.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.ice.destination()
    }

    /// Every address ICE proved for this viewer.
    pub fn paths(&self) -> &[SocketAddr] {
        self.ice.paths()
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    fn emit(&mut self, e: Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(e);
        }
    }

    fn transmit(&mut self, to: SocketAddr, data: Bytes) {
        if self.transmits.len() < MAX_TRANSMITS {
            self.transmits.push_back((to, data));
        }
    }

    /// One datagram from `from`. True when it proved the viewer is there:
    /// a STUN check that passed, DTLS that the association took, SRTCP that
    /// authenticated. Anything else changes nothing.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, data: &mut [u8]) -> bool {
        if self.state == State::Closed {
            return false;
        }
        match data.first() {
            Some(0..=3) => {
                let mut out = std::mem::take(&mut self.scratch);
                let v = self
                    .ice
                    .handle(now, from, data, self.provider.crypto(), &mut out);
                let proved = matches!(v, Verdict::Answered { .. });
                if proved {
                    self.transmit(from, Bytes::copy_from_slice(&out));
                }
                self.scratch = out;
                proved
            }
            // Only from an address ICE proved: DTLS and SRTCP from anywhere
            // else are someone else's.
            _ if !self.ice.is_path(from) => false,
            Some(20..=63) => self.handle_dtls(now, data),
            Some(128..=191) => self.handle_rtcp(data),
            _ => false,
        }
    }

    fn handle_dtls(&mut self, now: Instant, data: &[u8]) -> bool {
        let mut events = Vec::new();
        let _ = self.dtls.handle(now, data, &mut events);
        let proved = !events.is_empty();
        for e in events {
            match e {
                dtls::Event::Connected { profile, material } => {
                    match srtp::keys_from_exporter(profile, Role::Server, &material) {
                        Ok((ours, theirs)) => {
                            self.srtp = Some((Outbound::new(&ours), Inbound::new(&theirs)));
                            self.state = State::Connected;
                            self.emit(Event::Connected { profile });
                        }
                        Err(_) => self.close_with(now, "SRTP keys of the wrong length"),
                    }
                }
                dtls::Event::Data(packet) => {
                    if let Some(ch) = self.channel.as_mut() {
                        let mut out = Vec::new();
                        ch.handle(now, packet, &mut out);
                        for ev in out {
                            self.emit(match ev {
                                channel::Event::Open => Event::ChatOpen,
                                channel::Event::Text(t) => Event::ChatText(t),
                            });
                        }
                    }
                }
                dtls::Event::Closed => {
                    self.state = State::Closed;
                    self.emit(Event::Closed("the viewer closed DTLS"));
                }
            }
        }
        self.pump(now);
        proved
    }

    fn handle_rtcp(&mut self, data: &mut [u8]) -> bool {
        // RFC 5761 4: RTCP packet types 192-223 in the second byte.
        if !data.get(1).is_some_and(|pt| (192..=223).contains(pt)) || data.len() < 8 {
            return false;
        }
        let Some((_, inbound)) = self.srtp.as_ref() else {
            return false;
        };
        let ssrc = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let i = match self.recv.iter().position(|r| r.ssrc() == ssrc) {
            Some(i) => i,
            None if self.recv.len() < MAX_RECV_STREAMS => {
                self.recv.push(RecvStream::new(ssrc));
                self.recv.len() - 1
            }
            None => return false,
        };
        let opened = inbound.unprotect_rtcp(&mut self.recv[i], data);
        let Ok(len) = opened else {
            // A stream that never authenticated is not kept.
            if self.recv[i].roc() == 0 && i + 1 == self.recv.len() {
                self.recv.pop();
            }
            return false;
        };
        let mut plain = Bytes::copy_from_slice(&data[..len]);
        if let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut plain) {
            self.emit(Event::Rtcp(packets));
        }
        true
    }

    /// Moves what DTLS and SCTP want to send into the transmit queue.
    fn pump(&mut self, now: Instant) {
        if let Some(ch) = self.channel.as_mut() {
            while let Some(p) = ch.poll_transmit(now) {
                let _ = self.dtls.write(now, &p);
            }
        }
        let Some(to) = self.ice.destination() else {
            return;
        };
        while let Some(d) = self.dtls.poll_transmit() {
            self.transmit(to, d.freeze());
        }
    }

    /// The next control datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let d = self.dtls.poll_timeout();
        let c = self.channel.as_ref().and_then(|c| c.poll_timeout());
        match (d, c) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dtls.handle_timeout(now).is_err() && !self.dtls.is_connected() {
            self.close_with(now, "the DTLS handshake gave up");
            return;
        }
        if let Some(ch) = self.channel.as_mut() {
            ch.handle_timeout(now);
        }
        self.pump(now);
    }

    /// A line for the viewer's chat channel; false when it cannot go now.
    pub fn send_text(&mut self, now: Instant, text: &str) -> bool {
        if text.len() > MAX_CHAT_LINE || self.state != State::Connected {
            return false;
        }
        let sent = self
            .channel
            .as_mut()
            .is_some_and(|ch| ch.send_text(now, text));
        self.pump(now);
        sent
    }

    /// Ends the session, with a close_notify for the viewer.
    pub fn close(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.dtls.close(now);
        self.pump(now);
        self.state = State::Closed;
    }

    fn close_with(&mut self, now: Instant, why: &'static str) {
        self.close(now);
        self.emit(Event::Closed(why));
    }

    /// Bytes SRTP adds to an RTP packet (what to leave free after it).
    pub fn rtp_overhead(&self) -> usize {
        self.srtp
            .as_ref()
            .map_or(16, |(o, _)| o.profile().rtp_overhead())
    }

    /// The TWCC header extension ID and the transport-wide sequence number
    /// the next packet of `kind` would carry, when its track negotiated
    /// TWCC. The number is taken by [`Session::twcc_sent`] once the packet
    /// is sealed, so one that never goes out leaves no gap for the viewer
    /// to report lost.
    pub fn twcc_next(&self, kind: MediaKind) -> Option<(u8, u16)> {
        let id = match kind {
            MediaKind::Video => self.video.as_ref()?.twcc?,
            MediaKind::Audio => self.audio.as_ref()?.twcc?,
        };
        Some((id, self.twcc_seq))
    }

    /// The number [`Session::twcc_next`] gave went out.
    pub fn twcc_sent(&mut self) {
        self.twcc_seq = self.twcc_seq.wrapping_add(1);
    }

    /// Starts loading what sealing a packet of `kind` reads: the track, the
    /// transport-wide number and the sealing keys. Addresses only: nothing
    /// is read.
    pub fn prefetch(&self, kind: MediaKind) {
        use crate::sfu::prefetch;
        prefetch::line(match kind {
            MediaKind::Video => &self.video,
            MediaKind::Audio => &self.audio,
        });
        prefetch::line(&self.twcc_seq);
        prefetch::lines(&self.srtp, PREFETCH_KEYS);
    }

    /// Seals the RTP packet in `buf[..len]` (a packet of `kind`'s track, its
    /// SSRC already written) in place; the sealed length. `None` before DTLS
    /// is done, or if the packet is not this track's.
    pub fn seal_rtp(&mut self, kind: MediaKind, buf: &mut [u8], len: usize) -> Option<usize> {
        let (out, _) = self.srtp.as_ref()?;
        let track = match kind {
            MediaKind::Video => self.video.as_mut()?,
            MediaKind::Audio => self.audio.as_mut()?,
        };
        out.protect_rtp(&mut track.srtp, buf, len).ok()
    }

    /// Seals an RTCP packet we send about `kind`'s track (a sender report).
    pub fn seal_rtcp(&mut self, kind: MediaKind, buf: &mut [u8], len: usize) -> Option<usize> {
        let (out, _) = self.srtp.as_ref()?;
        let track = match kind {
            MediaKind::Video => self.video.as_mut()?,
            MediaKind::Audio => self.audio.as_mut()?,
        };
        out.protect_rtcp(&mut track.srtp, buf, len).ok()
    }
}

#[cfg(test)]
mod tests;
