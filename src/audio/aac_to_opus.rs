//! AAC-LC (RTMP publishers) to Opus (WebRTC viewers).
//!
//! Pipeline per input frame: symphonia AAC decoder -> [`Resampler`] to
//! 48 kHz (skipped at 48 kHz) -> upmix to stereo -> PCM buffer -> 20 ms
//! Opus frames.
//!
//! # Timestamps
//!
//! Output time is derived from sample counts, not from each input pts, so
//! RTMP's millisecond rounding never turns into RTP timestamp jitter:
//!
//! ```text
//! pts_48k = floor(sync_pts_90k * 48000 / 90000) + 960 * frames emitted since sync
//! ```
//!
//! where `sync_pts_90k` is the pts of the first input frame. The decoder and
//! resampler add no delay to the timeline (the resampler's output sample 0 is
//! its input sample 0), so the first Opus frame plays when the first AAC frame
//! does and A/V sync holds. The expected pts of every input frame is also
//! derived from sample counts; when the real pts differs by more than
//! [`RESYNC_TICKS`] (a publisher gap, a restart), everything is reset and that
//! frame's pts becomes the new `sync_pts_90k`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::packet::PacketRef;
use symphonia::core::units::{Duration, Timestamp};
use symphonia::default::codecs::AacDecoder;

use super::resample::Resampler;
use super::{asc, AudioError};
use crate::media::{AacConfig, CLOCK_RATE};

/// Opus's clock for every channel count, and the rate WebRTC signals.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;
/// 20 ms: what browsers send and expect; shorter frames only add overhead.
pub const OPUS_FRAME_SAMPLES: u32 = 960;
/// A pts this far (100 ms) from where sample counting puts it is a gap or a
/// restart, not jitter: RTMP's rounding is 1 ms.
pub const RESYNC_TICKS: i64 = CLOCK_RATE / 10;

/// Samples per channel in an AAC-LC frame; also what a lost frame is worth.
const AAC_FRAME_SAMPLES: usize = 1024;
const OUT_CHANNELS: usize = 2;
/// RFC 6716 caps a packet at 1275 bytes per frame; room for a few to spare.
const MAX_PACKET: usize = 4000;
/// Mid complexity: 10 (the default) roughly doubles encode CPU for a quality
/// gain viewers won't hear at these bitrates, and we pay it once per stream.
const COMPLEXITY: i32 = 5;
/// What we tell the encoder to expect, so in-band FEC has something to do.
const PACKET_LOSS_PERC: i32 = 5;

/// One Opus packet ready for RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusFrame {
    pub data: Bytes,
    /// 48 kHz RTP timestamp units since the transcoder's first input (see
    /// the module doc for the exact mapping from input pts).
    pub pts_48k: i64,
    /// Always [`OPUS_FRAME_SAMPLES`] (20 ms).
    pub samples: u32,
}

/// Where output time stands relative to input time since the last (re)sync.
#[derive(Debug, Clone, Copy)]
struct Clock {
    sync_pts_90k: i64,
    sync_pts_48k: i64,
    /// Input samples (per channel) accounted for since sync, including
    /// frames that failed to decode.
    in_samples: u64,
    /// Output samples (per channel) emitted or skipped since sync.
    out_samples: i64,
}

/// Transcodes one AAC-LC track to 48 kHz stereo Opus. See the module doc.
pub struct AacToOpus {
    params: AudioCodecParameters,
    decoder: AacDecoder,
    in_rate: u32,
    in_channels: usize,
    /// `None` at 48 kHz.
    resampler: Option<Resampler>,
    encoder: opus::Encoder,
    /// Samples of input the encoder holds back before its output starts.
    lookahead: i64,
    clock: Option<Clock>,
    /// Interleaved stereo at 48 kHz not yet encoded. Every push drains all
    /// whole frames, so between calls it holds fewer than 960 samples per
    /// channel; within one it grows by at most one decoded frame.
    pcm: Vec<f32>,
    // Scratch reused across calls so the per-frame path does not reallocate
    // sample buffers.
    decoded: Vec<Vec<f32>>,
    resampled: Vec<Vec<f32>>,
    silence: Vec<f32>,
    packet: Vec<u8>,
}

