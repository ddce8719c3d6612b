//! A unit sequence written as bytes, and the checks every segmenter output
//! must pass. The segmenter's table of adversarial timestamp sequences is
//! written in this form and the `hls_segmenter` fuzz target reads it, so
//! every case of the table is also a fuzz seed (DESIGN.md rule 5).
//!
//! One unit is [`RECORD`] bytes:
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | flags: bit 0 audio (else video), bit 1 keyframe (video), bit 2 the second config of its kind (another SPS or AudioSpecificConfig), bit 3 the step is in units of 2^20 ticks |
//! | 1..5 | decode-time step from the previous unit of the same kind, `i32` big-endian, ticks |
//! | 5..7 | presentation offset (pts - dts), `i16` big-endian, ticks |
//! | 7 | payload size: `n < 0xf0` is `n * 16` bytes, else `1 << (n - 0xf0 + 10)` (1 KiB to 32 MiB) |
//!
//! Payload bytes come from one shared zero buffer, so a script of huge
//! units costs little memory.

use super::segmenter::{
    Event, Limit, SegmenterConfig, MAX_PART_BYTES, MAX_PART_UNITS, MAX_SEGMENT_BYTES,
    MAX_SEGMENT_PARTS,
};
use crate::media::{AacConfig, H264Config, Payload, TrackConfig, Unit, CLOCK_RATE};
use bytes::Bytes;
use std::sync::{Arc, OnceLock};

pub const RECORD: usize = 8;

/// Largest payload a script can ask for.
const MAX_SCRIPT_PAYLOAD: usize = 32 << 20;

fn zeros() -> &'static Bytes {
    static ZEROS: OnceLock<Bytes> = OnceLock::new();
    ZEROS.get_or_init(|| Bytes::from(vec![0u8; MAX_SCRIPT_PAYLOAD]))
}

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

fn aac(sample_rate: u32) -> Arc<TrackConfig> {
    Arc::new(TrackConfig::Aac(AacConfig {
        asc: Bytes::from_static(&[0x11, 0x90]),
        object_type: 2,
        sample_rate,
        channels: 2,
    }))
}

/// One unit of a script, before it is written as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub audio: bool,
    pub keyframe: bool,
    pub second_config: bool,
    /// Decode-time step from the previous unit of the same kind, ticks.
    pub delta: i64,
    pub cts: i16,
    pub size_code: u8,
}

impl Step {
    pub fn video(delta: i64, keyframe: bool) -> Step {
        Step {
            audio: false,
            keyframe,
            second_config: false,
            delta,
            cts: 0,
            size_code: 8,
        }
    }

    pub fn audio(delta: i64) -> Step {
        Step {
            audio: true,
            keyframe: true,
            second_config: false,
            delta,
            cts: 0,
            size_code: 2,
        }
    }

    /// The record; a step that does not fit an `i32` is written in units
    /// of 2^20 ticks (rounded towards zero).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let coarse = i32::try_from(self.delta).is_err();
        let flags = u8::from(self.audio)
            | u8::from(self.keyframe) << 1
            | u8::from(self.second_config) << 2
            | u8::from(coarse) << 3;
        let delta = if coarse {
            (self.delta >> 20).clamp(i32::MIN as i64, i32::MAX as i64) as i32
        } else {
            self.delta as i32
        };
        out.push(flags);
        out.extend_from_slice(&delta.to_be_bytes());
        out.extend_from_slice(&self.cts.to_be_bytes());
        out.push(self.size_code);
    }
}

pub fn encode(steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::with_capacity(steps.len() * RECORD);
    for s in steps {
        s.encode(&mut out);
    }
    out
}

fn payload_size(code: u8) -> usize {
    if code < 0xf0 {
        code as usize * 16
    } else {
        1usize << (code as usize - 0xf0 + 10).min(25)
    }
}

/// The units a script describes (a trailing partial record is ignored).
pub fn decode(data: &[u8]) -> Vec<Arc<Unit>> {
    let configs = [h264(1280), h264(640), aac(48_000), aac(44_100)];
    let (mut video_dts, mut audio_dts) = (0i64, 0i64);
    data.chunks_exact(RECORD)
        .map(|r| {
            let flags = r[0];
            let (audio, key, second, coarse) = (
                flags & 1 != 0,
                flags & 2 != 0,
                flags & 4 != 0,
                flags & 8 != 0,
            );
            let mut delta = i32::from_be_bytes([r[1], r[2], r[3], r[4]]) as i64;
            if coarse {
                delta <<= 20;
            }
            let cts = i16::from_be_bytes([r[5], r[6]]) as i64;
            let size = payload_size(r[7]);
            let clock = if audio {
                &mut audio_dts
            } else {
                &mut video_dts
            };
            *clock = clock.saturating_add(delta);
            let dts = *clock;
            let config = configs[usize::from(audio) * 2 + usize::from(second)].clone();
            let body = zeros().slice(..size);
            let payload = if audio {
                Payload::Aac(body)
            } else {
                // A slice NAL header, then the (type 0) filler.
                let head = if key {
                    &[0x65u8, 0x88][..]
                } else {
                    &[0x41, 0x9a]
                };
                Payload::H264(vec![Bytes::from_static(head), body])
            };
            Arc::new(Unit {
                flv_body: Default::default(),
                config,
                pts: dts.saturating_add(cts),
                dts,
                keyframe: audio || key,
                payload,
            })
        })
        .collect()
}

