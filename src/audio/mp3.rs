//! MP3 (Icecast sources) to AAC and Opus: one decode, two encodes.
//!
//! Neither egress can carry MP3, and both need it in another codec. Rather
//! than encode one form and let the other egress transcode from it (a
//! second decode, and a second generation of loss), the source's PCM feeds
//! both encoders here, in the ingest, once per stream. The AAC form is
//! always made (HLS and the recorder always read); the Opus form only while
//! the caller says WebRTC viewers read it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use symphonia::core::codecs::audio::well_known::CODEC_ID_MP3;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::packet::PacketRef;
use symphonia::core::units::{Duration, Timestamp};
use symphonia::default::codecs::MpaDecoder;

use super::encode::{AacEncoder, OpusEncoder};
use super::AudioError;
use crate::codec::mp3::Mp3Header;
use crate::media::Unit;

/// One MP3 stream's decoder and its two encoders. See the module doc.
pub struct Mp3Transcoder {
    decoder: MpaDecoder,
    /// Rate and channels the encoders were made for; a frame with others
    /// (a new track at another rate) starts them over.
    format: Option<(u32, u8)>,
    aac: Option<AacEncoder>,
    opus: Option<OpusEncoder>,
    decoded: Vec<Vec<f32>>,
    silence: Vec<f32>,
    /// Frames that did not decode since the last warning.
    corrupt: u64,
}

impl std::fmt::Debug for Mp3Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Transcoder")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

fn new_decoder() -> Result<MpaDecoder, AudioError> {
    let mut params = AudioCodecParameters::new();
    params.for_codec(CODEC_ID_MP3);
    MpaDecoder::try_new(&params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::BadConfig(e.to_string()))
}

impl Mp3Transcoder {
    pub fn new() -> Result<Self, AudioError> {
        Ok(Mp3Transcoder {
            decoder: new_decoder()?,
            format: None,
            aac: None,
            opus: None,
            decoded: Vec::new(),
            silence: Vec::new(),
            corrupt: 0,
        })
    }

    /// Decodes one frame (`frame` is the whole frame, header included, as
    /// [`crate::codec::mp3::parse_header`] delimited it) presented at
    /// `pts`, and appends what the encoders complete to `out`. A frame
    /// that does not decode counts as silence of its length, so later
    /// frames keep their times. With `want_opus` false the Opus encoder
    /// is dropped (and made again, from the current pts, when wanted).
    pub fn push(
        &mut self,
        frame: &[u8],
        header: &Mp3Header,
        pts: i64,
        want_opus: bool,
        out: &mut Vec<Unit>,
    ) -> Result<(), AudioError> {
        let format = (header.sample_rate, header.channels);
        if self.format != Some(format) {
            self.decoder = new_decoder()?;
            self.aac = Some(AacEncoder::new(format.0, usize::from(format.1), pts)?);
            self.opus = None;
            self.format = Some(format);
        }
        if !want_opus {
            self.opus = None;
        } else if self.opus.is_none() {
            self.opus = Some(OpusEncoder::new(format.0, usize::from(format.1), pts)?);
        }
        let channels = usize::from(header.channels);
        let decoded = self.decode(frame, header.samples as usize, channels);
        let buffers = match &decoded {
            Ok(()) => std::mem::take(&mut self.decoded),
            Err(_) => {
                self.silence.resize(header.samples as usize, 0.0);
                vec![std::mem::take(&mut self.silence); channels]
            }
        };
        {
            let planes: Vec<&[f32]> = buffers.iter().map(Vec::as_slice).collect();
            if let Some(aac) = &mut self.aac {
                aac.push(&planes, out);
            }
            if let Some(opus) = &mut self.opus {
                opus.push(&planes, out);
            }
        }
        match decoded {
            Ok(()) => {
                self.decoded = buffers;
                Ok(())
            }
            Err(e) => {
                self.silence = buffers.into_iter().next().unwrap_or_default();
                self.corrupt += 1;
                Err(e)
            }
        }
    }

