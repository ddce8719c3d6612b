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
    Event, MAX_PART_BYTES, MAX_PART_UNITS, MAX_SEGMENT_BYTES, MAX_SEGMENT_PARTS,
};
use crate::media::{AacConfig, H264Config, Payload, TrackConfig, Unit};
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
#[derive(Debug, Default)]
pub struct Checker {
    summary: Summary,
    last_msn: Option<u64>,
    /// The open segment: (msn, parts so far, bytes so far).
    open: Option<(u64, u32, usize)>,
    last_start: Option<i64>,
    have_init: bool,
}

impl Checker {
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
                if !(p.duration >= 0.0 && p.duration.is_finite()) {
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
                if !(*duration >= 0.0 && duration.is_finite()) {
                    return Err(format!("segment {msn} lasts {duration}"));
                }
                s.segments += 1;
            }
        }
        Ok(())
    }
}

/// [`Checker`] over a whole run.
pub fn check_events(events: &[Event]) -> Result<Summary, String> {
    let mut c = Checker::default();
    for e in events {
        c.check(e)?;
    }
    Ok(c.summary)
}
