use super::reader::{Reader, Shared};
use crate::media::{Gop, MediaKind, Unit};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// The GOP cache may hold at most this many units / bytes. A publisher that
/// never sends a keyframe would otherwise grow it without limit; past the
/// cap, new readers simply wait for the next keyframe.
const GOP_MAX_UNITS: usize = 2048;
const GOP_MAX_BYTES: usize = 32 << 20;

/// Slow-reader drops are summed and logged at most this often per stream.
const DROP_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// What the publisher said about itself and what we saw, for the dashboard
/// and for operators.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Health {
    /// The publisher's `onMetaData` (RTMP), as sent.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Non-zero composition offsets were seen: the encoder uses B-frames,
    /// which WebRTC cannot carry in order.
    pub bframes: bool,
    pub video_units: u64,
    pub audio_units: u64,
    pub bytes: u64,
    pub keyframes: u64,
    /// Why some egress is off for this stream, if it is.
    pub warnings: Vec<String>,
    /// The track on the air, as the source last said (Icecast's
    /// `/admin/metadata`).
    pub now_playing: Option<String>,
    /// When the first audio track was seen: how long a stream has had
    /// sound and no picture.
    #[serde(skip)]
    pub audio_since: Option<Instant>,
}

struct Inner {
    /// Everything from the latest primary keyframe on, weighed in payload
    /// bytes, so a new reader starts decoding at once.
    gop: Gop<Arc<Unit>>,
    has_video: bool,
    readers: Vec<Weak<Shared>>,
    dropped_since_log: u64,
    last_drop_log: Option<Instant>,
}

/// How a stream came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Rtmp,
    /// WebRTC: its RTP is forwarded to WebRTC viewers as it came; the hub
    /// units (depacketized) feed everything else.
    Whip,
    /// An Icecast source client (audio only).
    Icecast,
    /// Another server of the site, pulled over WHEP by an edge for its own
    /// viewers: the publish is the origin's, which records it, makes its
    /// LL-HLS and holds its live lease.
    Relay,
}

impl Source {
    /// As the API and webhooks spell it.
    pub fn name(self) -> &'static str {
        match self {
            Source::Rtmp => "rtmp",
            Source::Whip => "whip",
            Source::Icecast => "icecast",
            Source::Relay => "relay",
        }
    }
}

/// One live broadcast on one channel: from a publish to its end.
pub struct Stream {
    id: u64,
    source: Source,
    channel: String,
    started_at: SystemTime,
    inner: Mutex<Inner>,
    health: Mutex<Health>,
    closed: CancellationToken,
    both_audio_forms: AtomicBool,
    aac_twin: AtomicBool,
    /// A digest of the stream key the publisher signed in with (see
    /// [`crate::hub::keys`]); never the key itself.
    held_key: std::sync::OnceLock<[u8; 32]>,
}

impl Stream {
    pub(super) fn new(id: u64, channel: String, source: Source) -> Self {
        Stream {
            id,
            source,
            channel,
            started_at: SystemTime::now(),
            inner: Mutex::new(Inner {
                gop: Gop::new(GOP_MAX_UNITS, GOP_MAX_BYTES),
                has_video: false,
                readers: Vec::new(),
                dropped_since_log: 0,
                last_drop_log: None,
            }),
            health: Mutex::new(Health::default()),
            closed: CancellationToken::new(),
            both_audio_forms: AtomicBool::new(false),
            held_key: std::sync::OnceLock::new(),
            aac_twin: AtomicBool::new(false),
        }
    }

    /// Notes the stream key this stream was published with (its
    /// [`fingerprint`](super::keys::fingerprint)), so a key rotated or an
    /// account deleted elsewhere (the CLI, another process) ends it too.
    pub fn hold_key(&self, fingerprint: [u8; 32]) {
        let _ = self.held_key.set(fingerprint);
    }

    pub fn held_key(&self) -> Option<&[u8; 32]> {
        self.held_key.get()
    }

