//! Opus (WHIP publishers) to AAC-LC (HLS and recordings).
//!
//! Pipeline: libopus decoder (48 kHz stereo) -> PCM buffer -> libfdk-aac
//! AAC-LC encoder, 1024-sample frames at 48 kHz stereo.
//!
//! # Timestamps
//!
//! As in [`super::AacToOpus`], output time comes from sample counts from the
//! first packet's pts, never from each packet's own pts, so RTP jitter in
//! the WHIP ingest never becomes audio jitter in a segment:
//!
//! ```text
//! pts_90k(frame k) = sync_pts_90k + (1024 k - encoder_delay) * 90000 / 48000
//! ```
//!
//! The encoder's first frames hold its priming (`encoder_delay` samples of
//! nothing); they fall before `sync_pts` and are dropped, so the first AAC
//! frame kept plays exactly where the first Opus packet did and A/V sync
//! holds. No frame waits for RTCP sender reports: the WHIP ingest already
//! anchors each track at its first packet's arrival, so audio starts with
//! the first packet (SRS loses 4-6 s there, its issues #4418 and #4151).
//!
//! A gap (lost packets) shorter than [`RESYNC_TICKS`] is filled with
//! silence so later frames keep their timestamps; a longer gap or a jump
//! backwards (a new publisher clock) starts the timeline over.

use std::sync::Arc;

use super::encode::AacEncoder;
use super::{AudioError, OPUS_SAMPLE_RATE, RESYNC_TICKS};
use crate::media::{TrackConfig, Unit, CLOCK_RATE};

const CHANNELS: usize = 2;
/// Opus's longest packet is 120 ms (RFC 6716 3.2.5).
const MAX_OPUS_SAMPLES: usize = 5760;

/// Transcodes one Opus track to AAC-LC, 48 kHz stereo. See the module doc.
pub struct OpusToAac {
    decoder: opus::Decoder,
    /// Its own sample-count clock starts at `Clock::sync_pts`.
    aac: AacEncoder,
    clock: Option<Clock>,
    decoded: Vec<i16>,
    /// Corrupt packets since the last warning, so a broken publisher
    /// produces one line now and then, not one per packet.
    corrupt: u64,
}

/// Less than half a 20 ms packet off: jitter, not a lost or repeated
/// packet.
const JITTER_TICKS: i64 = CLOCK_RATE / 100;

enum Sync {
    Continue,
    /// The packet covers time already encoded.
    Skip,
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    sync_pts: i64,
    /// Input samples per channel accounted for since sync (decoded or
    /// filled with silence).
    in_samples: i64,
}

impl std::fmt::Debug for OpusToAac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusToAac")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

fn ticks_to_samples(ticks: i64) -> i64 {
    ticks * i64::from(OPUS_SAMPLE_RATE) / CLOCK_RATE
}

fn samples_to_ticks(samples: i64) -> i64 {
    samples * CLOCK_RATE / i64::from(OPUS_SAMPLE_RATE)
}

impl OpusToAac {
    pub fn new() -> Result<Self, AudioError> {
        Ok(OpusToAac {
            decoder: opus::Decoder::new(OPUS_SAMPLE_RATE, opus::Channels::Stereo)?,
            aac: AacEncoder::new(OPUS_SAMPLE_RATE, CHANNELS, 0)?,
            clock: None,
            decoded: vec![0; MAX_OPUS_SAMPLES * CHANNELS],
            corrupt: 0,
        })
    }

    /// The config every output unit carries (AAC-LC, 48 kHz, stereo).
    pub fn config(&self) -> &Arc<TrackConfig> {
        self.aac.config()
    }

    /// Transcodes one Opus packet presented at `pts_90k`. Returns the AAC
    /// units it completed, often none or one, in order. A packet that does
    /// not decode counts as lost (its time is filled by the next packet's
    /// gap handling); the transcoder stays usable.
    pub fn push(&mut self, opus: &[u8], pts_90k: i64) -> Vec<Unit> {
        let mut units = Vec::new();
        if opus.is_empty() {
            // Not a packet a publisher sends; libopus would read it as a
            // loss and conceal it, which the gap handling does already.
            return units;
        }
        if let Sync::Skip = self.sync(pts_90k, &mut units) {
            return units;
        }
        let n = match self.decoder.decode(opus, &mut self.decoded, false) {
            Ok(n) => n,
            Err(e) => {
                self.corrupt += 1;
                if self.corrupt == 1 || self.corrupt.is_power_of_two() {
                    tracing::warn!(
                        count = self.corrupt,
                        "WHIP audio: undecodable Opus packet: {e}"
                    );
                }
                return units;
            }
        };
        if let Some(c) = self.clock.as_mut() {
            c.in_samples += n as i64;
        }
        self.aac
            .push_interleaved(&self.decoded[..n * CHANNELS], &mut units);
        units
    }

