//! LL-HLS egress, recordings and thumbnails: one hub reader per live
//! stream feeds a sans-I/O [`segmenter::Segmenter`]; its parts go to the
//! channel's in-memory [`live::LiveChannel`] (served under `/hls/CHANNEL/`)
//! and, when recording, to a [`recorder::Recording`] on disk.
//!
//! Also here: [`request`] (what an HLS URL names), [`recovery`] (a crashed
//! recording made whole), [`disk`] (the free-space floor) and the deleting
//! of recordings (retention and floor), and [`script`] (unit sequences as
//! bytes, for the segmenter's adversarial table and its fuzz target).
//!
//! Finding live streams: a supervisor task polls [`Hub::live`] every
//! [`POLL`]. The hub has no "stream started" event, and a poll of a small map
//! costs nothing next to one video frame; it keeps the hub untouched and
//! reconnects (a new stream id on the same channel) come for free.

pub mod archive;
pub mod disk;
pub mod export;
pub mod fmp4;
pub mod live;
pub mod recorder;
pub mod recovery;
pub mod request;
mod retention;
pub mod script;
pub mod segmenter;
pub mod thumbs;
pub mod viewers;

use crate::audio::OpusToAac;
use crate::hub::{Hub, Source, Stream};
use crate::media::{MediaKind, Payload, Unit};
use bytes::Bytes;
use live::LiveChannel;
use segmenter::{Event, Segmenter, SegmenterConfig};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the supervisor looks for new streams: adds at most this to
/// the time until the first part.
const POLL: Duration = Duration::from_millis(100);
/// A channel's playlist outlives its publisher this long, so an encoder
/// that reconnects continues the same playlist (with a discontinuity).
const OFFLINE_GRACE: Duration = Duration::from_secs(30);

/// Flags for HLS and recordings (flattened into `serve`'s flags).
#[derive(Debug, clap::Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct HlsArgs {
    /// LL-HLS part duration (PART-TARGET), milliseconds, 100..2000.
    #[arg(long, env = "ONAIR_HLS_PART_MS", global = true, default_value = "200")]
    pub hls_part_ms: Option<u32>,
    /// HLS segment duration, milliseconds; segments end at the first
    /// keyframe after it.
    #[arg(
        long,
        env = "ONAIR_HLS_SEGMENT_MS",
        global = true,
        default_value = "2000"
    )]
    pub hls_segment_ms: Option<u32>,
    /// Record every broadcast; `--recording false` turns recording off for
    /// the whole server.
    #[arg(long, env = "ONAIR_RECORDING", global = true, default_value = "true")]
    pub recording: Option<bool>,
    /// Delete recordings older than this many hours (oldest first).
    #[arg(long, env = "ONAIR_RETENTION_MAX_AGE_HOURS", global = true)]
    pub retention_max_age_hours: Option<u64>,
    /// Delete the oldest recordings while all of them take more than this
    /// many megabytes.
    #[arg(long, env = "ONAIR_RETENTION_MAX_SIZE_MB", global = true)]
    pub retention_max_size_mb: Option<u64>,
    /// Free space recordings always leave in the data folder: a share
    /// (`5%`) or a size (`2GiB`). Under it the oldest recordings are
    /// deleted, then recording pauses. Default: 5 % or 1 GiB, whichever is
    /// smaller; never under 16 MiB (the database's room).
    #[arg(long, env = "ONAIR_MIN_FREE_DISK", global = true)]
    pub min_free_disk: Option<disk::MinFreeDisk>,
}

