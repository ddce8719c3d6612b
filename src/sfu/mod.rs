//! WebRTC on one UDP port, sans-I/O state machines driven by shards (see
//! shared/WEBRTC-NOTES.md for why not webrtc-rs's async layer).
//!
//! - `shard`: fan-out shards, a thread each, and the ingest driver for WHIP
//!   publishers; what the sockets read is routed to its peer's driver.
//! - `driver`: one shard's loop, owning its peers.
//! - `egress`: per channel, hub units -> RTP, once per stream; `feed`:
//!   that RTP (or a WHIP publisher's) numbered once, shared with the shards.
//! - `peer`: a viewer or WHIP publisher and what the driver keeps of it;
//!   `session`: a viewer's lean connection (ICE-lite, DTLS, SRTP, chat);
//!   `rtc_peer`: webrtc-rs peer connections (publishers, and viewers under
//!   `--webrtc-engine rtc`).
//! - `sender`: a viewer's copy of a stream packet, stamped into the send
//!   batch; `transport`: UDP batch or ICE-TCP; `udp`: the batch itself.
//! - `packetize`, `sdp`, `stun`: the small pure pieces.
//! - `srtp`: SRTP/SRTCP sealed and opened in place, keyed from DTLS.

pub mod congestion;
mod driver;
mod egress;
mod feed;
mod feedback;
mod inbound;
pub mod packetize;
pub mod peer;
mod prefetch;
mod retransmit;
mod rtc_peer;
pub mod sdp;
pub mod sender;
mod seqmap;
pub mod session;
pub mod shard;
pub use shard::DATAGRAM_QUEUE;
mod signal;
pub mod srtp;
mod stun;
pub(crate) mod tcp;
pub mod transport;
pub mod twcc;
pub mod udp;
pub(crate) mod whip;

// For the fuzz targets (crate::fuzzing).
pub(crate) use feedback::on_viewer_rtcp as viewer_rtcp;
pub(crate) use stun::local_ufrag as stun_local_ufrag;
pub(crate) use whip::starts_keyframe;

use crate::hub::Hub;
use crate::media::MediaKind;
use driver::Driver;
pub use driver::MAX_PEERS;

/// The operator's settings for the WebRTC engine.
#[derive(Clone, Copy, Debug)]
pub struct SfuOptions {
    /// `--max-viewers`: WHEP sessions taken at once (at most [`MAX_PEERS`]).
    pub max_viewers: usize,
    /// Tests only (`--fault-injection`).
    pub fault_injection: bool,
    /// `--webrtc-engine`: what serves viewers.
    pub engine: Engine,
    /// `--webrtc-shards`: fan-out shards, each a driver of its own.
    pub shards: usize,
}

/// What a WHEP viewer's connection runs on (`--webrtc-engine`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// Our lean session: ICE-lite, DTLS, our own SRTP sealed in place in
    /// the send batch, the chat data channel.
    #[default]
    Lean,
    /// webrtc-rs's generic peer connection, as WHIP publishers use.
    Rtc,
}
use rtc::rtp::packet::Packet;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("bad offer: {0}")]
    BadOffer(String),
    #[error("no common codec: {0}")]
    NoCommonCodec(String),
    #[error("no such session")]
    NotFound,
    #[error("server is at its viewer limit")]
    Busy,
    #[error("server is shutting down")]
    ShuttingDown,
    /// A per-session limit (PATCH requests, trickled candidates).
    #[error("{0}")]
    Limit(String),
    #[error("internal WebRTC error: {0}")]
    Internal(String),
}

pub struct WhepSession {
    pub session: String,
    pub sdp: String,
}