/// What a run of the segmenter made, for the checks' callers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub inits: usize,
    pub segments: usize,
    pub parts: usize,
    pub discontinuities: usize,
}

/// Room the fMP4 boxes take beyond the media in one part: `moof`, two
/// `traf`s and 16 bytes of `trun` entry per sample.
fn fragment_overhead(max_units: usize) -> usize {
    256 + 16 * max_units
}

/// The rules any segmenter output must keep, whatever went in: numbering,
/// nesting, the size bounds, non-negative durations, an output timeline
/// that never goes back, and parts that are whole fMP4 fragments. Fed one
/// event at a time, so a long run need not be kept.
#[derive(Debug)]
pub struct Checker {
    cfg: SegmenterConfig,
    summary: Summary,
    last_msn: Option<u64>,
    /// The open segment: (msn, parts so far, bytes so far).
    open: Option<(u64, u32, usize)>,
    last_start: Option<i64>,
    have_init: bool,
}

impl Checker {
    pub fn new(cfg: SegmenterConfig) -> Checker {
        Checker {
            cfg,
            summary: Summary::default(),
            last_msn: None,
            open: None,
            last_start: None,
            have_init: false,
        }
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn check(&mut self, e: &Event) -> Result<(), String> {
        let s = &mut self.summary;
        match e {
            Event::Init(_) => {
                self.have_init = true;
                s.inits += 1;
            }
            Event::SegmentStart {
                msn,
                discontinuity,
                start,
                ..
            } => {
                if !self.have_init {
                    return Err(format!("segment {msn} before any init"));
                }
                if self.open.is_some() {
                    return Err(format!("segment {msn} starts inside another"));
                }
                if self.last_msn.is_some_and(|l| *msn != l + 1) {
                    return Err(format!("msn {msn} after {:?}", self.last_msn));
                }
                if self.last_start.is_some_and(|l| *start < l) {
                    return Err(format!(
                        "segment {msn} starts at {start}, before {:?}",
                        self.last_start
                    ));
                }
                self.last_msn = Some(*msn);
                self.last_start = Some(*start);
                self.open = Some((*msn, 0, 0));
                s.discontinuities += usize::from(*discontinuity);
            }
            Event::Part(p) => {
                let Some((msn, index, bytes)) = self.open.as_mut() else {
                    return Err(format!("part {}.{} outside a segment", p.msn, p.index));
                };
                if (p.msn, p.index) != (*msn, *index) {
                    return Err(format!("part {}.{} in {msn}.{index}", p.msn, p.index));
                }
                // At most PART-TARGET, or one frame of up to a second more
                // (see the segmenter's docs).
                let longest = self.cfg.part_target_secs() + 1.0;
                if !(p.duration >= 0.0 && p.duration <= longest) {
                    return Err(format!("part {}.{} lasts {}", p.msn, p.index, p.duration));
                }
                if self.last_start.is_some_and(|l| p.start < l) {
                    return Err(format!("part {}.{} goes back in time", p.msn, p.index));
                }
                self.last_start = Some(p.start);
                let limit = MAX_PART_BYTES + fragment_overhead(MAX_PART_UNITS);
                if p.bytes.len() > limit {
                    return Err(format!("part of {} bytes > {limit}", p.bytes.len()));
                }
                let scan = super::fmp4::scan_fragments(&p.bytes, 1);
                if scan.fragments != 1 || scan.complete_len != p.bytes.len() {
                    return Err(format!("part {}.{} is not one fragment", p.msn, p.index));
                }
                *index += 1;
                *bytes += p.bytes.len();
                if *index as usize > MAX_SEGMENT_PARTS {
                    return Err(format!("segment {msn} has {index} parts"));
                }
                let limit =
                    MAX_SEGMENT_BYTES + MAX_SEGMENT_PARTS * fragment_overhead(MAX_PART_UNITS);
                if *bytes > limit {
                    return Err(format!("segment {msn} holds {bytes} bytes > {limit}"));
                }
                s.parts += 1;
            }
            Event::SegmentEnd { msn, duration } => {
                match self.open.take() {
                    Some((m, _, _)) if m == *msn => {}
                    other => return Err(format!("end of {msn} while {other:?} is open")),
                }
                // RFC 8216bis 4.4.3.1: rounded, at most TARGETDURATION.
                let td = self.cfg.target_duration as f64;
                if !(*duration >= 0.0 && duration.round() <= td) {
                    return Err(format!(
                        "segment {msn} lasts {duration} (TARGETDURATION {td})"
                    ));
                }
                s.segments += 1;
            }
        }
        Ok(())
    }
}

/// [`Checker`] over a whole run.
pub fn check_events(cfg: SegmenterConfig, events: &[Event]) -> Result<Summary, String> {
    let mut c = Checker::new(cfg);
    for e in events {
        c.check(e)?;
    }
    Ok(c.summary)
}

// ---- the table ----

/// 33.3 ms at 90 kHz, as RTMP's millisecond times give it.
const FRAME: i64 = 3000;
/// One AAC frame at 48 kHz, ticks.
const AAC: i64 = 1920;

/// `secs` of 30 fps video (keyframe every 30) interleaved with AAC.
fn steady(secs: i64) -> Vec<Step> {
    let mut out = Vec::new();
    let (mut v, mut a) = (0i64, 0i64);
    let mut first_audio = true;
    while v.min(a) < secs * CLOCK_RATE {
        if v <= a {
            let f = v / FRAME;
            out.push(Step::video(if f == 0 { 0 } else { FRAME }, f % 30 == 0));
            v += FRAME;
        } else {
            out.push(Step::audio(if first_audio { 0 } else { AAC }));
            first_audio = false;
            a += AAC;
        }
    }
    out
}

fn video_only(
    frames: usize,
    delta: impl Fn(usize) -> i64,
    key: impl Fn(usize) -> bool,
) -> Vec<Step> {
    (0..frames)
        .map(|i| Step::video(if i == 0 { 0 } else { delta(i) }, i == 0 || key(i)))
        .collect()
}

fn sized(mut steps: Vec<Step>, size_code: u8) -> Vec<Step> {
    for s in &mut steps {
        s.size_code = size_code;
    }
    steps
}

pub struct Case {
    pub name: &'static str,
    pub steps: fn() -> Vec<Step>,
    /// Rules this input must trigger.
    pub hits: &'static [Limit],
    /// At most this many discontinuities (segments ended by a break).
    pub max_discontinuities: usize,
}

/// The table of adversarial timestamp sequences (DESIGN.md rule 5): the
/// segmenter's unit test runs every case (the output must pass
/// [`check_events`] and the buffering bounds; `hits` says which rule
/// handled it), `tests/hls_timestamps.rs` decodes each with ffmpeg, and
/// each is a seed of the `hls_segmenter` fuzz target.
pub const CASES: &[Case] = &[
    Case {
        name: "steady",
        steps: || steady(6),
        hits: &[],
        max_discontinuities: 0,
    },
    Case {
        name: "stall_forever",
        // Every frame at the same time: clamped one tick apart, so parts
        // never reach their duration and are cut at MAX_PART_UNITS.
        steps: || video_only(2600, |_| 0, |_| false),
        hits: &[Limit::TimestampClamped, Limit::PartUnits],
        max_discontinuities: 0,
    },
    Case {
        name: "stall_all_keyframes",
        // Each keyframe starts a part: a stalled all-intra stream makes a
        // part per frame, and segments are cut at MAX_SEGMENT_PARTS.
        steps: || video_only(600, |_| 0, |_| true),
        hits: &[Limit::TimestampClamped, Limit::SegmentParts],
        max_discontinuities: 0,
    },
    Case {
        name: "stall_big_frames",
        // 1 MiB frames at one time: parts cut by bytes, segments by bytes.
        steps: || sized(video_only(60, |_| 0, |_| false), 0xfa),
        hits: &[Limit::PartBytes, Limit::SegmentBytes],
        max_discontinuities: 0,
    },
    Case {
        name: "repeat_every_frame",
        steps: || video_only(300, |i| if i % 2 == 0 { 0 } else { FRAME }, |i| i % 30 == 0),
        hits: &[Limit::TimestampClamped],
        max_discontinuities: 0,
    },
    Case {
        name: "small_steps_back",
        steps: || {
            video_only(
                300,
                |i| if i % 3 == 0 { -FRAME / 2 } else { FRAME },
                |i| i % 30 == 0,
            )
        },
        hits: &[Limit::TimestampClamped],
        max_discontinuities: 0,
    },
    Case {
        name: "clock_restarts",
        // 5 s, then the clock starts over at zero: one break, one
        // discontinuity, the output goes on.
        steps: || {
            video_only(
                300,
                |i| if i == 150 { -149 * FRAME } else { FRAME },
                |i| i % 30 == 0,
            )
        },
        hits: &[Limit::TimestampBreak],
        max_discontinuities: 1,
    },
    Case {
        name: "jump_an_hour_ahead",
        steps: || {
            video_only(
                300,
                |i| if i == 150 { 3600 * CLOCK_RATE } else { FRAME },
                |i| i % 30 == 0,
            )
        },
        hits: &[Limit::TimestampBreak],
        max_discontinuities: 1,
    },
    Case {
        name: "flapping_clock",
        // ±10 s on every frame for 10 s: breaks everywhere, but a segment
        // ends at a break only once it lasts half the target: at most
        // 10 s / 1 s discontinuities, not 300.
        steps: || {
            video_only(
                300,
                |i| {
                    if i % 2 == 1 {
                        10 * CLOCK_RATE
                    } else {
                        -10 * CLOCK_RATE
                    }
                },
                |i| i % 30 == 0,
            )
        },
        hits: &[Limit::TimestampBreak],
        max_discontinuities: 10,
    },
    Case {
        name: "walks_backwards",
        // Always a little back: clamped forever, never a break.
        steps: || video_only(300, |_| -FRAME, |i| i % 30 == 0),
        hits: &[Limit::TimestampClamped],
        max_discontinuities: 0,
    },
    Case {
        name: "out_of_range",
        // A time past ±2^46 ticks is dropped; video waits for a keyframe.
        steps: || {
            video_only(
                120,
                |i| match i {
                    60 => 1 << 50,
                    61 => -(1 << 50),
                    _ => FRAME,
                },
                |i| i % 30 == 0,
            )
        },
        hits: &[Limit::TimestampOutOfRange],
        max_discontinuities: 1,
    },
    Case {
        name: "extreme_steps",
        steps: || {
            video_only(
                64,
                |i| {
                    if i % 2 == 1 {
                        i32::MAX as i64
                    } else {
                        i32::MIN as i64
                    }
                },
                |_| true,
            )
        },
        hits: &[Limit::TimestampBreak],
        max_discontinuities: 64,
    },
    Case {
        name: "audio_while_video_stalls",
        // Video stops after one second; audio goes on: the open part takes
        // audio up to its bound, the rest is dropped until video returns.
        steps: || {
            let mut s = steady(1);
            s.extend((0..1500).map(|_| Step::audio(AAC)));
            s.push(Step::video(FRAME, true));
            s
        },
        hits: &[Limit::TrackDropped],
        max_discontinuities: 1,
    },
    Case {
        name: "audio_only_stall",
        steps: || {
            (0..1200)
                .map(|i| Step::audio(if i < 100 { AAC } else { 0 }))
                .collect()
        },
        hits: &[Limit::PartUnits],
        max_discontinuities: 0,
    },
    Case {
        name: "unit_too_large",
        // A 32 MiB access unit cannot fit a part: dropped, and video goes
        // on from the next keyframe.
        steps: || {
            let mut s = video_only(90, |_| FRAME, |i| i % 30 == 0);
            s[40].size_code = 0xff;
            s
        },
        hits: &[Limit::UnitTooLarge],
        max_discontinuities: 0,
    },
    Case {
        name: "wild_cts",
        steps: || {
            let mut s = video_only(90, |_| FRAME, |i| i % 30 == 0);
            for (i, st) in s.iter_mut().enumerate() {
                st.cts = if i % 2 == 0 { i16::MIN } else { i16::MAX };
            }
            s
        },
        hits: &[],
        max_discontinuities: 0,
    },
    Case {
        name: "probe_never_ends",
        // Video only, every frame at time zero: the probe would wait for
        // half a second forever; it starts at MAX_PROBE_UNITS.
        steps: || video_only(400, |_| 0, |_| true),
        hits: &[Limit::ProbeUnits],
        max_discontinuities: 0,
    },
    Case {
        name: "config_flips_with_jumps",
        steps: || {
            let mut s = steady(2);
            for i in 0..60 {
                let mut v = Step::video(
                    if i % 2 == 0 {
                        -5 * CLOCK_RATE
                    } else {
                        7 * CLOCK_RATE
                    },
                    true,
                );
                v.second_config = i % 2 == 0;
                s.push(v);
                let mut a = Step::audio(AAC);
                a.second_config = i % 3 == 0;
                s.push(a);
            }
            s
        },
        // A new SPS may restart the clock, so these jumps are no breaks;
        // config changes are taken once per MIN_UNITS_BETWEEN_INITS units.
        hits: &[Limit::ConfigChanges],
        max_discontinuities: 3,
    },
];