impl HlsArgs {
    pub fn resolve(&self) -> HlsConfig {
        let d = HlsConfig::default();
        HlsConfig {
            part_ms: self.hls_part_ms.unwrap_or(d.part_ms),
            segment_ms: self.hls_segment_ms.unwrap_or(d.segment_ms),
            recording: self.recording.unwrap_or(d.recording),
            retention_max_age: self
                .retention_max_age_hours
                .map(|h| Duration::from_secs(h * 3600)),
            retention_max_bytes: self.retention_max_size_mb.map(|m| m << 20),
            min_free_disk: self.min_free_disk,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HlsConfig {
    pub part_ms: u32,
    pub segment_ms: u32,
    pub recording: bool,
    pub retention_max_age: Option<Duration>,
    pub retention_max_bytes: Option<u64>,
    /// `None`: the default floor (see [`disk::floor`]).
    pub min_free_disk: Option<disk::MinFreeDisk>,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            // 200 ms parts: PART-HOLD-BACK 0.6 s, what keeps hls.js near 1 s.
            part_ms: 200,
            segment_ms: 2000,
            recording: true,
            retention_max_age: None,
            retention_max_bytes: None,
            min_free_disk: None,
        }
    }
}

impl HlsConfig {
    pub fn segmenter(&self) -> SegmenterConfig {
        SegmenterConfig::new(self.part_ms, self.segment_ms)
    }
}

/// The HLS side of the server: live playlists, thumbnails, recordings.
pub struct Hls {
    /// Estimated HLS viewers per channel.
    pub viewers: viewers::HlsViewers,
    cfg: HlsConfig,
    channels: Mutex<HashMap<String, Arc<LiveChannel>>>,
    thumbs: thumbs::Thumbnails,
    recordings: Option<Arc<recorder::Recordings>>,
    hooks: Arc<crate::hooks::Hooks>,
}

impl Hls {
    /// Starts the supervisor, the retention sweeper and the archiver (see
    /// [`archive`]). Unfinished recordings from a previous run are
    /// finalized first.
    pub async fn start(
        cfg: HlsConfig,
        hub: Arc<Hub>,
        recordings: Arc<recorder::Recordings>,
        hooks: Arc<crate::hooks::Hooks>,
        token: CancellationToken,
        tracker: &TaskTracker,
    ) -> Arc<Hls> {
        // The end of a broadcast a crash cut off is only known now.
        for (row, finished) in recordings.recover().await {
            hooks.publish_ended(None, &row.channel, Some(row.id), Some(finished));
        }
        recordings.remove_orphans().await;
        let hls = Arc::new(Hls {
            viewers: Default::default(),
            cfg,
            channels: Mutex::new(HashMap::new()),
            thumbs: thumbs::Thumbnails::default(),
            recordings: Some(recordings.clone()),
            hooks,
        });
        tracker.spawn(supervise(hls.clone(), hub, token.clone(), tracker.clone()));
        tracker.spawn(recordings.clone().sweep_forever(token.clone()));
        tracker.spawn(recordings.clone().archive_forever(token.clone()));
        tracker.spawn(recordings.watch_disk_forever(token));
        hls
    }

    pub fn channel(&self, name: &str) -> Option<Arc<LiveChannel>> {
        self.channels
            .lock()
            .expect("hls poisoned")
            .get(name)
            .cloned()
    }

    pub fn thumbnail(&self, channel: &str) -> Option<Bytes> {
        self.thumbs.get(channel)
    }

    pub fn recordings(&self) -> Option<&Arc<recorder::Recordings>> {
        self.recordings.as_ref()
    }

    fn channel_for(&self, name: &str) -> Arc<LiveChannel> {
        self.channels
            .lock()
            .expect("hls poisoned")
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(LiveChannel::new(name.to_string(), self.cfg.segmenter())))
            .clone()
    }
}

async fn supervise(hls: Arc<Hls>, hub: Arc<Hub>, token: CancellationToken, tracker: TaskTracker) {
    let mut seen: HashSet<u64> = HashSet::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let live = hub.live();
        let ids: HashSet<u64> = live.iter().map(|s| s.id()).collect();
        // A relayed stream is another server's publish: it makes the
        // LL-HLS and the recording.
        for stream in live.into_iter().filter(|s| s.source() != Source::Relay) {
            if seen.insert(stream.id()) {
                tracker.spawn(follow(hls.clone(), stream, token.clone()));
            }
        }
        seen.retain(|id| ids.contains(id));
        hls.channels
            .lock()
            .expect("hls poisoned")
            .retain(|_, ch| !ch.offline_for(OFFLINE_GRACE));
    }
}

