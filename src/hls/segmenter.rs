//! Units in, CMAF init segments, LL-HLS parts and segment boundaries out.
//! Sans-I/O: no clock, no tasks; the caller feeds [`Unit`]s in decode order
//! and hands the [`Event`]s to the live playlist and the recorder.
//!
//! What must stay true (RFC 8216bis 4.4.3.7, 4.4.4.9):
//! - every part lasts at most [`SegmenterConfig::part_target`]: a part is cut
//!   *before* the frame that would take it past the target;
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
//! - a new SPS or AAC config, a new track, or a timestamp jump ends the
//!   segment; a config change also brings a new init segment. The next
//!   segment carries a discontinuity.

use super::fmp4::{self, Run, Sample, Tracks, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use crate::media::{MediaKind, Payload, TrackConfig, Unit, CLOCK_RATE};
use bytes::Bytes;
use std::sync::Arc;

/// How long a stream may show only one kind of track before we decide it
/// has only that one: long enough for RTMP's first audio after the first
/// video keyframe, short enough that a video-only stream starts quickly.
const PROBE_TICKS: i64 = CLOCK_RATE / 2;

/// A decode-time jump larger than this (or backwards) is a break in the
/// stream (a reader that skipped, a publisher that restarted its clock),
/// not a long frame.
const MAX_GAP_TICKS: i64 = CLOCK_RATE;

/// AAC-LC frames hold 1024 samples (ISO/IEC 14496-3 4.5.1.1).
const AAC_FRAME_SAMPLES: u64 = 1024;

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
    /// Decode time of its first primary-track sample, ticks.
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
    start: i64,
    next_part: u32,
}

struct PartBuf {
    start: i64,
    units: Vec<Arc<Unit>>,
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
    last_primary: Option<i64>,
    frame_delta: i64,
    /// The audio sample clock: the expected start of the next AAC frame,
    /// in samples, so frame times stay exact despite millisecond RTMP times.
    audio_next: Option<u64>,
    /// The stream's zero: decode times in the fMP4 count from here.
    origin: i64,
    fragment_seq: u32,
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
            last_primary: None,
            frame_delta: CLOCK_RATE / 30,
            audio_next: None,
            origin: 0,
            fragment_seq: 0,
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

