//! HTTP-FLV playback (flv.js, mpegts.js, ffmpeg, VLC): `GET
//! /flv/CHANNEL.flv` is one long response whose body is the live stream as
//! FLV, H.264 + AAC.
//!
//! Each response is one hub [`Reader`] driven by the response body itself:
//! hyper asks for the next chunk only when the socket has room, so a slow
//! player's backlog waits in its reader's queue, which is bounded
//! ([`READER_QUEUE_BYTES`]) and skips to the next keyframe when full. The
//! publisher and the other readers never wait for it. Each skip is counted
//! in `onair_limit_hits_total{limit="flv_reader_queue"}`.
//!
//! - Start: the reader is primed with the stream's GOP cache, so the
//!   response opens with the sequence headers and the last keyframe: the
//!   picture is there at once. The FLV header's audio/video flags come from
//!   what the first units carry ([`PROBE_WINDOW`]).
//! - Audio: FLV carries AAC. A WHIP publisher's Opus is transcoded once per
//!   stream by the HLS egress, which hands its AAC back to the stream
//!   ([`crate::hub::Stream::write_aac_twin`]); Icecast sources write AAC
//!   themselves. Nothing is transcoded per viewer.
//! - Reconnects: the response follows the channel, not one stream; a new
//!   publisher within [`OFFLINE_GRACE`] continues it with timestamps that
//!   keep going ([`mux::Muxer::next_stream`]).
//! - Limits: [`MAX_READERS`] in all, [`MAX_READERS_PER_HOST`] per client
//!   host; every reader counts as a viewer of its channel.

pub mod mux;

use crate::hub::{Hub, Reader, Source, Stream};
use crate::media::{MediaKind, Payload, Unit};
use crate::net::{ConnGate, ConnLimits, ConnPermit, Refused};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Payload bytes a player may have waiting before it is made to skip to
/// the next keyframe: 4 s of a 16 Mbit/s stream, so a whole GOP of any
/// stream a browser plays (2 s keyframe interval, as every platform asks)
/// fits when a player joins. Past it the player is seconds behind live and
/// better off skipping than catching up. The hub's unit count bound
/// ([`crate::hub`]'s `READER_QUEUE_CAP`) applies too. The units are shared
/// with every other reader, so many stalled players of one channel pin the
/// same few megabytes, not this much each.
pub const READER_QUEUE_BYTES: usize = 8 << 20;
/// Open FLV responses in all: each holds a hub reader and a connection
/// task (a few KiB besides the shared units); this many is far more than
/// one node's players and stays within the HTTP listener's own cap.
pub const MAX_READERS: usize = 8192;
/// A player opens one connection; a household or office behind one NAT
/// has a few players open. Sixteen serves them and stops one host from
/// holding hundreds of readers (the HTTP listener allows 256 connections).
pub const MAX_READERS_PER_HOST: usize = 16;
/// How long the header waits, from the first usable unit, for the other
/// track to show up before it declares only what it saw. The GOP cache
/// usually answers at once; this covers a stream just starting.
pub const PROBE_WINDOW: Duration = Duration::from_secs(3);
/// Units held while probing: a second of any sane stream; a publisher
/// flooding tiny units cannot make the wait hold more.
const PROBE_MAX_UNITS: usize = 512;
/// A response outlives its publisher this long (as the HLS playlist does),
/// so an encoder that reconnects continues it.
pub const OFFLINE_GRACE: Duration = Duration::from_secs(30);
/// Units waiting in the reader are gathered into one chunk up to about this
/// size: fewer, larger writes when a player catches up.
const CHUNK_BYTES: usize = 64 * 1024;

/// Why a play request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayError {
    /// No such channel, or nothing on the air.
    Offline,
    /// Too many readers (in all or from this client's host).
    Busy(Refused),
}

/// The FLV egress: its reader cap and who watches what.
pub struct Flv {
    gate: Arc<ConnGate>,
    viewers: Arc<Mutex<HashMap<String, usize>>>,
    shutdown: CancellationToken,
}

