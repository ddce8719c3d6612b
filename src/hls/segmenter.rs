//! Units in, CMAF init segments, LL-HLS parts and segment boundaries out.
//! Sans-I/O: no clock, no tasks; the caller feeds [`Unit`]s in decode order
//! and hands the [`Event`]s to the live playlist and the recorder.
//!
//! What must stay true (RFC 8216bis 4.4.3.7, 4.4.4.9):
//! - every part lasts at most [`SegmenterConfig::part_target`]: a part is cut
//!   *before* the frame that would take it past the target. The exception
//!   is a single frame that lasts longer (a publisher under 1/PART-TARGET
//!   frames a second, or one resuming after a stall of up to a second): a
//!   part never splits a frame, and shortening the frame would leave a
//!   hole in the timeline or move the audio away from the video;
//! - every segment's duration, rounded to the nearest integer, is at most
//!   [`SegmenterConfig::target_duration`] (RFC 8216bis 4.4.3.1): segments
//!   end at a keyframe once they reach `segment_target`, and are cut anyway
//!   before they would reach TARGETDURATION + 0.5 s (a publisher with
//!   sparse keyframes). TARGETDURATION is the segment target itself, so
//!   HOLD-BACK (3 x TARGETDURATION) keeps a player that ignores the LL tags
//!   about 3 segments behind;
//! - a part is INDEPENDENT only when it starts with a video keyframe (or is
//!   audio-only); every video keyframe starts a part, so players can join
//!   at each one, not only at segment starts;
//! - a new SPS or AAC config, or a new track, ends the segment and brings a
//!   new init segment; the next segment carries a discontinuity. A config
//!   that changes again within [`MIN_UNITS_BETWEEN_INITS`] units is
//!   dropped until that many have passed.
//!
//! # Bounds
//!
//! Nothing a publisher sends makes the segmenter hold more than
//! [`MAX_PROBE_UNITS`] units before it starts, or a part more than
//! [`MAX_PART_UNITS`] units / [`MAX_PART_BYTES`] bytes, or a segment more
//! than [`MAX_SEGMENT_PARTS`] parts / [`MAX_SEGMENT_BYTES`] bytes: a part or
//! segment that would pass a bound is cut early (a shorter part or segment
//! is always valid), so the bounds hold whatever the timestamps say.
//!
//! # Timestamps
//!
//! The segmenter writes its own output timeline: decode times in the fMP4
//! (and the durations in the playlists) are strictly increasing and never
//! jump, whatever the publisher's clock does. For the primary track (video
//! when there is one), with `gap` the step from the previous unit's decode
//! time:
//!
//! | input | what happens | why |
//! |---|---|---|
//! | `0 < gap <= 1 s` | kept as is (a frame longer than PART-TARGET makes a part that long, see above); if it would take the segment past TARGETDURATION + 0.5 s, the segment ends when the frame was due and the next starts at the frame, a hole between them | a frame; EXTINF must round to at most TARGETDURATION (RFC 8216bis 4.4.3.1), and a hole keeps audio and video times true where stretching or shifting would not |
//! | `gap == 0` (stall, repeat) or `-1 s <= gap < 0` (small step back) | clamped: one tick after the previous unit | the frame is still needed by the decoder (later frames refer to it); strictly increasing decode times are what ISO/IEC 14496-12 8.6.1 asks, and what ffmpeg's muxer does too (`Non-monotonous DTS`) |
//! | `\|gap\| > 1 s` (a jump either way) | a break: the output goes on one frame later; the segment ends (the next one carries EXT-X-DISCONTINUITY) if it already lasts half the segment target, otherwise it absorbs the break | a publisher that restarted its clock, a reader that skipped: players need continuous times; ending the segment only when it is old enough means a clock that flaps on every frame makes at most twice the usual number of segments (each a file, two fsyncs and a DB write when recording), not one per frame |
//! | decode or presentation time beyond ±[`MAX_ABS_TICKS`] | dropped (video then waits for the next keyframe) | no ingest makes such times (RTMP: 32-bit milliseconds); refusing them keeps every later sum far from overflow |
//! | a unit of more than [`MAX_PART_BYTES`] | dropped (video then waits for the next keyframe) | it could not fit a part; no encoder makes one (WHIP ingest caps access units at 4 MiB) |
//!
//! Other tracks (audio next to video) follow the primary clock: each unit
//! is placed at its own time on the same output timeline, its samples kept
//! contiguous (a step back is clamped to the end of the previous sample, a
//! gap stretches it by at most one second), and units that do not fit the
//! open part's bounds are dropped. Presentation offsets (B-frames) are
//! clamped to `0..=`[`MAX_CTS_TICKS`].
//!
//! Every drop, clamp, break and early cut is counted; the caller reports
//! them with [`Segmenter::drain_limit_hits`].