    /// Frames that failed to decode so far.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// Decodes into `self.decoded`, one vector per channel of exactly
    /// `samples` values.
    fn decode(&mut self, frame: &[u8], samples: usize, channels: usize) -> Result<(), AudioError> {
        let decoder = &mut self.decoder;
        let out = &mut self.decoded;
        // Third-party code fed untrusted bytes: a panic costs one frame.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(samples as u64), frame);
            decoder
                .decode_ref(&packet)
                .map(|buf| buf.copy_to_vecs_planar::<f32>(out))
                .map_err(|e| e.to_string())
        }));
        match result {
            Ok(Ok(())) => {
                if self.decoded.len() != channels || self.decoded.iter().any(|c| c.len() != samples)
                {
                    return Err(AudioError::CorruptFrame(format!(
                        "decoded {} channels of {} samples, expected {channels} of {samples}",
                        self.decoded.len(),
                        self.decoded.first().map_or(0, Vec::len)
                    )));
                }
                Ok(())
            }
            Ok(Err(e)) => Err(AudioError::CorruptFrame(e)),
            Err(_) => {
                self.decoder = new_decoder()?;
                Err(AudioError::CorruptFrame("decoder panicked".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icecast::demux::{Audio, Demuxer, Format};
    use crate::media::{Payload, TrackConfig};

    #[test]
    fn one_decode_two_encodes() {
        let mut d = Demuxer::new(Format::Mp3);
        let mut frames = Vec::new();
        d.push(include_bytes!("../../tests/data/sine.mp3"), &mut frames)
            .unwrap();
        let mut t = Mp3Transcoder::new().unwrap();
        let mut units = Vec::new();
        let mut pts = 0;
        for (i, f) in frames.iter().enumerate() {
            let Audio::Mp3(h) = &f.audio else { panic!() };
            // WebRTC viewers arrive after the first ten frames.
            let _ = t.push(&f.raw, h, pts, i >= 10, &mut units);
            pts += i64::from(h.samples) * 90_000 / i64::from(h.sample_rate);
        }
        let aac: Vec<_> = units
            .iter()
            .filter(|u| matches!(u.payload, Payload::Aac(_)))
            .collect();
        let opus: Vec<_> = units
            .iter()
            .filter(|u| matches!(u.payload, Payload::Opus(_)))
            .collect();
        assert!(aac.len() >= 38, "{} AAC frames for ~1 s", aac.len());
        assert!(
            opus.len() >= 30,
            "{} Opus frames from frame 10 on",
            opus.len()
        );
        let first_opus = opus[0].pts;
        assert!(
            first_opus >= 10 * 1152 * 90_000 / 44_100 - 1,
            "Opus starts when asked: {first_opus}"
        );
        let TrackConfig::Aac(c) = &*aac[0].config else {
            panic!()
        };
        assert_eq!((c.sample_rate, c.channels), (44_100, 1));
        assert_eq!(t.corrupt(), 0);
        // The AAC decodes back to a tone: the round trip through the
        // egress' own AAC decoder works.
        let mut back = crate::audio::AacToOpus::new(c).unwrap();
        let mut out = 0;
        for u in &aac {
            let Payload::Aac(f) = &u.payload else {
                panic!()
            };
            out += back.push(f, u.pts).unwrap().len();
        }
        assert!(out > 30);
    }

    #[test]
    fn garbage_frames_cost_their_time_only() {
        let mut t = Mp3Transcoder::new().unwrap();
        let header = crate::codec::mp3::parse_header(&[0xff, 0xfb, 0x90, 0x00]).unwrap();
        let mut frame = vec![0xa5u8; header.frame_len];
        frame[..4].copy_from_slice(&[0xff, 0xfb, 0x90, 0x00]);
        let mut units = Vec::new();
        for i in 0..50 {
            let _ = t.push(&frame, &header, i * 2351, true, &mut units);
        }
        // Whatever garbage decodes to, time keeps moving.
        assert!(units.len() > 50);
    }
}