    /// Unique per publish, across channels; tells a reconnect from the
    /// stream it replaced.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Cancelled when the publisher leaves or is replaced.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    pub fn health(&self) -> Health {
        self.health.lock().expect("health poisoned").clone()
    }

    pub fn update_health(&self, f: impl FnOnce(&mut Health)) {
        f(&mut self.health.lock().expect("health poisoned"))
    }

    /// Said by a publisher that decodes its source once and writes its
    /// audio twice, as AAC (for HLS and recordings) and as Opus (for
    /// WebRTC): each egress then takes its own form and skips the other,
    /// instead of transcoding it. Set before the first unit.
    pub fn set_both_audio_forms(&self) {
        self.both_audio_forms.store(true, Ordering::Relaxed);
    }

    pub fn both_audio_forms(&self) -> bool {
        self.both_audio_forms.load(Ordering::Relaxed)
    }

    /// Whether a reader of that name (an egress: "webrtc", "hls") follows
    /// the stream now: a publisher that makes a form only one egress needs
    /// makes it only while that egress reads.
    pub fn has_reader(&self, name: &str) -> bool {
        let inner = self.inner.lock().expect("stream poisoned");
        inner
            .readers
            .iter()
            .filter_map(Weak::upgrade)
            .any(|r| r.name == name)
    }

    pub fn reader_count(&self) -> usize {
        let inner = self.inner.lock().expect("stream poisoned");
        inner
            .readers
            .iter()
            .filter(|r| r.strong_count() > 0)
            .count()
    }

    /// A new reader, primed with the cached GOP so it can start at once.
    pub fn subscribe(self: &Arc<Self>, name: &'static str) -> Reader {
        self.subscribe_with(name, super::reader::READER_QUEUE_BYTES, None)
    }

    /// [`subscribe`](Self::subscribe) with a tighter bound on the payload
    /// bytes waiting for this reader (an egress whose clients are strangers
    /// on slow links, where a smaller lag should already mean "skip"),
    /// counting each overflow as a hit of `limit`. A cached GOP larger than
    /// the bound is not primed: the reader starts at the next keyframe.
    pub fn subscribe_bounded(
        self: &Arc<Self>,
        name: &'static str,
        max_bytes: usize,
        limit: &'static str,
    ) -> Reader {
        self.subscribe_with(name, max_bytes, Some(limit))
    }

    fn subscribe_with(
        self: &Arc<Self>,
        name: &'static str,
        max_bytes: usize,
        limit: Option<&'static str>,
    ) -> Reader {
        let max_bytes = max_bytes.min(super::reader::READER_QUEUE_BYTES);
        let shared = Arc::new(Shared::new(name, max_bytes, limit));
        {
            let mut inner = self.inner.lock().expect("stream poisoned");
            if !inner.gop.is_empty() && inner.gop.weight() <= max_bytes {
                let mut q = shared.queue.lock().expect("reader queue poisoned");
                q.units.extend(inner.gop.items().iter().cloned());
                q.bytes = inner.gop.weight();
            }
            if self.closed.is_cancelled() {
                shared.queue.lock().expect("reader queue poisoned").closed = true;
            }
            inner.readers.retain(|r| r.strong_count() > 0);
            inner.readers.push(Arc::downgrade(&shared));
        }
        Reader {
            shared,
            stream: self.clone(),
        }
    }

    pub(super) fn unsubscribe(&self, shared: &Arc<Shared>) {
        let mut inner = self.inner.lock().expect("stream poisoned");
        let target = Arc::as_ptr(shared);
        inner
            .readers
            .retain(|r| r.as_ptr() != target && r.strong_count() > 0);
    }

    /// Said by an egress that makes a second form of a track once per
    /// stream (HLS transcodes a WHIP publisher's Opus to AAC): it hands the
    /// result to every reader, so other egress that need that form (FLV)
    /// take it instead of transcoding again. The publisher's health
    /// counters are left alone; the writer skips its own units when they
    /// come back ([`has_aac_twin`](Self::has_aac_twin)).
    pub fn write_aac_twin(&self, unit: Unit) {
        self.aac_twin.store(true, Ordering::Relaxed);
        self.fan_out(unit);
    }

    /// Whether the stream's AAC units are an egress's twin of its Opus
    /// (see [`write_aac_twin`](Self::write_aac_twin)).
    pub fn has_aac_twin(&self) -> bool {
        self.aac_twin.load(Ordering::Relaxed)
    }

    /// Hands a unit to every reader. Never waits: a full reader is made to
    /// skip instead.
    pub(super) fn write(&self, unit: Unit) {
        let kind = unit.kind();
        let bytes = unit.payload.len();
        let keyframe = unit.keyframe;
        self.fan_out(unit);
        let mut h = self.health.lock().expect("health poisoned");
        h.bytes += bytes as u64;
        match kind {
            MediaKind::Video => {
                h.video_units += 1;
                if keyframe {
                    h.keyframes += 1;
                }
            }
            MediaKind::Audio => h.audio_units += 1,
        }
    }

    fn fan_out(&self, unit: Unit) {
        let kind = unit.kind();
        let bytes = unit.payload.len();
        let unit = Arc::new(unit);
        let mut inner = self.inner.lock().expect("stream poisoned");
        if kind == MediaKind::Video {
            inner.has_video = true;
        }
        // In a stream with video only video keyframes are random access
        // points; an audio-only stream starts anywhere.
        let primary_keyframe = unit.keyframe && (kind == MediaKind::Video || !inner.has_video);
        inner.gop.push(primary_keyframe, bytes, [unit.clone()]);
        let mut dropped = 0;
        inner.readers.retain(|r| match r.upgrade() {
            Some(shared) => {
                dropped += shared.push(&unit, primary_keyframe);
                true
            }
            None => false,
        });
        if dropped > 0 {
            inner.dropped_since_log += dropped;
            let now = Instant::now();
            let due = inner
                .last_drop_log
                .is_none_or(|t| now.duration_since(t) >= DROP_LOG_INTERVAL);
            if due {
                tracing::warn!(
                    channel = %self.channel,
                    discarded = inner.dropped_since_log,
                    "a reader is too slow, discarding units until the next keyframe"
                );
                crate::metrics::add_reader_drops(inner.dropped_since_log);
                inner.dropped_since_log = 0;
                inner.last_drop_log = Some(now);
            }
        }
    }

    pub(super) fn close(&self) {
        self.closed.cancel();
        let inner = self.inner.lock().expect("stream poisoned");
        for r in inner.readers.iter().filter_map(|r| r.upgrade()) {
            r.close();
        }
    }
}