impl Flv {
    /// `shutdown` ends every response.
    pub fn new(shutdown: CancellationToken) -> Arc<Flv> {
        Arc::new(Flv {
            gate: ConnGate::new(
                "flv",
                ConnLimits {
                    total: MAX_READERS,
                    per_host: MAX_READERS_PER_HOST,
                },
            ),
            viewers: Default::default(),
            shutdown,
        })
    }

    /// FLV readers of `channel` now.
    pub fn viewers(&self, channel: &str) -> usize {
        let v = self.viewers.lock().expect("flv viewers poisoned");
        v.get(channel).copied().unwrap_or(0)
    }

    /// Every channel with FLV readers, and how many.
    pub fn all_viewers(&self) -> Vec<(String, usize)> {
        let v = self.viewers.lock().expect("flv viewers poisoned");
        v.iter().map(|(c, n)| (c.clone(), *n)).collect()
    }

    /// A new reader of `channel` for `client`, if it is live and the caps
    /// allow. `cap_host` is false for a trusted proxy's own address.
    pub fn play(
        &self,
        hub: &Arc<Hub>,
        channel: &str,
        client: IpAddr,
        cap_host: bool,
    ) -> Result<Play, PlayError> {
        let stream = hub.stream(channel).filter(|s| !s.is_closed());
        if stream.is_none() {
            return Err(PlayError::Offline);
        }
        let permit = self.gate.admit_from(client, cap_host).map_err(|e| {
            crate::metrics::limit_hit(match e {
                Refused::Full => "flv_readers",
                Refused::HostFull => "flv_readers_per_host",
            });
            PlayError::Busy(e)
        })?;
        *self
            .viewers
            .lock()
            .expect("flv viewers poisoned")
            .entry(channel.to_string())
            .or_default() += 1;
        Ok(Play {
            watch: hub.watch(channel),
            reader: None,
            started: false,
            mux: mux::Muxer::new(),
            out: mux::Out::default(),
            last_sent: None,
            new_stream: false,
            shutdown: self.shutdown.clone(),
            _viewer: Viewer {
                viewers: self.viewers.clone(),
                channel: channel.to_string(),
                _permit: permit,
            },
        })
    }
}

/// Counts a response as a viewer while it lives.
struct Viewer {
    viewers: Arc<Mutex<HashMap<String, usize>>>,
    channel: String,
    _permit: ConnPermit,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let mut v = self.viewers.lock().expect("flv viewers poisoned");
        if let Some(n) = v.get_mut(&self.channel) {
            *n -= 1;
            if *n == 0 {
                v.remove(&self.channel);
            }
        }
    }
}

/// One player's FLV stream: [`next_chunk`](Play::next_chunk) until `None`.
pub struct Play {
    watch: watch::Receiver<Option<Arc<Stream>>>,
    reader: Option<Reader>,
    /// The FLV header has been sent.
    started: bool,
    mux: mux::Muxer,
    /// What is to be sent, in pieces (see [`mux::Out`]).
    out: mux::Out,
    last_sent: Option<Instant>,
    /// A new stream was subscribed: its first unit starts a new epoch.
    new_stream: bool,
    shutdown: CancellationToken,
    _viewer: Viewer,
}