use super::fmp4::{self, Run, Sample, Tracks, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use crate::media::{MediaKind, Payload, TrackConfig, Unit, CLOCK_RATE};
use bytes::Bytes;
use std::sync::Arc;

/// How long a stream may show only one kind of track before we decide it
/// has only that one: long enough for RTMP's first audio after the first
/// video keyframe, short enough that a video-only stream starts quickly.
const PROBE_TICKS: i64 = CLOCK_RATE / 2;

/// Units held while the track set is unknown. Half a second of 60 fps
/// video and 48 kHz AAC is 54; past this the segmenter starts with what it
/// has, so timestamps that never advance cannot keep it probing.
pub const MAX_PROBE_UNITS: usize = 256;

/// A decode-time step larger than this (or backwards by more) is a break
/// in the stream (a reader that skipped, a publisher that restarted its
/// clock), not a long frame.
const MAX_GAP_TICKS: i64 = CLOCK_RATE;

/// Units in one part. A 2 s part (the longest PART-TARGET allowed) of
/// 60 fps video and 48 kHz AAC holds 214; a stalled clock that never lets
/// a part reach its duration gets its parts cut here instead.
pub const MAX_PART_UNITS: usize = 1024;

/// Bytes of media (in MP4 form) in one part: twice the largest access unit
/// WHIP ingest reassembles (4 MiB), so the largest keyframe fits with what
/// follows it. 200 ms of even 100 Mbit/s video is 2.5 MB.
pub const MAX_PART_BYTES: usize = 8 << 20;

/// Parts in one segment. At the defaults a segment has 10 parts plus one
/// per keyframe (an all-intra 60 fps stream: 120 in 2 s). The live
/// playlist lists the parts of three segments and is re-rendered on every
/// part, so this also bounds that work (~800 lines).
pub const MAX_SEGMENT_PARTS: usize = 256;

/// Bytes of media in one segment: 64 Mbit/s over a 2 s segment, above
/// what encoders make for 4K60 H.264. Faster streams get shorter segments,
/// never lost data. The live window (10 segments, the parts of 3) then
/// holds at most ~210 MiB for one channel.
pub const MAX_SEGMENT_BYTES: usize = 16 << 20;

/// Decode and presentation times beyond this (±2^46 ticks, 24 years) are
/// refused: RTMP's extended 32-bit milliseconds stay below 2^39, and the
/// margin keeps sums and the audio rescaling far from `i64` overflow.
pub const MAX_ABS_TICKS: i64 = 1 << 46;

/// Presentation offset (pts - dts) kept in the fMP4: B-frame pyramids
/// delay by a few frames; 10 s is past any encoder and well inside trun's
/// 32 bits.
pub const MAX_CTS_TICKS: i64 = 10 * CLOCK_RATE;

/// A changed SPS or AudioSpecificConfig makes a new init segment and a
/// new segment (each a file and an fsync when recording). An encoder
/// changes its configuration when its settings change, not per frame, so
/// a change is taken at most once per this many units (2 s of 30 fps
/// video); one that comes sooner is dropped. Dropped units count too, so
/// a publisher that switched for good is followed within this many units.
pub const MIN_UNITS_BETWEEN_INITS: u32 = 60;

/// AAC-LC frames hold 1024 samples (ISO/IEC 14496-3 4.5.1.1).
const AAC_FRAME_SAMPLES: u64 = 1024;

/// The bounds and timestamp rules the segmenter applies, by the name they
/// get in `onair_limit_hits_total{limit}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    ProbeUnits,
    PartUnits,
    PartBytes,
    SegmentParts,
    SegmentBytes,
    UnitTooLarge,
    TimestampClamped,
    TimestampBreak,
    TimestampOutOfRange,
    /// A non-primary unit that found no room in the open part.
    TrackDropped,
    /// A config change sooner than [`MIN_UNITS_BETWEEN_INITS`].
    ConfigChanges,
}

