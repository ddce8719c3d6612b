//! PCM to the two forms the egresses carry: AAC-LC units (HLS and
//! recordings) and Opus units (WebRTC). A source that is neither (MP3) is
//! decoded once and its PCM handed to both, so its audio is decoded once
//! per stream whatever reads it.
//!
//! Each encoder keeps its own sample-count clock from the pts it was
//! started at, as the transcoders beside it do: output time never inherits
//! jitter from input time.

use bytes::Bytes;
use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};
use std::sync::Arc;

use super::resample::Resampler;
use super::{AudioError, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE};
use crate::codec::aac;
use crate::media::{AacConfig, OpusConfig, Payload, TrackConfig, Unit, CLOCK_RATE};

/// Samples per channel in an AAC-LC frame (ISO/IEC 14496-3 4.5.1.1).
pub const AAC_FRAME_SAMPLES: usize = 1024;
/// 128 kbit/s stereo, 64 kbit/s mono: transparent for speech and music, and
/// for a source that was itself a lossy stream the second generation adds
/// no audible loss.
const AAC_BITRATE_PER_CHANNEL: u32 = 64_000;
/// The encoder's bound is 6144 bits per channel (ISO/IEC 14496-3 4.5.3.3).
const MAX_AAC_FRAME_BYTES: usize = 6144 / 8 * 2;
/// RFC 6716 caps a 20 ms packet at 1275 bytes; room to spare.
const MAX_OPUS_PACKET: usize = 4000;
/// As for RTMP's AAC (see `aac_to_opus`): half the encode CPU of the
/// default for a difference nobody hears at these bitrates.
const OPUS_COMPLEXITY: i32 = 5;

fn samples_to_ticks(samples: i64, rate: u32) -> i64 {
    samples * CLOCK_RATE / i64::from(rate)
}

/// Float samples to the 16-bit range fdk-aac takes; NaN and overs from a
/// hostile bitstream are clamped, never wrapped.
fn to_i16(x: f32) -> i16 {
    if x.is_finite() {
        (x.clamp(-1.0, 1.0) * 32767.0) as i16
    } else {
        0
    }
}

/// PCM (the source's rate, mono or stereo) to AAC-LC units.
pub struct AacEncoder {
    encoder: Encoder,
    config: Arc<TrackConfig>,
    rate: u32,
    channels: usize,
    /// Priming samples (per channel) the encoder puts before the input.
    delay: i64,
    start_pts: i64,
    out_frames: i64,
    /// Interleaved PCM short of one frame between calls.
    pcm: Vec<i16>,
    out: Vec<u8>,
    /// The encoder has been given input (and may hold some).
    fed: bool,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl AacEncoder {
    /// Fails for a rate AAC has no index for, or more than two channels.
    pub fn new(rate: u32, channels: usize, start_pts: i64) -> Result<Self, AudioError> {
        let (encoder, delay, asc) = open_aac(rate, channels)?;
        let parsed = aac::parse_asc(&asc).map_err(|e| AudioError::BadConfig(e.to_string()))?;
        Ok(AacEncoder {
            encoder,
            config: Arc::new(TrackConfig::Aac(AacConfig {
                object_type: parsed.object_type,
                sample_rate: rate,
                channels: channels as u8,
                asc,
            })),
            rate,
            channels,
            delay,
            start_pts,
            out_frames: 0,
            pcm: Vec::with_capacity(2 * AAC_FRAME_SAMPLES * channels),
            out: vec![0; MAX_AAC_FRAME_BYTES],
            fed: false,
        })
    }

    /// The config every output unit carries.
    pub fn config(&self) -> &Arc<TrackConfig> {
        &self.config
    }

    /// Starts a new timeline at `start_pts`: the encoder's priming and
    /// buffered tail belong to the old one, so a fresh encoder keeps the
    /// pts formula exact.
    pub fn restart(&mut self, start_pts: i64) -> Result<(), AudioError> {
        self.pcm.clear();
        self.start_pts = start_pts;
        self.out_frames = 0;
        if !std::mem::take(&mut self.fed) {
            return Ok(());
        }
        let (encoder, delay, _) = open_aac(self.rate, self.channels)?;
        self.encoder = encoder;
        self.delay = delay;
        Ok(())
    }

    /// Encodes planar PCM (one slice per channel, equal lengths); appends
    /// the units it completes.
    pub fn push(&mut self, planes: &[&[f32]], units: &mut Vec<Unit>) {
        let n = planes.first().map_or(0, |p| p.len());
        self.pcm.reserve(n * self.channels);
        for i in 0..n {
            for ch in 0..self.channels {
                let x = planes.get(ch).or(planes.first()).and_then(|p| p.get(i));
                self.pcm.push(to_i16(x.copied().unwrap_or(0.0)));
            }
        }
        self.encode_ready(units);
    }

    /// Encodes interleaved 16-bit PCM in the encoder's channel count.
    pub fn push_interleaved(&mut self, pcm: &[i16], units: &mut Vec<Unit>) {
        self.pcm.extend_from_slice(pcm);
        self.encode_ready(units);
    }

    /// Encodes `samples` (per channel) of silence: a gap's time kept.
    pub fn push_silence(&mut self, samples: usize, units: &mut Vec<Unit>) {
        self.pcm
            .extend(std::iter::repeat_n(0i16, samples * self.channels));
        self.encode_ready(units);
    }

    fn encode_ready(&mut self, units: &mut Vec<Unit>) {
        let frame = AAC_FRAME_SAMPLES * self.channels;
        let mut start = 0;
        while self.pcm.len() - start >= frame {
            let mut input = &self.pcm[start..start + frame];
            start += frame;
            self.fed = true;
            // One frame in gives at most one frame out; the loop covers an
            // encoder that takes it in pieces.
            while !input.is_empty() {
                let info = match self.encoder.encode(input, &mut self.out) {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!("AAC encode failed: {e}");
                        break;
                    }
                };
                if info.output_size > 0 {
                    let k = self.out_frames;
                    self.out_frames += 1;
                    let offset = k * AAC_FRAME_SAMPLES as i64 - self.delay;
                    // Priming frames fall before the first input sample.
                    if offset >= 0 {
                        let pts = self.start_pts + samples_to_ticks(offset, self.rate);
                        let size = info.output_size.min(self.out.len());
                        units.push(Unit {
                            flv_body: Default::default(),
                            config: self.config.clone(),
                            pts,
                            dts: pts,
                            keyframe: true,
                            payload: Payload::Aac(Bytes::copy_from_slice(&self.out[..size])),
                        });
                    }
                }
                if info.input_consumed == 0 {
                    break;
                }
                input = &input[info.input_consumed.min(input.len())..];
            }
        }
        self.pcm.drain(..start);
    }
}