impl Play {
    /// The next bytes of the response; `None` ends it (the channel stayed
    /// offline past [`OFFLINE_GRACE`], or the server is shutting down).
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(piece) = self.out.next_piece() {
                return Some(self.sent(piece));
            }
            if self.reader.is_none() {
                let stream = self.wait_live().await?;
                self.new_stream = self.started;
                self.reader =
                    Some(stream.subscribe_bounded("flv", READER_QUEUE_BYTES, "flv_reader_queue"));
            }
            if !self.started {
                if self.probe().await.is_none() {
                    if self.shutdown.is_cancelled() {
                        return None;
                    }
                    self.reader = None;
                }
                continue;
            }
            let reader = self.reader.as_mut().expect("reader set above");
            let unit = tokio::select! {
                u = reader.recv() => u,
                _ = self.shutdown.cancelled() => return None,
            };
            let Some(unit) = unit else {
                self.reader = None;
                continue;
            };
            if std::mem::take(&mut self.new_stream) {
                // The wall time between the last stream's end and this
                // one's first unit, so the picture resumes in real time.
                let gap = self.last_sent.map_or(0, |t| t.elapsed().as_millis() as i64);
                self.mux.next_stream(gap);
            }
            self.mux.push(&unit, &mut self.out);
            while self.out.len() < CHUNK_BYTES {
                let Some(unit) = reader.try_recv() else { break };
                self.mux.push(&unit, &mut self.out);
            }
        }
    }

    fn sent(&mut self, b: Bytes) -> Bytes {
        self.last_sent = Some(Instant::now());
        b
    }

    async fn wait_live(&mut self) -> Option<Arc<Stream>> {
        let deadline = Instant::now() + OFFLINE_GRACE;
        loop {
            let live = self.watch.borrow_and_update().clone();
            if let Some(s) = live.filter(|s| !s.is_closed()) {
                return Some(s);
            }
            tokio::select! {
                r = self.watch.changed() => r.ok()?,
                _ = tokio::time::sleep_until(deadline) => return None,
                _ = self.shutdown.cancelled() => return None,
            }
        }
    }

    /// Reads the first units (the GOP cache, normally), decides the
    /// header's track flags and queues the header and those units' tags.
    /// `None` if the stream ended first.
    async fn probe(&mut self) -> Option<()> {
        let reader = self.reader.as_mut()?;
        let stream = reader.stream().clone();
        let mut units: Vec<Arc<Unit>> = Vec::new();
        let (mut video, mut audio) = (false, false);
        let mut deadline = None;
        loop {
            let next = tokio::select! {
                u = reader.recv() => u,
                _ = self.shutdown.cancelled() => return None,
                _ = sleep_until_opt(deadline) => break,
            };
            let unit = next?;
            match &unit.payload {
                Payload::H264(_) if !video => {
                    if !unit.keyframe {
                        continue;
                    }
                    video = true;
                    // Audio before the first picture would play over nothing.
                    units.retain(|u| u.dts >= unit.dts);
                    audio = !units.is_empty();
                }
                Payload::H264(_) => {}
                Payload::Aac(_) => audio = true,
                Payload::Opus(_) => continue,
            }
            units.push(unit);
            deadline.get_or_insert(Instant::now() + PROBE_WINDOW);
            // What the publisher announced: WHIP's SDP and an Icecast
            // source's format say it at once; RTMP's sequence headers may
            // trail the first frames, so a young RTMP stream may still
            // bring either track.
            let health = stream.health();
            let young = stream.started_at().elapsed().unwrap_or_default() < PROBE_WINDOW;
            let settled = !young || stream.source() != Source::Rtmp;
            let expect_video = !settled
                || health
                    .video_codec
                    .as_deref()
                    .is_some_and(|c| c.starts_with("H.264"));
            let expect_audio = !settled || health.audio_codec.is_some();
            if ((video || !expect_video) && (audio || !expect_audio))
                || units.len() >= PROBE_MAX_UNITS
            {
                break;
            }
        }
        if units.is_empty() {
            return None;
        }
        let has_video = units.iter().any(|u| u.kind() == MediaKind::Video);
        let has_audio = units.iter().any(|u| u.kind() == MediaKind::Audio);
        self.out.own(|o| mux::write_header(o, has_audio, has_video));
        self.mux
            .start_at(units.iter().map(|u| u.dts).min().unwrap_or(0));
        for u in &units {
            self.mux.push(u, &mut self.out);
        }
        self.started = true;
        Some(())
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