/// One stream, publish to unpublish: segmenter, live playlist, recording,
/// thumbnails.
async fn follow(hls: Arc<Hls>, stream: Arc<Stream>, token: CancellationToken) {
    let mut reader = stream.subscribe("hls");
    let name = stream.channel().to_string();
    let channel = hls.channel_for(&name);
    let (msn, init_id, discontinuity) = channel.begin_stream();
    let mut seg = Segmenter::new(*channel.config(), msn, init_id, discontinuity);
    let mut recording = match &hls.recordings {
        Some(r) => r.start(&stream).await,
        None => None,
    };
    let broadcast = recording.as_ref().map(|r| r.id);
    hls.hooks
        .publish_started(stream.id(), &name, stream.source().name(), broadcast);
    let mut thumbs = hls.thumbs.for_channel(&name, stream.id());
    let mut opus_to_aac = LazyTranscoder::default();
    let mut warned = Vec::new();
    let mut paused_shown = false;
    tracing::info!(channel = %name, stream = stream.id(), "HLS: following stream");
    loop {
        let unit = tokio::select! {
            u = reader.recv() => u,
            _ = token.cancelled() => None,
        };
        let Some(unit) = unit else { break };
        if unit.kind() == MediaKind::Video && unit.keyframe {
            thumbs.offer(&unit, recording.as_ref().and_then(|r| r.poster_path()));
        }
        if matches!(unit.payload, Payload::Aac(_)) && stream.has_aac_twin() {
            continue; // our own transcode, back from the stream
        }
        if let Payload::Opus(packet) = &unit.payload {
            if stream.both_audio_forms() {
                continue; // its AAC twin is ours
            }
            // HLS carries AAC: a WHIP publisher's Opus is transcoded here,
            // once per stream, for the live playlist and the recording alike,
            // and handed back to the stream for the other egress that take
            // AAC (HTTP-FLV), so nobody transcodes it again.
            for aac in opus_to_aac.push(&name, packet, unit.pts) {
                stream.write_aac_twin(aac.clone());
                let events = seg.push(Arc::new(aac));
                deliver(&channel, recording.as_mut(), &events);
            }
            report_limits(&name, &mut seg, &mut warned);
            continue;
        }
        let events = seg.push(unit);
        deliver(&channel, recording.as_mut(), &events);
        report_limits(&name, &mut seg, &mut warned);
        let paused = recording.as_ref().is_some_and(|r| r.paused());
        if paused != paused_shown {
            paused_shown = paused;
            show_recording_paused(&stream, paused);
        }
    }
    let events: Vec<Event> = seg.finish();
    deliver(&channel, recording.as_mut(), &events);
    channel.end_stream();
    let finished = match recording {
        Some(rec) => rec.finish().await,
        None => None,
    };
    if let Some(r) = &hls.recordings {
        r.archive_soon();
    }
    hls.hooks
        .publish_ended(Some(stream.id()), &name, broadcast, finished);
    tracing::info!(channel = %name, stream = stream.id(), "HLS: stream ended");
}

/// The dashboard's health warning while recording is paused for lack of
/// disk space.
pub const RECORDING_PAUSED_WARNING: &str =
    "Recording paused: the server's disk is almost full (under --min-free-disk). The live stream goes on; recording resumes when there is room.";

fn show_recording_paused(stream: &Stream, paused: bool) {
    stream.update_health(|h| {
        h.warnings.retain(|w| w != RECORDING_PAUSED_WARNING);
        if paused {
            h.warnings.push(RECORDING_PAUSED_WARNING.to_string());
        }
    });
}

/// Counts what the segmenter's bounds and timestamp rules did in
/// `onair_limit_hits_total`, and logs each kind once per stream.
fn report_limits(channel: &str, seg: &mut Segmenter, warned: &mut Vec<segmenter::Limit>) {
    seg.drain_limit_hits(|limit, n| {
        for _ in 0..n {
            crate::metrics::limit_hit(limit.name());
        }
        if !warned.contains(&limit) {
            warned.push(limit);
            tracing::warn!(
                channel,
                limit = limit.name(),
                "HLS: the publisher's stream hit a segmenter rule (see hls::segmenter); counted in onair_limit_hits_total"
            );
        }
    });
}

/// An Opus-to-AAC transcoder made at the first Opus packet: RTMP streams,
/// which carry AAC already, never pay for one.
#[derive(Default)]
enum LazyTranscoder {
    #[default]
    NotYet,
    Ready(Box<OpusToAac>),
    /// Construction failed once (logged); the stream's HLS goes without
    /// audio rather than retrying per packet.
    Failed,
}

impl LazyTranscoder {
    fn push(&mut self, channel: &str, packet: &[u8], pts: i64) -> Vec<Unit> {
        if let LazyTranscoder::NotYet = self {
            *self = match OpusToAac::new() {
                Ok(t) => LazyTranscoder::Ready(Box::new(t)),
                Err(e) => {
                    tracing::error!(
                        channel,
                        "HLS: no Opus to AAC transcoder, audio left out: {e}"
                    );
                    LazyTranscoder::Failed
                }
            };
        }
        match self {
            LazyTranscoder::Ready(t) => t.push(packet, pts),
            _ => Vec::new(),
        }
    }
}

fn deliver(channel: &LiveChannel, recording: Option<&mut recorder::Recording>, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    channel.apply(events);
    if let Some(rec) = recording {
        rec.write(events);
    }
}