/// An AAC-LC encoder for `rate` and `channels`, its priming delay (samples
/// per channel) and its AudioSpecificConfig.
fn open_aac(rate: u32, channels: usize) -> Result<(Encoder, i64, Bytes), AudioError> {
    let mode = match channels {
        1 => ChannelMode::Mono,
        2 => ChannelMode::Stereo,
        n => return Err(AudioError::Channels(n.min(255) as u8)),
    };
    let encoder = Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(AAC_BITRATE_PER_CHANNEL * channels as u32),
        sample_rate: rate,
        transport: Transport::Raw,
        channels: mode,
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(|e| AudioError::AacEncoder(e.to_string()))?;
    let info = encoder
        .info()
        .map_err(|e| AudioError::AacEncoder(e.to_string()))?;
    let asc_len = (info.confSize as usize).min(info.confBuf.len());
    let asc = Bytes::copy_from_slice(&info.confBuf[..asc_len]);
    Ok((encoder, i64::from(info.nDelay), asc))
}

/// PCM (any rate the resampler takes, mono or stereo) to 20 ms Opus
/// units at 48 kHz.
pub struct OpusEncoder {
    encoder: opus::Encoder,
    config: Arc<TrackConfig>,
    /// `None` at 48 kHz.
    resampler: Option<Resampler>,
    channels: usize,
    start_pts: i64,
    out_samples: i64,
    /// Interleaved 48 kHz PCM short of one frame between calls.
    pcm: Vec<f32>,
    resampled: Vec<Vec<f32>>,
    packet: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    pub fn new(rate: u32, channels: usize, start_pts: i64) -> Result<Self, AudioError> {
        let mode = match channels {
            1 => opus::Channels::Mono,
            2 => opus::Channels::Stereo,
            n => return Err(AudioError::Channels(n.min(255) as u8)),
        };
        let resampler = if rate == OPUS_SAMPLE_RATE {
            None
        } else {
            Some(
                Resampler::new(rate, OPUS_SAMPLE_RATE, channels)
                    .ok_or(AudioError::SampleRate(rate))?,
            )
        };
        let mut encoder = opus::Encoder::new(OPUS_SAMPLE_RATE, mode, opus::Application::Audio)?;
        encoder.set_bitrate(opus::Bitrate::Bits(if channels == 1 {
            64_000
        } else {
            96_000
        }))?;
        encoder.set_complexity(OPUS_COMPLEXITY)?;
        Ok(OpusEncoder {
            encoder,
            config: Arc::new(TrackConfig::Opus(OpusConfig {
                channels: channels as u8,
            })),
            resampler,
            channels,
            start_pts,
            out_samples: 0,
            pcm: Vec::with_capacity(4 * OPUS_FRAME_SAMPLES as usize * channels),
            resampled: vec![Vec::new(); channels],
            packet: vec![0; MAX_OPUS_PACKET],
        })
    }