    /// Starts the timeline at the first packet, fills short gaps with
    /// silence, and starts over after a long gap or a jump backwards.
    fn sync(&mut self, pts: i64, units: &mut Vec<Unit>) -> Sync {
        let Some(c) = self.clock else {
            self.start(pts);
            return Sync::Continue;
        };
        let expected = c.sync_pts + samples_to_ticks(c.in_samples);
        let gap = pts - expected;
        if gap.abs() < JITTER_TICKS {
            return Sync::Continue;
        }
        if (JITTER_TICKS..=RESYNC_TICKS).contains(&gap) {
            let missing = ticks_to_samples(gap) as usize;
            self.aac.push_silence(missing, units);
            if let Some(c) = self.clock.as_mut() {
                c.in_samples += missing as i64;
            }
            return Sync::Continue;
        }
        if (-RESYNC_TICKS..=-JITTER_TICKS).contains(&gap) {
            // Time already covered: a duplicate or a retransmission.
            return Sync::Skip;
        }
        tracing::debug!(gap, "WHIP audio: timeline restarts");
        self.start(pts);
        Sync::Continue
    }

    fn start(&mut self, pts: i64) {
        if let Err(e) = self.aac.restart(pts) {
            tracing::warn!("WHIP audio: AAC encoder restart failed: {e}");
        }
        self.clock = Some(Clock {
            sync_pts: pts,
            in_samples: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn tone(frames: usize) -> Vec<Bytes> {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4000];
        for f in 0..frames {
            let pcm: Vec<f32> = (0..960)
                .flat_map(|i| {
                    let t = (f * 960 + i) as f32 / 48_000.0;
                    let s = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
                    [s, s]
                })
                .collect();
            let n = enc.encode_float(&pcm, &mut buf).unwrap();
            out.push(Bytes::copy_from_slice(&buf[..n]));
        }
        out
    }

    #[test]
    fn timestamps_follow_sample_counts_and_drop_priming() {
        let mut t = OpusToAac::new().unwrap();
        let start = 90_000;
        let mut units = Vec::new();
        for (i, p) in tone(100).iter().enumerate() {
            // 1 ms of jitter either way must not move the output.
            let jitter = if i % 2 == 0 { 90 } else { -90 } * i64::from(i > 0);
            units.extend(t.push(p, start + i as i64 * 1800 + jitter));
        }
        // 2 s of input = 93.75 frames, minus what the encoder still holds.
        assert!(units.len() >= 85 && units.len() <= 94, "{}", units.len());
        assert!(
            units[0].pts >= start && units[0].pts < start + 1920,
            "{}",
            units[0].pts
        );
        for w in units.windows(2) {
            assert_eq!(w[1].pts - w[0].pts, 1920, "1024 samples at 48 kHz");
        }
        match &*units[0].config {
            TrackConfig::Aac(c) => {
                assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 48_000, 2))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gaps_are_filled_and_jumps_restart() {
        let mut t = OpusToAac::new().unwrap();
        let packets = tone(60);
        let mut units = Vec::new();
        for (i, p) in packets.iter().enumerate().take(30) {
            // Every fifth packet lost.
            if i % 5 != 4 {
                units.extend(t.push(p, i as i64 * 1800));
            }
        }
        let before = units.len();
        for w in units.windows(2) {
            assert_eq!(w[1].pts - w[0].pts, 1920);
        }
        // A new publisher clock, 10 s later.
        for (i, p) in packets.iter().enumerate().skip(30) {
            units.extend(t.push(p, 900_000 + i as i64 * 1800));
        }
        assert!(units.len() > before);
        assert!(units[before..].iter().all(|u| u.pts >= 900_000 + 30 * 1800));
    }

    #[test]
    fn garbage_is_refused_without_harm() {
        let mut t = OpusToAac::new().unwrap();
        for junk in [&[][..], &[0xff; 3][..], &[0xfc, 0xff, 0xff, 0xff][..]] {
            let _ = t.push(junk, 0);
        }
        let mut units = Vec::new();
        for (i, p) in tone(20).iter().enumerate() {
            units.extend(t.push(p, i as i64 * 1800));
        }
        assert!(!units.is_empty());
    }
}