pub(crate) enum Command {
    Whep {
        channel: Arc<str>,
        /// Made on the caller's task (see [`signal`]).
        answer: Box<peer::Answer>,
        chat: Option<ChatTap>,
        /// Another server of the site pulling the channel (see
        /// [`Sfu::whep_relay`]).
        relay: bool,
        reply: oneshot::Sender<Result<WhepSession, SfuError>>,
    },
    Whip {
        channel: Arc<str>,
        /// The stream key's fingerprint (see [`crate::hub::keys`]).
        key: [u8; 32],
        offer: String,
        reply: oneshot::Sender<Result<WhepSession, SfuError>>,
    },
    Patch {
        session: String,
        candidates: Vec<String>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Delete {
        session: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
}

/// What happens on a viewer's `chat` data channel.
#[derive(Debug)]
pub enum DataChannelEvent {
    Open,
    Text(String),
}

/// Connects a WHEP session's `chat` data channel to whatever serves chat
/// (the SFU knows nothing of rooms): events go out on `events`, and lines
/// for the viewer come back through [`Sfu::send_chat`]. The SFU drops
/// `events` when the session ends.
pub struct ChatTap {
    pub events: mpsc::Sender<DataChannelEvent>,
}

/// When a batch's media reached the server, for `/metrics`.
#[derive(Clone, Copy)]
pub(crate) enum Arrived {
    /// A WHIP publisher's packet: its datagram was read (forwarding
    /// latency).
    Datagram(std::time::Instant),
    /// An access unit of hub media: its egress took it from the hub
    /// (frame delivery).
    Unit(std::time::Instant),
}

#[derive(Clone)]
pub(crate) enum Media {
    /// Packets in the channel's numbering (see [`feed`]), shared by every
    /// shard they go to.
    Batch {
        channel: Arc<str>,
        /// The hub stream it came from: a new one is numbered on from the
        /// last (see `whip::Continuity`).
        source: u64,
        kind: MediaKind,
        codec: sdp::VideoCodec,
        keyframe: bool,
        packets: Arc<[Packet]>,
        /// Where its delivery time starts.
        at: Option<Arrived>,
    },
    /// A shard's viewers wait for a picture: the channel's WHIP publisher
    /// is asked for a keyframe (see [`feed::Feeds::want_keyframe`]).
    WantKeyframe { channel: Arc<str> },
    /// The channel went live with the hub stream `source`, or offline.
    Live {
        channel: Arc<str>,
        source: u64,
        live: bool,
    },
    /// A publish's media clock: at `wall`, the video and audio RTP clocks
    /// read `video_ts` and `audio_ts`. Sender reports are derived from it.
    Anchor {
        channel: Arc<str>,
        wall: std::time::Instant,
        video_ts: u32,
        audio_ts: u32,
    },
}

/// WebRTC viewers per channel, and sessions relaying it to other servers
/// of the site, read by HTTP and metrics.
pub type ViewerCounts = Arc<Mutex<Counts>>;

#[derive(Default)]
pub struct Counts {
    pub viewers: HashMap<String, usize>,
    pub relays: HashMap<String, usize>,
}

/// Bounds of the driver's inboxes. Media is sized for a few hundred
/// ms of several channels; past it egress drops to the next keyframe.
const MEDIA_QUEUE: usize = 4096;
const COMMAND_QUEUE: usize = 256;
/// Chat lines on their way to data channels: one room message to a
/// thousand viewers is a thousand entries.
const CHAT_QUEUE: usize = 16_384;

/// The UDP sockets WebRTC uses: one per announced local address, all on the
/// same port, so each datagram's local address (which ICE must see as the
/// candidate's) is known without IP_PKTINFO.
pub struct WebrtcSockets {
    pub sockets: Vec<(SocketAddr, std::net::UdpSocket)>,
    pub candidates: Vec<SocketAddr>,
    /// ICE-TCP listeners on the same addresses and port, where it was free.
    pub tcp: Vec<(SocketAddr, std::net::TcpListener)>,
}

impl WebrtcSockets {
    /// Adds a TCP listener beside every UDP socket, on the address the
    /// socket is bound to, tagged like it. A port taken for TCP only costs
    /// the TCP fallback, with a warning.
    fn with_tcp(mut self) -> Self {
        for (tag, udp) in &self.sockets {
            let Ok(bound) = udp.local_addr() else {
                continue;
            };
            let listener = std::net::TcpListener::bind(bound).and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            });
            match listener {
                Ok(l) => self.tcp.push((*tag, l)),
                Err(e) => tracing::warn!(%bound, "no ICE-TCP on this address: {e}"),
            }
        }
        self
    }