    /// Encodes planar PCM; appends the units it completes.
    pub fn push(&mut self, planes: &[&[f32]], units: &mut Vec<Unit>) {
        let planes: Vec<&[f32]> = match &mut self.resampler {
            Some(r) => {
                self.resampled.iter_mut().for_each(Vec::clear);
                r.process(planes, &mut self.resampled);
                self.resampled.iter().map(Vec::as_slice).collect()
            }
            None => planes.to_vec(),
        };
        let n = planes.first().map_or(0, |p| p.len());
        self.pcm.reserve(n * self.channels);
        for i in 0..n {
            for ch in 0..self.channels {
                let x = planes.get(ch).or(planes.first()).and_then(|p| p.get(i));
                let x = x.copied().unwrap_or(0.0);
                self.pcm.push(if x.is_finite() {
                    x.clamp(-2.0, 2.0)
                } else {
                    0.0
                });
            }
        }
        let frame = OPUS_FRAME_SAMPLES as usize * self.channels;
        let mut start = 0;
        while self.pcm.len() - start >= frame {
            let pcm = &self.pcm[start..start + frame];
            start += frame;
            let pts = self.start_pts + samples_to_ticks(self.out_samples, OPUS_SAMPLE_RATE);
            self.out_samples += i64::from(OPUS_FRAME_SAMPLES);
            match self.encoder.encode_float(pcm, &mut self.packet) {
                Ok(len) => units.push(Unit {
                    flv_body: Default::default(),
                    config: self.config.clone(),
                    pts,
                    dts: pts,
                    keyframe: true,
                    payload: Payload::Opus(Bytes::copy_from_slice(&self.packet[..len])),
                }),
                Err(e) => tracing::warn!("Opus encode failed: {e}"),
            }
        }
        self.pcm.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn aac_units_follow_sample_counts() {
        let mut enc = AacEncoder::new(44_100, 2, 9_000).unwrap();
        let pcm = tone(44_100, 44_100);
        let mut units = Vec::new();
        for chunk in pcm.chunks(1152) {
            enc.push(&[chunk, chunk], &mut units);
        }
        assert!(units.len() > 38 && units.len() <= 44, "{}", units.len());
        assert!(
            units[0].pts >= 9_000 && units[0].pts < 9_000 + 2090,
            "{}",
            units[0].pts
        );
        for w in units.windows(2) {
            let d = w[1].pts - w[0].pts;
            assert!((2089..=2090).contains(&d), "1024 samples at 44.1 kHz: {d}");
        }
        match &*units[0].config {
            TrackConfig::Aac(c) => {
                assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 44_100, 2))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn opus_units_are_20_ms_at_48k() {
        let mut enc = OpusEncoder::new(44_100, 1, 0).unwrap();
        let pcm = tone(44_100, 44_100);
        let mut units = Vec::new();
        for chunk in pcm.chunks(1152) {
            enc.push(&[chunk], &mut units);
        }
        // One second of input, less the resampler's lookahead.
        assert!((48..=50).contains(&units.len()), "{}", units.len());
        for (i, u) in units.iter().enumerate() {
            assert_eq!(u.pts, i as i64 * 1800);
            let Payload::Opus(p) = &u.payload else {
                panic!()
            };
            assert_eq!(crate::codec::ogg::opus_packet_samples(p).unwrap(), 960);
        }
    }

    #[test]
    fn hostile_samples_are_clamped() {
        let mut enc = AacEncoder::new(48_000, 1, 0).unwrap();
        let junk = vec![f32::NAN, f32::INFINITY, -1e30, 1e30];
        let mut units = Vec::new();
        for _ in 0..2000 {
            enc.push(&[&junk], &mut units);
        }
        assert!(!units.is_empty());
        assert_eq!(to_i16(f32::NAN), 0);
        assert_eq!(to_i16(5.0), 32767);
    }
}