    pub fn push(&mut self, unit: Arc<Unit>) -> Vec<Event> {
        let mut out = Vec::new();
        if !matches!(*unit.config, TrackConfig::H264(_) | TrackConfig::Aac(_)) {
            return out; // Opus needs a transcoder first; see the module docs.
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
        if let Some(last) = self.last_primary {
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
        if !(has_video && has_audio) && last - first < PROBE_TICKS {
            return None;
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
            self.switch_tracks(&unit, out);
        }
        if kind != self.primary {
            if let Some(p) = self.part.as_mut() {
                p.units.push(unit);
            }
            return;
        }
        let d = unit.dts;
        if let Some(last) = self.last_primary {
            let gap = d - last;
            if !(0..=MAX_GAP_TICKS).contains(&gap) {
                tracing::debug!(gap, "timestamp jump: new segment with a discontinuity");
                let end = last + self.frame_delta;
                self.close_part(end, out);
                self.close_segment(end, out);
                self.discontinuity = true;
                // Decode times keep increasing in the fMP4 across the jump.
                self.origin += gap - self.frame_delta;
                self.audio_next = None;
            } else if gap > 0 {
                self.frame_delta = gap;
            }
        }
        let random_access = unit.keyframe;
        if let (Some(seg), Some(part)) = (&self.segment, &self.part) {
            let seg_dur = d - seg.start;
            let part_dur = d - part.start;
            // Rounded to the nearest second it must not pass TARGETDURATION;
            // 10 ms of margin for frame-time jitter (millisecond RTMP times).
            let max_seg =
                self.cfg.target_duration as i64 * CLOCK_RATE + CLOCK_RATE / 2 - CLOCK_RATE / 100;
            let new_segment = (random_access && seg_dur >= self.cfg.segment_target)
                || seg_dur + self.frame_delta > max_seg;
            // A keyframe inside a segment starts its own (INDEPENDENT)
            // part, so a player can join there instead of at the segment.
            let cut = new_segment
                || (random_access && self.primary == MediaKind::Video && part_dur > 0)
                || part_dur + self.frame_delta > self.cfg.part_target
                || part_dur >= self.cfg.part_target;
            if cut {
                self.close_part(d, out);
            }
            if new_segment {
                self.close_segment(d, out);
            }
        }
        if self.segment.is_none() {
            let msn = self.next_msn;
            self.next_msn += 1;
            out.push(Event::SegmentStart {
                msn,
                init_id: self.init_id,
                discontinuity: std::mem::take(&mut self.discontinuity),
                start: d - self.origin,
            });
            self.segment = Some(Open {
                msn,
                start: d,
                next_part: 0,
            });
        }
        if self.part.is_none() {
            self.part = Some(PartBuf {
                start: d,
                units: Vec::new(),
                independent: random_access,
            });
        }
        if let Some(p) = self.part.as_mut() {
            p.units.push(unit);
        }
        self.last_primary = Some(d);
    }

    fn switch_tracks(&mut self, unit: &Arc<Unit>, out: &mut Vec<Event>) {
        let at = if unit.kind() == self.primary || self.last_primary.is_none() {
            unit.dts
        } else {
            self.last_primary.unwrap_or(unit.dts) + self.frame_delta
        };
        let had_segment = self.segment.is_some();
        self.close_part(at, out);
        self.close_segment(at, out);
        match &*unit.config {
            TrackConfig::H264(c) => {
                self.tracks.video = Some(c.clone());
                self.primary = MediaKind::Video;
            }
            TrackConfig::Aac(c) => self.tracks.audio = Some(c.clone()),
            TrackConfig::Opus(_) => {}
        }
        self.init_id += 1;
        self.emit_init(out);
        self.audio_next = None;
        if had_segment {
            self.discontinuity = true;
        }
        if unit.kind() == MediaKind::Video {
            // The primary clock may start over here.
            self.last_primary = None;
        }
    }

    fn close_part(&mut self, end: i64, out: &mut Vec<Event>) {
        let Some(part) = self.part.take() else { return };
        let Some(seg) = self.segment.as_mut() else {
            return;
        };
        let index = seg.next_part;
        seg.next_part += 1;
        let msn = seg.msn;
        let bytes = self.build_fragment(&part, end);
        out.push(Event::Part(Arc::new(Part {
            msn,
            index,
            start: part.start - self.origin,
            duration: (end - part.start).max(0) as f64 / CLOCK_RATE as f64,
            independent: part.independent,
            bytes,
        })));
    }

    fn close_segment(&mut self, end: i64, out: &mut Vec<Event>) {
        if let Some(seg) = self.segment.take() {
            out.push(Event::SegmentEnd {
                msn: seg.msn,
                duration: (end - seg.start).max(0) as f64 / CLOCK_RATE as f64,
            });
        }
    }

    fn build_fragment(&mut self, part: &PartBuf, end: i64) -> Bytes {
        let mut video = Run {
            track_id: VIDEO_TRACK_ID,
            base_decode_time: 0,
            samples: Vec::new(),
        };
        let mut audio = Run {
            track_id: AUDIO_TRACK_ID,
            base_decode_time: 0,
            samples: Vec::new(),
        };
        let vids: Vec<&Arc<Unit>> = part
            .units
            .iter()
            .filter(|u| u.kind() == MediaKind::Video)
            .collect();
        for (i, u) in vids.iter().enumerate() {
            let next = vids.get(i + 1).map(|n| n.dts).unwrap_or(end);
            if i == 0 {
                video.base_decode_time = (u.dts - self.origin).max(0) as u64;
            }
            let Payload::H264(nalus) = &u.payload else {
                continue;
            };
            let mut data = Vec::with_capacity(nalus.len() * 2);
            for n in nalus {
                // Parameter sets live in avcC; AUDs are useless in MP4.
                if matches!(crate::codec::h264::nal_type(n), Some(7..=9) | None) {
                    continue;
                }
                data.push(Bytes::copy_from_slice(&(n.len() as u32).to_be_bytes()));
                data.push(n.clone());
            }
            video.samples.push(Sample {
                duration: (next - u.dts).max(0) as u32,
                cts_offset: (u.pts - u.dts) as i32,
                sync: u.keyframe,
                data,
            });
        }
        let rate = self.tracks.audio_timescale() as i64;
        for u in part.units.iter().filter(|u| u.kind() == MediaKind::Audio) {
            let Payload::Aac(frame) = &u.payload else {
                continue;
            };
            let measured = ((u.dts - self.origin).max(0) * rate / CLOCK_RATE) as u64;
            // Keep the sample clock unless the publisher's time disagrees by
            // more than half a frame (a real gap or overlap).
            let t = match self.audio_next {
                Some(n) if n.abs_diff(measured) < AAC_FRAME_SAMPLES / 2 => n,
                _ => measured,
            };
            if audio.samples.is_empty() {
                audio.base_decode_time = t;
            } else {
                // Samples in a run are contiguous: the previous one lasts
                // until this one.
                let prev_end = audio.base_decode_time
                    + audio.samples.iter().map(|s| s.duration as u64).sum::<u64>();
                if t > prev_end {
                    if let Some(s) = audio.samples.last_mut() {
                        s.duration += (t - prev_end) as u32;
                    }
                }
            }
            audio.samples.push(Sample {
                duration: AAC_FRAME_SAMPLES as u32,
                cts_offset: 0,
                sync: true,
                data: vec![frame.clone()],
            });
            self.audio_next = Some(t + AAC_FRAME_SAMPLES);
        }
        self.fragment_seq = self.fragment_seq.wrapping_add(1);
        fmp4::fragment(self.fragment_seq, &[video, audio])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AacConfig, H264Config};

    fn h264(width: u32) -> Arc<TrackConfig> {
        Arc::new(TrackConfig::H264(H264Config {
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            width,
            height: 720,
            profile_idc: 0x42,
            constraint_flags: 0xc0,
            level_idc: 0x1f,
        }))
    }

    fn aac() -> Arc<TrackConfig> {
        Arc::new(TrackConfig::Aac(AacConfig {
            asc: Bytes::from_static(&[0x11, 0x90]),
            object_type: 2,
            sample_rate: 48_000,
            channels: 2,
        }))
    }

    fn video(cfg: &Arc<TrackConfig>, ms: i64, key: bool) -> Arc<Unit> {
        Arc::new(Unit {
            config: cfg.clone(),
            pts: ms * 90,
            dts: ms * 90,
            keyframe: key,
            payload: Payload::H264(vec![Bytes::from_static(if key {
                &[0x65, 0x88, 0x80]
            } else {
                &[0x41, 0x9a]
            })]),
        })
    }

    fn audio(cfg: &Arc<TrackConfig>, ms: i64) -> Arc<Unit> {
        Arc::new(Unit {
            config: cfg.clone(),
            pts: ms * 90,
            dts: ms * 90,
            keyframe: true,
            payload: Payload::Aac(Bytes::from_static(&[0x21, 0x10])),
        })
    }

    /// 30 fps video with a keyframe every `gop` frames and 48 kHz AAC,
    /// interleaved in time order as RTMP delivers them (ms timestamps).
    fn av_stream(
        secs: i64,
        gop: i64,
        v: &Arc<TrackConfig>,
        a: &Arc<TrackConfig>,
    ) -> Vec<Arc<Unit>> {
        let mut units = Vec::new();
        let (mut f, mut af) = (0i64, 0i64);
        loop {
            let vt = f * 1000 / 30;
            let at = af * 1024 * 1000 / 48_000;
            if vt.min(at) > secs * 1000 {
                break;
            }
            if vt <= at {
                units.push(video(v, vt, f % gop == 0));
                f += 1;
            } else {
                units.push(audio(a, at));
                af += 1;
            }
        }
        units
    }

    fn run(seg: &mut Segmenter, units: Vec<Arc<Unit>>) -> Vec<Event> {
        let mut ev: Vec<Event> = units.into_iter().flat_map(|u| seg.push(u)).collect();
        ev.extend(seg.finish());
        ev
    }

    fn check_rules(cfg: &SegmenterConfig, ev: &[Event]) -> (usize, usize) {
        let (mut segs, mut parts) = (0, 0);
        let mut last_msn = None;
        let mut open = None;
        for e in ev {
            match e {
                Event::SegmentStart { msn, .. } => {
                    assert!(last_msn.is_none_or(|l| *msn == l + 1), "msn goes up by one");
                    last_msn = Some(*msn);
                    open = Some((*msn, 0u32));
                }
                Event::Part(p) => {
                    let (msn, idx) = open.expect("part inside a segment");
                    assert_eq!((p.msn, p.index), (msn, idx));
                    open = Some((msn, idx + 1));
                    assert!(
                        p.duration <= cfg.part_target_secs() + 1e-9,
                        "part {}.{} lasts {} > {}",
                        p.msn,
                        p.index,
                        p.duration,
                        cfg.part_target_secs()
                    );
                    parts += 1;
                }
                Event::SegmentEnd { duration, .. } => {
                    assert!(
                        duration.round() <= cfg.target_duration as f64,
                        "segment {duration}"
                    );
                    segs += 1;
                }
                Event::Init(_) => {}
            }
        }
        (segs, parts)
    }

    #[test]
    fn av_stream_makes_two_second_segments_of_short_parts() {
        let cfg = SegmenterConfig::new(200, 2000);
        let (v, a) = (h264(1280), aac());
        let mut seg = Segmenter::new(cfg, 0, 0, false);
        let ev = run(&mut seg, av_stream(10, 30, &v, &a));
        let (segs, parts) = check_rules(&cfg, &ev);
        assert_eq!(segs, 6, "10 s in 2 s segments, then the frame at 10.0 s");
        assert!(parts >= 45, "{parts} parts");
        assert!(seg.tracks().video.is_some() && seg.tracks().audio.is_some());
        let durations: Vec<f64> = ev
            .iter()
            .filter_map(|e| match e {
                Event::SegmentEnd { duration, .. } => Some(*duration),
                _ => None,
            })
            .collect();
        for d in &durations[..5] {
            assert!((d - 2.0).abs() < 0.05, "segment {d}");
        }
        // Every segment's first part is independent.
        let mut first = true;
        for e in &ev {
            match e {
                Event::SegmentStart { .. } => first = true,
                Event::Part(p) => {
                    if first {
                        assert!(p.independent);
                    }
                    first = false;
                }
                _ => {}
            }
        }
    }

    #[test]
    fn sparse_keyframes_still_respect_target_duration() {
        let cfg = SegmenterConfig::new(250, 2000);
        let (v, a) = (h264(1280), aac());
        let mut seg = Segmenter::new(cfg, 7, 0, false);
        let ev = run(&mut seg, av_stream(12, 250, &v, &a));
        let (segs, _) = check_rules(&cfg, &ev);
        assert!(segs >= 4);
    }

    #[test]
    fn audio_only_stream() {
        let cfg = SegmenterConfig::new(200, 2000);
        let a = aac();
        let units: Vec<_> = (0..500)
            .map(|i| audio(&a, i * 1024 * 1000 / 48_000))
            .collect();
        let mut seg = Segmenter::new(cfg, 0, 0, false);
        let ev = run(&mut seg, units);
        let (segs, parts) = check_rules(&cfg, &ev);
        assert!(seg.tracks().video.is_none());
        assert_eq!(segs, 6, "10.6 s of audio");
        assert!(parts > 40);
    }

    #[test]
    fn new_sps_makes_new_init_and_discontinuity() {
        let cfg = SegmenterConfig::new(200, 2000);
        let (v1, v2, a) = (h264(1280), h264(640), aac());
        let mut units = av_stream(3, 30, &v1, &a);
        let later: Vec<_> = av_stream(3, 30, &v2, &a)
            .into_iter()
            .map(|u| {
                Arc::new(Unit {
                    pts: u.pts + 3100 * 90,
                    dts: u.dts + 3100 * 90,
                    ..(*u).clone()
                })
            })
            .collect();
        units.extend(later);
        let mut seg = Segmenter::new(cfg, 0, 0, false);
        let ev = run(&mut seg, units);
        check_rules(&cfg, &ev);
        let inits: Vec<u32> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Init(i) => Some(i.id),
                _ => None,
            })
            .collect();
        assert_eq!(inits, vec![0, 1]);
        let disc: Vec<(u32, bool)> = ev
            .iter()
            .filter_map(|e| match e {
                Event::SegmentStart {
                    init_id,
                    discontinuity,
                    ..
                } => Some((*init_id, *discontinuity)),
                _ => None,
            })
            .collect();
        let switch = disc
            .iter()
            .position(|(id, _)| *id == 1)
            .expect("new init used");
        assert!(disc[switch].1, "discontinuity at the switch: {disc:?}");
        assert_eq!(disc.iter().filter(|(_, d)| *d).count(), 1);
    }
}