impl Limit {
    const ALL: [Limit; 11] = [
        Limit::ProbeUnits,
        Limit::PartUnits,
        Limit::PartBytes,
        Limit::SegmentParts,
        Limit::SegmentBytes,
        Limit::UnitTooLarge,
        Limit::TimestampClamped,
        Limit::TimestampBreak,
        Limit::TimestampOutOfRange,
        Limit::TrackDropped,
        Limit::ConfigChanges,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Limit::ProbeUnits => "hls_probe_units",
            Limit::PartUnits => "hls_part_units",
            Limit::PartBytes => "hls_part_bytes",
            Limit::SegmentParts => "hls_segment_parts",
            Limit::SegmentBytes => "hls_segment_bytes",
            Limit::UnitTooLarge => "hls_unit_too_large",
            Limit::TimestampClamped => "hls_timestamp_clamped",
            Limit::TimestampBreak => "hls_timestamp_break",
            Limit::TimestampOutOfRange => "hls_timestamp_out_of_range",
            Limit::TrackDropped => "hls_track_unit_dropped",
            Limit::ConfigChanges => "hls_config_changes",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterConfig {
    /// PART-TARGET, in 90 kHz ticks.
    pub part_target: i64,
    /// Where a segment ends once a keyframe comes, in ticks.
    pub segment_target: i64,
    /// EXT-X-TARGETDURATION, whole seconds: no segment is longer once
    /// rounded to the nearest second.
    pub target_duration: u32,
}

impl SegmenterConfig {
    pub fn new(part_ms: u32, segment_ms: u32) -> Self {
        let part_ms = part_ms.clamp(100, 2000) as i64;
        let segment_ms = (segment_ms as i64).max(part_ms * 2);
        let target_duration = ((segment_ms + 999) / 1000).max(1) as u32;
        SegmenterConfig {
            part_target: part_ms * CLOCK_RATE / 1000,
            segment_target: segment_ms * CLOCK_RATE / 1000,
            target_duration,
        }
    }

    pub fn part_target_secs(&self) -> f64 {
        self.part_target as f64 / CLOCK_RATE as f64
    }
}

#[derive(Debug)]
pub struct Init {
    pub id: u32,
    pub tracks: Tracks,
    pub bytes: Bytes,
}

#[derive(Debug)]
pub struct Part {
    pub msn: u64,
    pub index: u32,
    /// Output decode time of its first primary-track sample, ticks.
    pub start: i64,
    pub duration: f64,
    pub independent: bool,
    pub bytes: Bytes,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A new init segment; segments from the next `SegmentStart` on use it.
    Init(Arc<Init>),
    SegmentStart {
        msn: u64,
        init_id: u32,
        discontinuity: bool,
        start: i64,
    },
    Part(Arc<Part>),
    SegmentEnd {
        msn: u64,
        duration: f64,
    },
}

struct Open {
    msn: u64,
    /// Output time.
    start: i64,
    next_part: u32,
    bytes: usize,
}

/// A unit at its place on the output timeline.
struct Placed {
    dts: i64,
    unit: Arc<Unit>,
}

struct PartBuf {
    /// Output time.
    start: i64,
    units: Vec<Placed>,
    bytes: usize,
    independent: bool,
}

pub struct Segmenter {
    cfg: SegmenterConfig,
    pending: Vec<Arc<Unit>>,
    started: bool,
    init_sent: bool,
    tracks: Tracks,
    primary: MediaKind,
    init_id: u32,
    next_msn: u64,
    /// The next segment must carry EXT-X-DISCONTINUITY.
    discontinuity: bool,
    segment: Option<Open>,
    part: Option<PartBuf>,
    /// Input decode time of the last primary unit; `None` when the input
    /// clock may start over (the start, or a new video config).
    last_in: Option<i64>,
    /// Output decode time of the last primary unit.
    last_out: Option<i64>,
    frame_delta: i64,
    /// Video was dropped: skip to the next keyframe, which later frames do
    /// not refer past.
    await_keyframe: bool,
    /// The audio sample clock: the expected start of the next AAC frame,
    /// in samples, so frame times stay exact despite millisecond RTMP times.
    audio_next: Option<u64>,
    /// Output time = input time - origin. Moves at breaks and clock
    /// restarts so the output never jumps.
    origin: i64,
    fragment_seq: u32,
    /// Units pushed since the last init segment.
    units_since_init: u32,
    hits: [u64; Limit::ALL.len()],
}

/// Size of a unit's samples in MP4 form: NAL units get a 4-byte length
/// each (what a flood of empty NAL units costs, too).
fn mp4_size(unit: &Unit) -> usize {
    match &unit.payload {
        Payload::H264(nalus) => nalus.iter().map(|n| n.len() + 4).sum(),
        Payload::Aac(b) | Payload::Opus(b) => b.len(),
    }
}

impl Segmenter {
    /// `first_msn` and `first_init_id` continue a channel's numbering across
    /// publisher reconnects; `discontinuity` marks the first segment.
    pub fn new(
        cfg: SegmenterConfig,
        first_msn: u64,
        first_init_id: u32,
        discontinuity: bool,
    ) -> Self {
        Segmenter {
            cfg,
            pending: Vec::new(),
            started: false,
            init_sent: false,
            tracks: Tracks {
                video: None,
                audio: None,
            },
            primary: MediaKind::Video,
            init_id: first_init_id,
            next_msn: first_msn,
            discontinuity,
            segment: None,
            part: None,
            last_in: None,
            last_out: None,
            frame_delta: CLOCK_RATE / 30,
            await_keyframe: false,
            audio_next: None,
            origin: 0,
            fragment_seq: 0,
            units_since_init: MIN_UNITS_BETWEEN_INITS,
            hits: [0; Limit::ALL.len()],
        }
    }

    pub fn config(&self) -> &SegmenterConfig {
        &self.cfg
    }

    pub fn tracks(&self) -> &Tracks {
        &self.tracks
    }

    /// The media sequence number the next segment will get.
    pub fn next_msn(&self) -> u64 {
        self.next_msn
    }

    pub fn init_id(&self) -> u32 {
        self.init_id
    }

    /// Units and bytes held right now (probe buffer and open part): what
    /// the bounds in the module docs keep small.
    pub fn buffered(&self) -> (usize, usize) {
        let probe = self.pending.iter().map(|u| mp4_size(u)).sum::<usize>();
        let (n, b) = self
            .part
            .as_ref()
            .map_or((0, 0), |p| (p.units.len(), p.bytes));
        (self.pending.len() + n, probe + b)
    }

    /// Hands over (and resets) how often each bound or timestamp rule hit
    /// since the last call.
    pub fn drain_limit_hits(&mut self, mut f: impl FnMut(Limit, u64)) {
        for (i, n) in self.hits.iter_mut().enumerate() {
            if *n > 0 {
                f(Limit::ALL[i], std::mem::take(n));
            }
        }
    }

    fn hit(&mut self, limit: Limit) {
        let i = Limit::ALL.iter().position(|l| *l == limit).unwrap_or(0);
        self.hits[i] += 1;
    }

    pub fn push(&mut self, unit: Arc<Unit>) -> Vec<Event> {
        let mut out = Vec::new();
        if !matches!(*unit.config, TrackConfig::H264(_) | TrackConfig::Aac(_)) {
            return out; // Opus needs a transcoder first; see the module docs.
        }
        self.units_since_init = self.units_since_init.saturating_add(1);
        if unit.dts.unsigned_abs() > MAX_ABS_TICKS as u64
            || unit.pts.unsigned_abs() > MAX_ABS_TICKS as u64
        {
            self.hit(Limit::TimestampOutOfRange);
            self.await_keyframe |= unit.kind() == MediaKind::Video;
            return out;
        }
        if mp4_size(&unit) > MAX_PART_BYTES {
            self.hit(Limit::UnitTooLarge);
            self.await_keyframe |= unit.kind() == MediaKind::Video;
            return out;
        }
        if unit.kind() == MediaKind::Video && self.await_keyframe {
            if !unit.keyframe {
                return out;
            }
            self.await_keyframe = false;
        }
        if !self.started {
            if let Some(units) = self.probe(unit) {
                for u in units {
                    self.feed(u, &mut out);
                }
            }
            return out;
        }
        self.feed(unit, &mut out);
        out
    }

    /// Closes the part and segment in progress (the publisher left).
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some(last) = self.last_out {
            let end = last + self.frame_delta;
            self.close_part(end, &mut out);
            self.close_segment(end, &mut out);
        }
        out
    }

    /// Buffers the first units until the track set is known. Returns the
    /// units to feed, starting at a random access point, once it is.
    fn probe(&mut self, unit: Arc<Unit>) -> Option<Vec<Arc<Unit>>> {
        let is_video = unit.kind() == MediaKind::Video;
        let have_key = self.pending.iter().any(|u| u.kind() == MediaKind::Video);
        if is_video && !unit.keyframe && !have_key {
            return None; // video can only start at a keyframe
        }
        self.pending.push(unit);
        let has_video = self.pending.iter().any(|u| u.kind() == MediaKind::Video);
        let has_audio = self.pending.iter().any(|u| u.kind() == MediaKind::Audio);
        let first = self.pending.first().map(|u| u.dts).unwrap_or(0);
        let last = self.pending.last().map(|u| u.dts).unwrap_or(0);
        let bytes: usize = self.pending.iter().map(|u| mp4_size(u)).sum();
        let full = self.pending.len() >= MAX_PROBE_UNITS || bytes > MAX_SEGMENT_BYTES;
        if !(has_video && has_audio) && last - first < PROBE_TICKS && !full {
            return None;
        }
        if full && !(has_video && has_audio) && last - first < PROBE_TICKS {
            self.hit(Limit::ProbeUnits);
        }
        let pending = std::mem::take(&mut self.pending);
        let start = if has_video {
            pending
                .iter()
                .find(|u| u.kind() == MediaKind::Video)
                .map(|u| u.dts)
                .unwrap_or(first)
        } else {
            first
        };
        self.started = true;
        self.primary = if has_video {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        self.origin = start;
        for u in &pending {
            match &*u.config {
                TrackConfig::H264(c) if self.tracks.video.is_none() => {
                    self.tracks.video = Some(c.clone())
                }
                TrackConfig::Aac(c) if self.tracks.audio.is_none() => {
                    self.tracks.audio = Some(c.clone())
                }
                _ => {}
            }
        }
        Some(pending.into_iter().filter(|u| u.dts >= start).collect())
    }

    fn emit_init(&mut self, out: &mut Vec<Event>) {
        self.init_sent = true;
        let bytes = fmp4::init_segment(&self.tracks);
        out.push(Event::Init(Arc::new(Init {
            id: self.init_id,
            tracks: self.tracks.clone(),
            bytes,
        })));
    }

    fn feed(&mut self, unit: Arc<Unit>, out: &mut Vec<Event>) {
        let kind = unit.kind();
        if !self.init_sent {
            self.emit_init(out);
        }
        // A track or a config we have not described yet.
        let changed = match (&*unit.config, kind) {
            (TrackConfig::H264(c), _) => self.tracks.video.as_ref() != Some(c),
            (TrackConfig::Aac(c), _) => self.tracks.audio.as_ref() != Some(c),
            _ => false,
        };
        if changed {
            // Video can only change at a keyframe. Audio that appears in a
            // video stream (or video in an audio-only one) is adopted at once.
            if kind == MediaKind::Video && !unit.keyframe {
                return;
            }
            let new_track = match kind {
                MediaKind::Video => self.tracks.video.is_none(),
                MediaKind::Audio => self.tracks.audio.is_none(),
            };
            if !new_track && self.units_since_init < MIN_UNITS_BETWEEN_INITS {
                self.hit(Limit::ConfigChanges);
                return;
            }
            self.switch_tracks(&unit, out);
        }
        let size = mp4_size(&unit);
        if kind != self.primary {
            self.add_other(unit, size);
            return;
        }
        // Where the previous frame ends if this one comes on time.
        let due = self.last_out.map(|l| l + self.frame_delta);
        let d = self.place_primary(unit.dts, out);
        let random_access = unit.keyframe;
        if let (Some(seg), Some(part)) = (&self.segment, &self.part) {
            let seg_dur = d - seg.start;
            let part_dur = d - part.start;
            // Rounded to the nearest second it must not pass TARGETDURATION;
            // 10 ms of margin for frame-time jitter (millisecond RTMP times).
            let max_seg =
                self.cfg.target_duration as i64 * CLOCK_RATE + CLOCK_RATE / 2 - CLOCK_RATE / 100;
            let part_units_full = part.units.len() >= MAX_PART_UNITS;
            let part_bytes_full = part.bytes + size > MAX_PART_BYTES;
            let seg_bytes_full = seg.bytes + size > MAX_SEGMENT_BYTES;
            let mut new_segment = (random_access && seg_dur >= self.cfg.segment_target)
                || seg_dur + self.frame_delta > max_seg
                || seg_bytes_full;
            // A keyframe inside a segment starts its own (INDEPENDENT)
            // part, so a player can join there instead of at the segment.
            let cut = new_segment
                || (random_access && self.primary == MediaKind::Video && part_dur > 0)
                || part_dur + self.frame_delta > self.cfg.part_target
                || part_dur >= self.cfg.part_target
                || part_units_full
                || part_bytes_full;
            // The part about to open would be one too many.
            let parts_full = cut && seg.next_part as usize + 1 >= MAX_SEGMENT_PARTS;
            new_segment |= parts_full;
            for (hit, limit) in [
                (part_units_full, Limit::PartUnits),
                (part_bytes_full, Limit::PartBytes),
                (seg_bytes_full, Limit::SegmentBytes),
                (parts_full, Limit::SegmentParts),
            ] {
                if hit {
                    self.hit(limit);
                }
            }
            // A frame that came later than due (a gap in the publisher's
            // frames) would stretch the segment past TARGETDURATION, which
            // RFC 8216bis 4.4.3.1 forbids: the segment ends when this frame
            // was due, and the next one starts at the frame. The hole
            // between them keeps every time true, so audio stays in sync.
            let end = match due {
                Some(due) if seg_dur > max_seg => due.min(d),
                _ => d,
            };
            if cut {
                self.close_part(end, out);
            }
            if new_segment {
                self.close_segment(end, out);
            }
        }
        if self.segment.is_none() {
            let msn = self.next_msn;
            self.next_msn += 1;
            out.push(Event::SegmentStart {
                msn,
                init_id: self.init_id,
                discontinuity: std::mem::take(&mut self.discontinuity),
                start: d,
            });
            self.segment = Some(Open {
                msn,
                start: d,
                next_part: 0,
                bytes: 0,
            });
        }
        if self.part.is_none() {
            self.part = Some(PartBuf {
                start: d,
                units: Vec::new(),
                bytes: 0,
                independent: random_access,
            });
        }
        if let (Some(p), Some(s)) = (self.part.as_mut(), self.segment.as_mut()) {
            p.units.push(Placed { dts: d, unit });
            p.bytes += size;
            s.bytes += size;
        }
    }

    /// The output decode time of a primary unit at input time `dts`, after
    /// the rules of the module docs' table (a break may end the segment).
    fn place_primary(&mut self, dts: i64, out: &mut Vec<Event>) -> i64 {
        let d = match (self.last_in, self.last_out) {
            (Some(last_in), Some(last_out)) => {
                let gap = dts - last_in;
                if !(-MAX_GAP_TICKS..=MAX_GAP_TICKS).contains(&gap) {
                    self.hit(Limit::TimestampBreak);
                    let at = last_out + self.frame_delta;
                    self.origin = dts - at;
                    let old_enough = self
                        .segment
                        .as_ref()
                        .is_some_and(|s| at - s.start >= self.cfg.segment_target / 2);
                    if old_enough {
                        self.close_part(at, out);
                        self.close_segment(at, out);
                        self.discontinuity = true;
                    }
                    // Audio placed from here on starts its clock afresh.
                    self.audio_next = None;
                    at
                } else {
                    if gap > 0 {
                        self.frame_delta = gap;
                    }
                    let d = dts - self.origin;
                    if d <= last_out {
                        self.hit(Limit::TimestampClamped);
                        last_out + 1
                    } else {
                        d
                    }
                }
            }
            // The input clock starts over (a new video config): continue
            // the output one frame after the last unit.
            (None, Some(last_out)) => {
                let at = last_out + self.frame_delta;
                self.origin = dts - at;
                at
            }
            (_, None) => dts - self.origin,
        };
        self.last_in = Some(dts);
        self.last_out = Some(d);
        d
    }

    /// A unit of a track that is not the primary one (audio next to
    /// video): into the open part while it has room.
    fn add_other(&mut self, unit: Arc<Unit>, size: usize) {
        let d = unit.dts - self.origin;
        let room = match (&self.part, &self.segment) {
            (Some(p), Some(s)) => {
                p.units.len() < MAX_PART_UNITS
                    && p.bytes + size <= MAX_PART_BYTES
                    && s.bytes + size <= MAX_SEGMENT_BYTES
            }
            // No part open yet (waiting for the primary track): nothing to
            // put it in.
            _ => return,
        };
        if !room {
            self.hit(Limit::TrackDropped);
            return;
        }
        if let (Some(p), Some(s)) = (self.part.as_mut(), self.segment.as_mut()) {
            p.units.push(Placed { dts: d, unit });
            p.bytes += size;
            s.bytes += size;
        }
    }

    fn switch_tracks(&mut self, unit: &Arc<Unit>, out: &mut Vec<Event>) {
        let had_segment = self.segment.is_some();
        if let Some(last) = self.last_out {
            let at = last + self.frame_delta;
            self.close_part(at, out);
            self.close_segment(at, out);
        }
        match &*unit.config {
            TrackConfig::H264(c) => {
                self.tracks.video = Some(c.clone());
                self.primary = MediaKind::Video;
            }
            TrackConfig::Aac(c) => self.tracks.audio = Some(c.clone()),
            TrackConfig::Opus(_) => {}
        }
        self.init_id = self.init_id.wrapping_add(1);
        self.units_since_init = 0;
        self.emit_init(out);
        self.audio_next = None;
        if had_segment {
            self.discontinuity = true;
        }
        if unit.kind() == MediaKind::Video {
            // The primary clock may start over here.
            self.last_in = None;
        }
    }
}

mod fragment;

#[cfg(test)]
#[path = "segmenter_tests.rs"]
mod tests;