impl std::fmt::Debug for AacToOpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacToOpus")
            .field("in_rate", &self.in_rate)
            .field("in_channels", &self.in_channels)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl AacToOpus {
    /// Fails for anything but AAC-LC with 1024-sample frames, mono or
    /// stereo, at a rate the resampler handles; the error says what to
    /// change in the encoder settings.
    pub fn new(cfg: &AacConfig) -> Result<Self, AudioError> {
        // The ingest may have resolved implicit SBR signalling that the bare
        // ASC doesn't show.
        if cfg.object_type == 5 || cfg.object_type == 29 {
            return Err(AudioError::HeAac(cfg.object_type));
        }
        let parsed = asc::parse(&cfg.asc)?;
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(cfg.asc.to_vec().into_boxed_slice());
        let decoder = new_decoder(&params)?;
        let in_channels = usize::from(parsed.channels);
        let resampler = if parsed.sample_rate == OPUS_SAMPLE_RATE {
            None
        } else {
            Some(
                Resampler::new(parsed.sample_rate, OPUS_SAMPLE_RATE, in_channels)
                    .ok_or(AudioError::SampleRate(parsed.sample_rate))?,
            )
        };
        let mut encoder = opus::Encoder::new(
            OPUS_SAMPLE_RATE,
            opus::Channels::Stereo,
            opus::Application::Audio,
        )?;
        // Upmixed mono costs the encoder little beyond mono, so it needs
        // less than real stereo.
        let bitrate = if in_channels == 1 { 64_000 } else { 96_000 };
        encoder.set_bitrate(opus::Bitrate::Bits(bitrate))?;
        encoder.set_complexity(COMPLEXITY)?;
        encoder.set_inband_fec(true)?;
        encoder.set_packet_loss_perc(PACKET_LOSS_PERC)?;
        let lookahead = i64::from(encoder.get_lookahead()?);
        Ok(AacToOpus {
            params,
            decoder,
            in_rate: parsed.sample_rate,
            in_channels,
            resampler,
            encoder,
            lookahead,
            clock: None,
            pcm: Vec::with_capacity(OUT_CHANNELS * 4 * AAC_FRAME_SAMPLES),
            decoded: Vec::new(),
            resampled: vec![Vec::new(); in_channels],
            silence: vec![0.0; AAC_FRAME_SAMPLES],
            packet: vec![0; MAX_PACKET],
        })
    }

    /// Transcodes one raw AAC frame (no ADTS header) presented at `pts_90k`
    /// ([`CLOCK_RATE`] ticks). Returns the Opus frames it completed, often
    /// none or one, in order.
    ///
    /// A frame that doesn't decode returns [`AudioError::CorruptFrame`]; it
    /// still counts as 1024 samples of time, and the Opus frames it would
    /// have covered are skipped (viewers conceal them as loss), so later
    /// frames keep their timestamps. The transcoder stays usable.
    pub fn push(&mut self, aac: &[u8], pts_90k: i64) -> Result<Vec<OpusFrame>, AudioError> {
        self.sync_clock(pts_90k)?;
        match self.decode(aac) {
            Ok(()) => {
                let decoded = std::mem::take(&mut self.decoded);
                let planes: Vec<&[f32]> = decoded.iter().map(Vec::as_slice).collect();
                let n = planes.first().map_or(0, |p| p.len());
                self.feed(&planes);
                drop(planes);
                self.decoded = decoded;
                self.advance_input(n);
                self.encode_ready()
            }
            Err(e) => {
                // Silence keeps the resampler's phase and the partial frame
                // in the PCM buffer aligned with the timeline.
                let silence = std::mem::take(&mut self.silence);
                let planes = vec![silence.as_slice(); self.in_channels];
                self.feed(&planes);
                drop(planes);
                self.silence = silence;
                self.advance_input(AAC_FRAME_SAMPLES);
                self.skip_ready();
                Err(e)
            }
        }
    }

    /// Starts the clock on the first frame; restarts it, dropping all
    /// buffered audio, when `pts_90k` is a gap away from what sample counting
    /// predicts.
    fn sync_clock(&mut self, pts_90k: i64) -> Result<(), AudioError> {
        if let Some(c) = &self.clock {
            let expected = i128::from(c.sync_pts_90k)
                + i128::from(c.in_samples) * i128::from(CLOCK_RATE) / i128::from(self.in_rate);
            if (i128::from(pts_90k) - expected).abs() <= i128::from(RESYNC_TICKS) {
                return Ok(());
            }
            // The decoder's overlap and the encoder's prediction describe
            // audio from before the gap; mixing them in would smear it across.
            self.decoder.reset();
            if let Some(r) = &mut self.resampler {
                r.reset();
            }
            self.pcm.clear();
            self.encoder.reset_state()?;
        }
        self.clock = Some(Clock {
            sync_pts_90k: pts_90k,
            sync_pts_48k: ticks_to_48k(pts_90k),
            in_samples: 0,
            out_samples: 0,
        });
        Ok(())
    }

    fn advance_input(&mut self, samples: usize) {
        if let Some(c) = &mut self.clock {
            c.in_samples = c.in_samples.saturating_add(samples as u64);
        }
    }

    /// Decodes into `self.decoded`, one vector per input channel.
    fn decode(&mut self, aac: &[u8]) -> Result<(), AudioError> {
        if aac.is_empty() {
            return Err(AudioError::CorruptFrame("empty frame".into()));
        }
        let decoder = &mut self.decoder;
        let out = &mut self.decoded;
        // The decoder is third-party code fed untrusted bytes; a panic in it
        // must cost one frame, not the stream.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let packet = PacketRef::new(
                0,
                Timestamp::new(0),
                Duration::new(AAC_FRAME_SAMPLES as u64),
                aac,
            );
            decoder
                .decode_ref(&packet)
                .map(|buf| buf.copy_to_vecs_planar::<f32>(out))
                .map_err(|e| e.to_string())
        }));
        let err = match result {
            Ok(Ok(())) => {
                if self.decoded.len() != self.in_channels {
                    return Err(AudioError::CorruptFrame(format!(
                        "decoded {} channels, configured {}",
                        self.decoded.len(),
                        self.in_channels
                    )));
                }
                return Ok(());
            }
            Ok(Err(e)) => {
                // A half-applied frame leaves the overlap buffers in an
                // unknown state; start the next frame clean.
                self.decoder.reset();
                e
            }
            Err(_) => {
                self.decoder = new_decoder(&self.params)?;
                "decoder panicked".to_string()
            }
        };
        Err(AudioError::CorruptFrame(err))
    }

    /// Resamples planar input and appends it to the stereo PCM buffer.
    fn feed(&mut self, planes: &[&[f32]]) {
        let planes: Vec<&[f32]> = match &mut self.resampler {
            Some(r) => {
                self.resampled.iter_mut().for_each(Vec::clear);
                r.process(planes, &mut self.resampled);
                self.resampled.iter().map(Vec::as_slice).collect()
            }
            None => planes.to_vec(),
        };
        let (left, right) = match planes.as_slice() {
            [mono] => (*mono, *mono),
            [l, r, ..] => (*l, *r),
            [] => return,
        };
        self.pcm.reserve(OUT_CHANNELS * left.len());
        for (l, r) in left.iter().zip(right) {
            self.pcm.push(sanitize(*l));
            self.pcm.push(sanitize(*r));
        }
    }

    /// The encoder's delay in 48 kHz samples (312 for libopus in audio
    /// mode): a decoded frame stamped `pts_48k` holds the sound of input time
    /// `pts_48k - lookahead()`. Egress subtracts it to keep lip sync.
    pub fn lookahead(&self) -> i64 {
        self.lookahead
    }

    /// Encodes every whole 20 ms frame in the PCM buffer.
    fn encode_ready(&mut self) -> Result<Vec<OpusFrame>, AudioError> {
        let frame = OUT_CHANNELS * OPUS_FRAME_SAMPLES as usize;
        let mut out = Vec::with_capacity(self.pcm.len() / frame);
        let mut used = 0;
        let mut failure = None;
        while self.pcm.len() - used >= frame {
            let pcm = &self.pcm[used..used + frame];
            used += frame;
            let Some(clock) = &mut self.clock else { break };
            let pts_48k = clock.sync_pts_48k + clock.out_samples;
            clock.out_samples += i64::from(OPUS_FRAME_SAMPLES);
            match self.encoder.encode_float(pcm, &mut self.packet) {
                Ok(n) => out.push(OpusFrame {
                    data: Bytes::copy_from_slice(&self.packet[..n]),
                    pts_48k,
                    samples: OPUS_FRAME_SAMPLES,
                }),
                // Keep draining so the buffer stays bounded and timestamps
                // keep moving; report the first failure.
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        self.pcm.drain(..used);
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// Drops every whole frame in the PCM buffer, advancing output time as
    /// if they had been sent.
    fn skip_ready(&mut self) {
        let frame = OUT_CHANNELS * OPUS_FRAME_SAMPLES as usize;
        let whole = self.pcm.len() / frame;
        self.pcm.drain(..whole * frame);
        if let Some(c) = &mut self.clock {
            c.out_samples += whole as i64 * i64::from(OPUS_FRAME_SAMPLES);
        }
    }
}

fn new_decoder(params: &AudioCodecParameters) -> Result<AacDecoder, AudioError> {
    AacDecoder::try_new(params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::BadConfig(e.to_string()))
}

/// 90 kHz ticks to 48 kHz samples, rounding toward negative infinity so
/// every tick maps to the sample at or before it.
fn ticks_to_48k(ticks: i64) -> i64 {
    let v = (i128::from(ticks) * i128::from(OPUS_SAMPLE_RATE)).div_euclid(i128::from(CLOCK_RATE));
    // |v| < |ticks|, so it always fits.
    v as i64
}

/// Garbage that decodes "successfully" must not reach the encoder as NaN or
/// as values big enough to wreck its state.
fn sanitize(x: f32) -> f32 {
    if x.is_finite() {
        x.clamp(-2.0, 2.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_mapping_is_exact_and_floors() {
        assert_eq!(ticks_to_48k(0), 0);
        assert_eq!(ticks_to_48k(90_000), 48_000);
        assert_eq!(ticks_to_48k(15), 8);
        assert_eq!(ticks_to_48k(14), 7);
        assert_eq!(ticks_to_48k(-1), -1);
        assert_eq!(
            ticks_to_48k(i64::MAX),
            (i128::from(i64::MAX) * 8 / 15) as i64
        );
        assert_eq!(
            ticks_to_48k(i64::MIN),
            (i128::from(i64::MIN) * 8).div_euclid(15) as i64
        );
    }

    #[test]
    fn sanitize_removes_non_finite() {
        assert_eq!(sanitize(f32::NAN), 0.0);
        assert_eq!(sanitize(f32::INFINITY), 0.0);
        assert_eq!(sanitize(5.0), 2.0);
        assert_eq!(sanitize(-0.5), -0.5);
    }

    #[test]
    fn transcoder_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<AacToOpus>();
    }
}