    pub fn tcp_candidates(&self) -> Vec<SocketAddr> {
        let tagged: Vec<SocketAddr> = self.tcp.iter().map(|(t, _)| *t).collect();
        // With NAT 1:1 addresses every announced address reaches the one
        // listener.
        if self.sockets.len() == 1 && !tagged.is_empty() {
            return self.candidates.clone();
        }
        tagged
    }
}

/// Binds the WebRTC port. With `public_ips`, one socket on `addr`, and those
/// addresses announced (NAT 1:1). With an unspecified `addr`, one socket per
/// host address (loopback included) on the same port.
pub fn bind(addr: SocketAddr, public_ips: &[IpAddr]) -> std::io::Result<WebrtcSockets> {
    // With port 0 the kernel picks a UDP port that may be taken for TCP (by
    // an outgoing connection's local port, say): pick again, so ICE-TCP
    // gets the same port number.
    let mut tries = if addr.port() == 0 { 16 } else { 1 };
    loop {
        let s = bind_once(addr, public_ips)?;
        tries -= 1;
        if s.tcp.len() == s.sockets.len() || tries == 0 {
            return Ok(s);
        }
    }
}

fn bind_once(addr: SocketAddr, public_ips: &[IpAddr]) -> std::io::Result<WebrtcSockets> {
    let open = |a: SocketAddr| -> std::io::Result<std::net::UdpSocket> {
        let s = std::net::UdpSocket::bind(a)?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    if !public_ips.is_empty() {
        let s = open(addr)?;
        let port = s.local_addr()?.port();
        let candidates: Vec<SocketAddr> = public_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        return Ok(WebrtcSockets {
            sockets: vec![(candidates[0], s)],
            candidates,
            tcp: Vec::new(),
        }
        .with_tcp());
    }
    if !addr.ip().is_unspecified() {
        let s = open(addr)?;
        let bound = s.local_addr()?;
        return Ok(WebrtcSockets {
            sockets: vec![(bound, s)],
            candidates: vec![bound],
            tcp: Vec::new(),
        }
        .with_tcp());
    }
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| match ip {
            IpAddr::V4(_) => addr.is_ipv4(),
            // Link-local IPv6 needs a scope id that candidates cannot carry.
            IpAddr::V6(v6) => addr.is_ipv6() && (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    // Non-loopback first: the first candidate is the one most stacks try first.
    ips.sort_by_key(|ip| ip.is_loopback());
    ips.dedup();
    let mut port = addr.port();
    let mut sockets = Vec::new();
    for ip in ips {
        match open(SocketAddr::new(ip, port)) {
            Ok(s) => {
                let bound = s.local_addr()?;
                port = bound.port();
                sockets.push((bound, s));
            }
            Err(e) if sockets.is_empty() => return Err(e),
            Err(e) => tracing::warn!(%ip, port, "not announcing this address: {e}"),
        }
    }
    if sockets.is_empty() {
        return Err(std::io::Error::other(
            "no network address to bind WebRTC to",
        ));
    }
    let candidates = sockets.iter().map(|(a, _)| *a).collect();
    Ok(WebrtcSockets {
        sockets,
        candidates,
        tcp: Vec::new(),
    }
    .with_tcp())
}

/// Handle to the SFU; cheap to clone.
#[derive(Clone)]
pub struct Sfu {
    /// Per driver: the fan-out shards, then the ingest.
    commands: Vec<mpsc::Sender<Command>>,
    chat_out: Vec<mpsc::Sender<(String, Arc<str>)>>,
    counts: Arc<[ViewerCounts]>,
    max_viewers: usize,
    signalling: Arc<signal::Signalling>,
}

/// One driver's inboxes, kept across its restarts.
struct Inbox {
    datagrams: shard::Inbox,
    commands: mpsc::Sender<Command>,
    media: mpsc::Sender<Media>,
    chat: mpsc::Sender<(String, Arc<str>)>,
    inputs: Arc<tokio::sync::Mutex<driver::Inputs>>,
}

impl Inbox {
    fn new() -> Inbox {
        let (datagrams, dg_rx) = shard::inbox();
        let (commands, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (chat, chat_rx) = mpsc::channel(CHAT_QUEUE);
        let (media, media_rx) = mpsc::channel(MEDIA_QUEUE);
        Inbox {
            datagrams,
            commands,
            media,
            chat,
            inputs: Arc::new(tokio::sync::Mutex::new(driver::Inputs {
                datagrams: dg_rx,
                commands: cmd_rx,
                media: media_rx,
                chat: chat_rx,
            })),
        }
    }
}

impl Sfu {
    /// Starts the WebRTC engine on `sockets`: `options.shards` fan-out
    /// shards and the ingest (see [`shard`]). Each driver runs supervised:
    /// a panic outside any one peer's guard restarts that driver with fresh
    /// state (its viewers reconnect; the others notice nothing), `/healthz`
    /// answering 503 meanwhile.
    pub fn start(
        sockets: WebrtcSockets,
        hub: Arc<Hub>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
        engines: Arc<crate::isolate::Engines>,
        options: SfuOptions,
    ) -> Result<Sfu, SfuError> {
        let max_viewers = options.max_viewers;
        let provider =
            rtc::crypto::default_provider().map_err(|e| SfuError::Internal(e.to_string()))?;
        // One certificate for every peer: generating a key per viewer would
        // cost more than the rest of the offer/answer.
        let certificate = rtc::peer_connection::certificate::RTCCertificate::generate(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            rtc::peer_connection::certificate::CertificateParams::new(vec!["onair".to_owned()])
                .map_err(|e| SfuError::Internal(e.to_string()))?,
        )
        .map_err(|e| SfuError::Internal(e.to_string()))?;
        let shards = options.shards.clamp(1, shard::MAX_SHARDS);
        // The fan-out shards, then the ingest.
        let inboxes: Vec<Inbox> = (0..=shards).map(|_| Inbox::new()).collect();
        let routes = Arc::new(shard::Routes::default());
        let router = Arc::new(shard::Router {
            routes: routes.clone(),
            inboxes: inboxes.iter().map(|i| i.datagrams.clone()).collect(),
        });
        let feeds = feed::Feeds::new(hub.clone(), tracker.clone(), inboxes[shards].media.clone());
        let tcp_candidates = sockets.tcp_candidates();
        let mut tagged = Vec::new();
        for (tag, s) in sockets.sockets {
            let s = Arc::new(s);
            inbound::start(tag, s.clone(), router.clone(), shutdown.clone(), tracker)
                .map_err(|e| SfuError::Internal(format!("WebRTC reader: {e}")))?;
            tagged.push((tag, s));
        }
        for (tag, l) in sockets.tcp {
            let l = tokio::net::TcpListener::from_std(l)
                .map_err(|e| SfuError::Internal(e.to_string()))?;
            tracker.spawn(tcp::accept(
                tag,
                l,
                router.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        let counts: Arc<[ViewerCounts]> = (0..=shards).map(|_| ViewerCounts::default()).collect();
        // Checked once here, so a restart cannot fail on it.
        udp::Batcher::new(&tagged).map_err(|e| SfuError::Internal(format!("UDP sockets: {e}")))?;
        let candidates = peer::Candidates {
            udp: sockets.candidates,
            tcp: tcp_candidates,
        };
        let signalling = Arc::new(signal::Signalling::new(
            options.engine,
            candidates.clone(),
            certificate.clone(),
            feeds.clone(),
        )?);
        for (index, inbox) in inboxes.iter().enumerate() {
            let shared = driver::Shared {
                index: index as u8,
                routes: routes.clone(),
                feeds: feeds.clone(),
                counts: counts.clone(),
            };
            let name: &'static str = if index == shards {
                "webrtc-ingest"
            } else {
                // Named once per shard at start-up, for /healthz and logs.
                Box::leak(format!("webrtc-shard-{index}").into_boxed_str())
            };
            let (tagged, candidates, certificate, hub) = (
                tagged.clone(),
                candidates.clone(),
                certificate.clone(),
                hub.clone(),
            );
            let (media_tx, inputs) = (inbox.media.clone(), inbox.inputs.clone());
            let stop = shutdown.clone();
            tracker.spawn(crate::isolate::supervise(
                engines.clone(),
                name,
                shutdown.clone(),
                move || {
                    // Each driver starts with no peers: forget what one
                    // that died had.
                    *lock_counts(&shared.counts[index]) = Counts::default();
                    shared.routes.forget_driver(shared.index);
                    if index == shards {
                        shared.feeds.clear_codecs();
                    }
                    let out = udp::Batcher::new(&tagged)
                        .expect("the WebRTC sockets were usable at start");
                    let driver = Driver::new(
                        out,
                        candidates.clone(),
                        certificate.clone(),
                        hub.clone(),
                        media_tx.clone(),
                        shared.clone(),
                    )
                    .with_options(options);
                    let (inputs, stop) = (inputs.clone(), stop.clone());
                    let run = async move {
                        let mut inputs = inputs.lock_owned().await;
                        driver.run(&mut inputs, stop).await;
                    };
                    async move {
                        if index == shards {
                            run.await
                        } else {
                            shard::on_thread(name, run).await
                        }
                    }
                },
            ));
        }
        Ok(Sfu {
            commands: inboxes.iter().map(|i| i.commands.clone()).collect(),
            chat_out: inboxes.iter().map(|i| i.chat.clone()).collect(),
            counts,
            max_viewers,
            signalling,
        })
    }

    /// Answers a WHEP offer for `channel`. The channel need not be live.
    pub async fn whep(
        &self,
        channel: &str,
        offer: String,
        chat: Option<ChatTap>,
    ) -> Result<WhepSession, SfuError> {
        self.viewer(channel, offer, chat, false).await
    }

    /// Answers a WHEP offer from another server of the site that pulls
    /// `channel` for its own viewers: served as a viewer is, but not
    /// counted as one, nor refused by `--max-viewers` (one session feeds
    /// all of that server's viewers).
    pub async fn whep_relay(&self, channel: &str, offer: String) -> Result<WhepSession, SfuError> {
        self.viewer(channel, offer, None, true).await
    }

    /// The offer is answered here, on the caller's task; the emptiest
    /// shard files the viewer.
    async fn viewer(
        &self,
        channel: &str,
        offer: String,
        chat: Option<ChatTap>,
        relay: bool,
    ) -> Result<WhepSession, SfuError> {
        let (reply, rx) = oneshot::channel();
        let channel: Arc<str> = channel.into();
        let answer = self.signalling.answer(&channel, offer)?;
        self.send(
            self.least_loaded(),
            Command::Whep {
                channel,
                answer,
                chat,
                relay,
                reply,
            },
        )
        .await?;
        rx.await.map_err(|_| SfuError::ShuttingDown)?
    }

    /// Answers a WHIP offer: the peer becomes `channel`'s publisher,
    /// replacing whoever published before.
    pub async fn whip(
        &self,
        channel: &str,
        key: &str,
        offer: String,
    ) -> Result<WhepSession, SfuError> {
        let (reply, rx) = oneshot::channel();
        self.send(
            self.ingest(),
            Command::Whip {
                channel: channel.into(),
                key: crate::hub::keys::fingerprint(key),
                offer,
                reply,
            },
        )
        .await?;
        rx.await.map_err(|_| SfuError::ShuttingDown)?
    }

    pub async fn patch(&self, session: &str, candidates: Vec<String>) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        let driver = shard::session_driver(session).ok_or(SfuError::NotFound)?;
        self.send(
            driver,
            Command::Patch {
                session: session.into(),
                candidates,
                reply,
            },
        )
        .await?;
        rx.await.map_err(|_| SfuError::ShuttingDown)?
    }

    pub async fn delete(&self, session: &str) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        let driver = shard::session_driver(session).ok_or(SfuError::NotFound)?;
        self.send(
            driver,
            Command::Delete {
                session: session.into(),
                reply,
            },
        )
        .await?;
        rx.await.map_err(|_| SfuError::ShuttingDown)?
    }

    async fn send(&self, driver: usize, c: Command) -> Result<(), SfuError> {
        let to = self.commands.get(driver).ok_or(SfuError::NotFound)?;
        to.send(c).await.map_err(|_| SfuError::ShuttingDown)
    }

    /// The driver that holds WHIP publishers.
    fn ingest(&self) -> usize {
        self.commands.len() - 1
    }

    /// The fan-out shard with the fewest sessions, where a new viewer goes.
    fn least_loaded(&self) -> usize {
        let load = |c: &ViewerCounts| {
            let c = lock_counts(c);
            c.viewers.values().sum::<usize>() + c.relays.values().sum::<usize>()
        };
        let shards = &self.counts[..self.ingest()];
        (0..shards.len())
            .min_by_key(|i| load(&shards[*i]))
            .unwrap_or(0)
    }

    /// Queues a line for a session's `chat` data channel. False when the
    /// SFU is saturated or gone: the line is dropped, as a slow viewer's
    /// would be.
    pub fn send_chat(&self, session: &str, line: Arc<str>) -> bool {
        let Some(to) = shard::session_driver(session).and_then(|d| self.chat_out.get(d)) else {
            return false;
        };
        to.try_send((session.to_string(), line)).is_ok()
    }

    pub fn viewers(&self, channel: &str) -> usize {
        self.counts
            .iter()
            .filter_map(|c| lock_counts(c).viewers.get(channel).copied())
            .sum()
    }

    pub fn all_viewers(&self) -> Vec<(String, usize)> {
        self.summed(|c| &c.viewers)
    }

    /// Whether one more viewer is within `--max-viewers` now (the driver
    /// decides, this is the same count a moment earlier).
    pub fn has_room(&self) -> bool {
        self.all_viewers().iter().map(|(_, n)| n).sum::<usize>() < self.max_viewers
    }

    /// Sessions relaying each channel to other servers of the site.
    pub fn all_relays(&self) -> Vec<(String, usize)> {
        self.summed(|c| &c.relays)
    }

    /// Sessions (viewers and relays) each fan-out shard serves now.
    pub fn shard_sessions(&self) -> Vec<usize> {
        self.counts[..self.ingest()]
            .iter()
            .map(|c| {
                let c = lock_counts(c);
                c.viewers.values().sum::<usize>() + c.relays.values().sum::<usize>()
            })
            .collect()
    }

    fn summed(&self, map: impl Fn(&Counts) -> &HashMap<String, usize>) -> Vec<(String, usize)> {
        let mut all: HashMap<String, usize> = HashMap::new();
        for c in self.counts.iter() {
            for (k, n) in map(&lock_counts(c)) {
                *all.entry(k.clone()).or_default() += n;
            }
        }
        all.into_iter().collect()
    }
}

pub(super) fn lock_counts(c: &ViewerCounts) -> std::sync::MutexGuard<'_, Counts> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}
